import { Module } from '@nestjs/common';
import { IdempotencyService } from './idempotency.service';

/**
 * Owner of `idempotency_keys`. Its own module because two modules complete keys inside their money
 * transactions (messaging: sends; billing: admin top-ups and adjustments) and neither owns the other:
 * both import this one, so there is one instance, one purge timer and one writer of the table.
 */
@Module({
  providers: [IdempotencyService],
  exports: [IdempotencyService],
})
export class IdempotencyModule {}

import { Module, OnApplicationBootstrap, OnApplicationShutdown, Logger } from '@nestjs/common';
import { TenantsModule } from '../tenants/tenants.module';
import { AdminBillingController, TenantBillingController } from './billing.controller';
import { LedgerService } from './ledger.service';

@Module({
  imports: [TenantsModule],
  controllers: [TenantBillingController, AdminBillingController],
  providers: [LedgerService],
  exports: [LedgerService],
})
export class BillingModule implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(BillingModule.name);
  private timer?: NodeJS.Timeout;

  constructor(private readonly ledger: LedgerService) {}

  /** Forfeits balances whose grace ended, once a minute (reads also forfeit lazily). */
  onApplicationBootstrap(): void {
    if (process.env.NODE_ENV === 'test') return;
    this.timer = setInterval(() => {
      this.ledger.sweepExpired().catch((e: Error) => this.logger.warn({ err: e.message }, 'expiry sweep failed'));
    }, 60_000);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

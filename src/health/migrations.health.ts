import { Injectable } from '@nestjs/common';
import { HealthIndicatorService } from '@nestjs/terminus';
import { DataSource } from 'typeorm';

/** The `message` of a down `migrations` indicator when the database answered that some are not applied. */
export const MIGRATIONS_PENDING = 'pending';

/** Every migration applied: up; some not applied: down with MIGRATIONS_PENDING; no answer: down with the error. */
@Injectable()
export class MigrationsHealthIndicator {
  constructor(
    private readonly dataSource: DataSource,
    private readonly health: HealthIndicatorService,
  ) {}

  check<const Key extends string>(key: Key, timeoutMs: number) {
    return this.health
      .check(key)
      .attempt(async () => {
        if (await this.dataSource.showMigrations()) throw new Error(MIGRATIONS_PENDING);
      })
      .withTimeout(timeoutMs);
  }
}

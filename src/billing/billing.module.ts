import { Inject, Module, OnApplicationBootstrap, OnApplicationShutdown, Logger } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '../config/config';
import { IdempotencyModule } from '../idempotency/idempotency.module';
import { TenantsModule } from '../tenants/tenants.module';
import { AdminBillingController, TenantBillingController } from './billing.controller';
import { LedgerVerifyController } from './ledger-verify.controller';
import { LedgerVerifyService } from './ledger-verify.service';
import { LedgerService } from './ledger.service';
import { AdminStatementController, TenantStatementController } from './statement.controller';
import { StatementService } from './statement.service';
import { AdminUsageController, TenantUsageController } from './usage.controller';
import { UsageService } from './usage.service';

@Module({
  imports: [TenantsModule, IdempotencyModule],
  controllers: [
    TenantBillingController,
    AdminBillingController,
    TenantUsageController,
    AdminUsageController,
    TenantStatementController,
    AdminStatementController,
    LedgerVerifyController,
  ],
  providers: [LedgerService, UsageService, StatementService, LedgerVerifyService],
  exports: [LedgerService, LedgerVerifyService],
})
export class BillingModule implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(BillingModule.name);
  private timer?: NodeJS.Timeout;

  constructor(
    private readonly ledger: LedgerService,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  /** Forfeits balances whose grace ended, once a minute (reads also forfeit lazily). */
  onApplicationBootstrap(): void {
    if (this.config.nodeEnv === 'test') return; // tests call sweepExpired() when they mean it
    this.timer = setInterval(() => {
      this.ledger.sweepExpired().catch((e: Error) => this.logger.warn({ err: e.message }, 'expiry sweep failed'));
    }, 60_000);
    this.timer.unref();
  }

  onApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }
}

import { Inject, Module, OnApplicationBootstrap, OnApplicationShutdown, Logger } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '../config/config';
import { IdempotencyService } from '../messaging/idempotency.service';
import { TenantsModule } from '../tenants/tenants.module';
import { WebhooksModule } from '../webhooks/webhooks.module';
import { AdminBillingController, TenantBillingController } from './billing.controller';
import { LedgerVerifyController } from './ledger-verify.controller';
import { LedgerVerifyService } from './ledger-verify.service';
import { LedgerService } from './ledger.service';
import { AdminStatementController, TenantStatementController } from './statement.controller';
import { StatementService } from './statement.service';
import { AdminUsageController, TenantUsageController } from './usage.controller';
import { UsageService } from './usage.service';

@Module({
  imports: [TenantsModule, WebhooksModule],
  controllers: [
    TenantBillingController,
    AdminBillingController,
    TenantUsageController,
    AdminUsageController,
    TenantStatementController,
    AdminStatementController,
    LedgerVerifyController,
  ],
  // IdempotencyService lives here (not in MessagingModule, which imports this one) so the admin money
  // routes and the send path share one instance and one table.
  providers: [LedgerService, IdempotencyService, UsageService, StatementService, LedgerVerifyService],
  exports: [LedgerService, IdempotencyService, LedgerVerifyService],
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

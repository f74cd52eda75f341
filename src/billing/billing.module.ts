import { Inject, Module, OnApplicationBootstrap, OnApplicationShutdown, Logger } from '@nestjs/common';
import { APP_CONFIG, AppConfig } from '../config/config';
import { IdempotencyService } from '../messaging/idempotency.service';
import { TenantsModule } from '../tenants/tenants.module';
import { AdminBillingController, TenantBillingController } from './billing.controller';
import { LedgerService } from './ledger.service';

@Module({
  imports: [TenantsModule],
  controllers: [TenantBillingController, AdminBillingController],
  // IdempotencyService lives here (not in MessagingModule, which imports this one) so the admin money
  // routes and the send path share one instance and one table.
  providers: [LedgerService, IdempotencyService],
  exports: [LedgerService, IdempotencyService],
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

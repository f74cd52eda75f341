import { Module } from '@nestjs/common';
import { IdempotencyModule } from '../idempotency/idempotency.module';
import { TenantsModule } from '../tenants/tenants.module';
import { WebhooksModule } from '../webhooks/webhooks.module';
import { AdminBillingController } from './admin-billing.controller';
import { BalanceNoticesService } from './balance-notices.service';
import { BillingJobsService } from './billing-jobs.service';
import { LedgerVerifyController } from './ledger-verify.controller';
import { LedgerVerifyService } from './ledger-verify.service';
import { LedgerService } from './ledger.service';
import { AdminStatementController, TenantStatementController } from './statement.controller';
import { StatementService } from './statement.service';
import { TenantBillingController } from './tenant-billing.controller';
import { AdminUsageController, TenantUsageController } from './usage.controller';
import { UsageService } from './usage.service';

@Module({
  imports: [TenantsModule, WebhooksModule, IdempotencyModule],
  controllers: [
    TenantBillingController,
    AdminBillingController,
    TenantUsageController,
    AdminUsageController,
    TenantStatementController,
    AdminStatementController,
    LedgerVerifyController,
  ],
  providers: [
    LedgerService,
    UsageService,
    StatementService,
    LedgerVerifyService,
    BalanceNoticesService,
    BillingJobsService,
  ],
  exports: [LedgerService, LedgerVerifyService, BillingJobsService],
})
export class BillingModule {}

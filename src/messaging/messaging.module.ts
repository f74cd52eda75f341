import { Module } from '@nestjs/common';
import { BillingModule } from '../billing/billing.module';
import { IdempotencyModule } from '../idempotency/idempotency.module';
import { ProviderModule } from '../provider/provider.module';
import { TenantsModule } from '../tenants/tenants.module';
import { AcceptService } from './accept.service';
import { DeliveryReportsService } from './delivery-reports.service';
import { DispatcherService } from './dispatcher.service';
import { DlrController } from './dlr.controller';
import { MessageEventsService } from './message-events.service';
import { MessageRefundsService } from './message-refunds.service';
import { MessagesController } from './messages.controller';
import { MessagesService } from './messages.service';
import { TenantRateLimitGuard } from './rate-limit';
import { RecentRecipientsService } from './recent-recipients.service';
import { TenantSettingsCache } from './tenant-settings.cache';

@Module({
  imports: [BillingModule, ProviderModule, TenantsModule, IdempotencyModule],
  controllers: [MessagesController, DlrController],
  providers: [
    AcceptService,
    MessagesService,
    TenantSettingsCache,
    TenantRateLimitGuard,
    DispatcherService,
    DeliveryReportsService,
    RecentRecipientsService,
    MessageEventsService,
    MessageRefundsService,
  ],
  exports: [DispatcherService, AcceptService, RecentRecipientsService],
})
export class MessagingModule {}

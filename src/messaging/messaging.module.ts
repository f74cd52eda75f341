import { Module } from '@nestjs/common';
import { BillingModule } from '../billing/billing.module';
import { IdempotencyModule } from '../idempotency/idempotency.module';
import { ProviderModule } from '../provider/provider.module';
import { TenantsModule } from '../tenants/tenants.module';
import { AcceptService } from './accept.service';
import { DispatcherService } from './dispatcher.service';
import { MessageEventsService } from './message-events.service';
import { MessagePartitionsService } from './message-partitions.service';
import { MessageFollowUpService } from './message-follow-up.service';
import { MessageRefundsService } from './message-refunds.service';
import { MessageReportsService } from './message-reports.service';
import { MessagesController } from './messages.controller';
import { MessagesService } from './messages.service';
import { TenantRateLimitGuard } from './tenant-rate-limit.guard';
import { RecentRecipientsService } from './recent-recipients.service';
import { TenantSettingsCache } from './tenant-settings.cache';

@Module({
  imports: [BillingModule, ProviderModule, TenantsModule, IdempotencyModule],
  controllers: [MessagesController],
  providers: [
    AcceptService,
    MessagesService,
    TenantSettingsCache,
    TenantRateLimitGuard,
    DispatcherService,
    MessageReportsService,
    RecentRecipientsService,
    MessageFollowUpService,
    MessageEventsService,
    MessageRefundsService,
    MessagePartitionsService,
  ],
  exports: [
    DispatcherService,
    AcceptService,
    RecentRecipientsService,
    MessageReportsService,
    MessageFollowUpService,
    MessageEventsService,
    MessageRefundsService,
  ],
})
export class MessagingModule {}

import { Module } from '@nestjs/common';
import { BillingModule } from '../billing/billing.module';
import { ProviderModule } from '../provider/provider.module';
import { AcceptService } from './accept.service';
import { DispatcherService } from './dispatcher.service';
import { MessageFollowUpService } from './message-follow-up.service';
import { MessageReportsService } from './message-reports.service';
import { MessagesController } from './messages.controller';
import { MessagesService } from './messages.service';
import { TenantRateLimitGuard } from './rate-limit';
import { RecentRecipientsService } from './recent-recipients.service';
import { TenantSettingsCache } from './tenant-settings.cache';

@Module({
  imports: [BillingModule, ProviderModule],
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
  ],
  exports: [DispatcherService, AcceptService, RecentRecipientsService, MessageReportsService, MessageFollowUpService],
})
export class MessagingModule {}

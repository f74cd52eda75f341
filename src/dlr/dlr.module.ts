import { Module } from '@nestjs/common';
import { BillingModule } from '../billing/billing.module';
import { MessagingModule } from '../messaging/messaging.module';
import { ProviderModule } from '../provider/provider.module';
import { TenantsModule } from '../tenants/tenants.module';
import { WebhooksModule } from '../webhooks/webhooks.module';
import { WebhooksService } from '../webhooks/webhooks.service';
import { DeliveryReportsService } from './delivery-reports.service';
import { DlrController } from './dlr-callback.controller';
import { INBOUND_EVENTS, InboundWebhookEvents } from './inbound-events';
import { InboundIntakeService } from './inbound-intake.service';
import { AdminInboundMessagesController, InboundMessagesController } from './inbound-messages.controller';
import { InboundMessagesService } from './inbound-messages.service';
import { InboxPollerService } from './inbox-poller.service';
import { ReportPartitionsService } from './report-partitions.service';
import { ReportPollerService } from './report-poller.service';
import { ReportReconcilerService } from './report-reconciler.service';
import { ReportReconciliationsController } from './report-reconciliations.controller';
import { ReportReconciliationsService } from './report-reconciliations.service';
import { ReportReapplyService } from './report-reapply.service';

/**
 * What the provider sends us: inbound SMS read from each account's inbox.php, delivery reports, and the
 * reconciliation of the provider's report against our records (docs/dlr.md).
 * Needs ScheduleModule.forRoot() once in the application (AppModule).
 */
@Module({
  imports: [BillingModule, ProviderModule, TenantsModule, MessagingModule, WebhooksModule],
  controllers: [
    InboundMessagesController,
    AdminInboundMessagesController,
    DlrController,
    ReportReconciliationsController,
  ],
  providers: [
    InboundIntakeService,
    InboundMessagesService,
    InboxPollerService,
    DeliveryReportsService,
    ReportPollerService,
    ReportReconcilerService,
    ReportReconciliationsService,
    ReportReapplyService,
    ReportPartitionsService,
    // Routed inbound SMS become `message.received` webhook events (inbound-events.ts).
    {
      provide: INBOUND_EVENTS,
      inject: [WebhooksService],
      useFactory: (w: WebhooksService) => new InboundWebhookEvents(w),
    },
  ],
  exports: [InboxPollerService, ReportPollerService, ReportReapplyService, DeliveryReportsService, INBOUND_EVENTS],
})
export class DlrModule {}

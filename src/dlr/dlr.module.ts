import { Module } from '@nestjs/common';
import { MessagingModule } from '../messaging/messaging.module';
import { ProviderModule } from '../provider/provider.module';
import { TenantsModule } from '../tenants/tenants.module';
import { INBOUND_EVENTS, InboundEventsEmitter } from './inbound-events';
import { InboundIntakeService } from './inbound-intake.service';
import { AdminInboundMessagesController, InboundMessagesController } from './inbound-messages.controller';
import { InboundMessagesService } from './inbound-messages.service';
import { InboxPollerService } from './inbox-poller.service';

/**
 * What the provider sends us: inbound SMS read from each account's inbox.php (docs/dlr.md).
 * Needs ScheduleModule.forRoot() once in the application (AppModule).
 */
@Module({
  imports: [ProviderModule, TenantsModule, MessagingModule],
  controllers: [InboundMessagesController, AdminInboundMessagesController],
  providers: [
    InboundIntakeService,
    InboundMessagesService,
    InboxPollerService,
    // The seam for tenant webhooks (`message.received`): see inbound-events.ts.
    { provide: INBOUND_EVENTS, useClass: InboundEventsEmitter },
  ],
  exports: [InboxPollerService, INBOUND_EVENTS],
})
export class DlrModule {}

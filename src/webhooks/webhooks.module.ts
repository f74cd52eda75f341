import { Inject, Module, OnApplicationBootstrap, OnModuleDestroy } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MessageStatusRelay } from './message-status.relay';
import { WebhookUrlGuard, WebhookResolver } from './url-guard';
import { WebhookEndpointsService } from './webhook-endpoints.service';
import { WebhookSender } from './webhook-sender';
import { WebhookWorkerService } from './webhook-worker.service';
import { WebhooksController } from './webhooks.controller';
import { WebhooksService } from './webhooks.service';

/**
 * Tenant webhooks (docs/webhooks.md). Other modules use `WebhooksService.enqueue(manager, events)`
 * inside their own transaction; message.status events come from the relay over message_events.
 */
@Module({
  controllers: [WebhooksController],
  providers: [
    WebhooksService,
    WebhookEndpointsService,
    WebhookResolver,
    WebhookUrlGuard,
    WebhookSender,
    WebhookWorkerService,
    MessageStatusRelay,
  ],
  exports: [WebhooksService],
})
export class WebhooksModule implements OnApplicationBootstrap, OnModuleDestroy {
  constructor(
    private readonly worker: WebhookWorkerService,
    private readonly relay: MessageStatusRelay,
    private readonly sender: WebhookSender,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    if (!this.config.webhooks.enabled) return;
    this.relay.onDeliveries = () => this.worker.wake();
    this.relay.start();
    this.worker.start();
  }

  /** Before the database pool closes: stop claiming, finish or abort what is in flight. */
  async onModuleDestroy(): Promise<void> {
    await Promise.all([this.relay.stop(), this.worker.stop()]);
    await this.sender.close();
  }
}

import { EventEmitter } from 'node:events';
import type { EntityManager } from 'typeorm';
import { WebhooksService } from '../webhooks/webhooks.service';
import type { InboundMessageDto } from './inbound-messages.dto';

/** A routed inbound SMS, the `message.received` event of API.md for one tenant. */
export interface InboundReceivedEvent {
  /** uuid of the tenant it was routed to. */
  tenantId: string;
  /** uuid of the `inbound_messages` row: one event per row, so it is also the event's idempotency key. */
  inboundMessageId: string;
  /** The webhook `data`: the same shape as `GET /v1/inbound-messages`. */
  message: InboundMessageDto;
  occurredAt: Date;
}

/**
 * Where routed inbound SMS go once stored: the seam to tenant webhooks (`message.received`).
 *
 * `received` is called inside the transaction that inserts the row, with that transaction's
 * manager, once per newly stored routed row (never for a duplicate or an unrouted row). An
 * implementation that writes with `manager` commits or rolls back with the row, which is how a
 * webhook outbox gets exactly one delivery per inbound SMS; if it throws, the row is not stored
 * and the next poll reads it again.
 */
export interface InboundEvents {
  received(manager: EntityManager, event: InboundReceivedEvent): Promise<void>;
}

/** Nest token of the InboundEvents implementation (DlrModule binds it). */
export const INBOUND_EVENTS = Symbol('INBOUND_EVENTS');

/**
 * The in-process binding used until webhooks take the seam over: announces each routed row on an
 * EventEmitter (`'received'`). Listeners run inside the storing transaction and must not throw.
 * Nothing is persisted for webhooks by this binding.
 */
export class InboundEventsEmitter extends EventEmitter implements InboundEvents {
  received(_manager: EntityManager, event: InboundReceivedEvent): Promise<void> {
    this.emit('received', event);
    return Promise.resolve();
  }
}

/**
 * The production binding: every routed inbound SMS becomes a `message.received` webhook event for
 * its tenant, queued in the storing transaction (one delivery per inbound row: its id is the event
 * id), and is still announced in-process like InboundEventsEmitter.
 */
export class InboundWebhookEvents extends InboundEventsEmitter {
  constructor(private readonly webhooks: WebhooksService) {
    super();
  }

  override async received(manager: EntityManager, event: InboundReceivedEvent): Promise<void> {
    await this.webhooks.enqueue(manager, [
      {
        tenantId: event.tenantId,
        type: 'message.received',
        eventId: event.inboundMessageId,
        occurredAt: event.occurredAt,
        data: event.message,
      },
    ]);
    await super.received(manager, event);
  }
}

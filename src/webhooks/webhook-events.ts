import { createHash } from 'node:crypto';

/** The event types of API.md ("Webhook events"). */
export const WEBHOOK_EVENT_TYPES = ['message.status', 'message.received', 'balance.low', 'balance.expiring'] as const;
export type WebhookEventType = (typeof WEBHOOK_EVENT_TYPES)[number];

/**
 * One event as another module hands it to `WebhooksService.enqueue`. `data` is the payload's `data`
 * (message.status: the Message; message.received: the inbound SMS; balance.*: see docs/webhooks.md).
 */
export interface WebhookEvent {
  /** uuid of the tenant (not the public `ten_` id). */
  tenantId: string;
  type: WebhookEventType;
  data: unknown;
  /** uuid of the message the event is about, if any (shown in the deliveries list). */
  messageId?: string;
  /**
   * Deduplication: the same (tenant, eventId) is delivered once, however often it is enqueued.
   * Default: a fresh uuid. Pass a key derived from the source row when a caller may enqueue twice.
   */
  eventId?: string;
  /** Orders the events of one subject (message.status: the message_events sequence). */
  sequence?: number;
  /** When the event happened (default: the Clock's now). */
  occurredAt?: Date;
}

/** The body POSTed to the tenant: API.md's `{ type, id, createdAt, data }`, plus `sequence` when ordered. */
export interface WebhookEnvelope {
  type: WebhookEventType;
  /** `evt_…`, also the `webhook-id` header: the same on every retry, the receiver's idempotency key. */
  id: string;
  /** When the event happened (for message.status: when the status changed). */
  createdAt: string;
  /** message.status only: increases along one message's status changes (see docs/webhooks.md). */
  sequence?: number;
  data: unknown;
}

export const publicEventId = (eventUuid: string) => `evt_${eventUuid.replace(/-/g, '')}`;

/** A stable uuid for a source row (e.g. `message_events:42`), so relaying it twice dedupes. */
export function derivedEventId(source: string): string {
  const h = createHash('sha256').update(source).digest('hex');
  // RFC 9562 version 8 (custom) with the variant bits set.
  const v = `8${h.slice(13, 16)}`;
  const variant = ((parseInt(h[16], 16) & 0x3) | 0x8).toString(16) + h.slice(17, 20);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${v}-${variant}-${h.slice(20, 32)}`;
}

/**
 * Delay after the n-th failed attempt (1-based): about 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h,
 * 20 h, 24 h; the 10th failure is final (≈ 76 h after the first attempt, over API.md's 24 h).
 */
export const RETRY_DELAYS_MS = [
  5_000,
  5 * 60_000,
  30 * 60_000,
  2 * 3600_000,
  5 * 3600_000,
  10 * 3600_000,
  14 * 3600_000,
  20 * 3600_000,
  24 * 3600_000,
];
export const MAX_ATTEMPTS = RETRY_DELAYS_MS.length + 1;

/**
 * null: no further automatic attempt. Jitter ±10 % spreads the retries of many deliveries that
 * failed together (an endpoint that was down) so they do not return as one burst.
 */
export function retryDelayMs(failedAttempts: number, random: () => number = Math.random): number | null {
  const base = RETRY_DELAYS_MS[failedAttempts - 1];
  if (base === undefined) return null;
  return Math.round(base * (0.9 + 0.2 * random()));
}

import { ArrayMinSize, ArrayUnique, IsArray, IsIn, IsOptional, IsString, MaxLength } from 'class-validator';
import { ListQueryDto } from '../common/pagination';
import { WEBHOOK_EVENT_TYPES, WebhookEventType } from './webhook-events';

export class PutWebhookDto {
  /**
   * Where events are POSTed: http(s), a public address (loopback, private, link-local and other
   * internal ranges are refused unless the gateway runs with WEBHOOK_ALLOW_PRIVATE=true).
   * @example "https://example.com/hooks/sms"
   */
  @IsString()
  @MaxLength(2048)
  url: string;

  /**
   * Event types to receive; default all. Kept as is when omitted on an update.
   * @example ["message.status", "message.received"]
   */
  @IsOptional()
  @IsArray()
  @ArrayMinSize(1)
  @ArrayUnique()
  @IsIn(WEBHOOK_EVENT_TYPES, { each: true })
  events?: WebhookEventType[];
}

export class WebhookEndpointDto {
  /** @example "https://example.com/hooks/sms" */
  url: string;
  events: WebhookEventType[];
  /** False after the endpoint answered 410 Gone; a PUT enables it again. */
  enabled: boolean;
  /** Why the endpoint was disabled (`gone`), or null. */
  disabledReason: string | null;
  disabledAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
  secretRotatedAt: Date | null;
  /** Until then the previous secret signs too (a second signature in `webhook-signature`); null when it no longer does. */
  previousSecretExpiresAt: Date | null;
  /**
   * `whsec_…` (Standard Webhooks). Only in the response that creates the endpoint or rotates the secret.
   * @example "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
   */
  secret?: string;
}

export class WebhookAttemptDto {
  attemptedAt: Date;
  /** delivered (2xx), rejected (other status), gone (410), timeout, unreachable, blocked (address not allowed). */
  outcome: string;
  statusCode: number | null;
  durationMs: number;
  error: string | null;
  /** The first 1 KiB of the response body. */
  responseExcerpt: string | null;
}

export class WebhookDeliveryDto {
  /** `whd_…` */
  id: string;
  /** `evt_…`: the payload's `id` and the `webhook-id` header. */
  eventId: string;
  type: WebhookEventType;
  /** pending (waiting for an attempt), delivering, succeeded, failed (gave up, or endpoint gone/deleted). */
  status: string;
  messageId: string | null;
  /** message.status: increases along one message's status changes. */
  sequence: number | null;
  /** When the next automatic attempt is due (pending only). */
  nextAttemptAt: Date | null;
  lastStatusCode: number | null;
  lastError: string | null;
  createdAt: Date;
  deliveredAt: Date | null;
  /** The JSON body sent to the endpoint. */
  payload: Record<string, unknown>;
  /** Every attempt, oldest first. */
  attempts: WebhookAttemptDto[];
}

export class WebhookDeliveryPageDto {
  data: WebhookDeliveryDto[];
  nextCursor: string | null;
}

export class ListDeliveriesQueryDto extends ListQueryDto {
  /** @example "failed" */
  @IsOptional()
  @IsIn(['pending', 'delivering', 'succeeded', 'failed'])
  status?: string;

  /** @example "message.status" */
  @IsOptional()
  @IsIn(WEBHOOK_EVENT_TYPES)
  type?: WebhookEventType;
}

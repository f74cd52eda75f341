import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { rows as sqlRows } from '../database/raw-rows';
import { Clock } from '../common/clock';
import { fromPublicId, toPublicId, uuidv7 } from '../common/ids';
import { Page, cursorField, decodeCursor, encodeCursor } from '../common/pagination';
import { Problem, notFound } from '../common/problem';
import { TenantScope } from '../common/tenant-scope';
import { WebhookEnvelope, WebhookEvent, publicEventId } from './webhook-events';
import { ListDeliveriesQueryDto, WebhookAttemptDto, WebhookDeliveryDto } from './webhooks.dto';

interface DeliveryRow {
  id: string;
  event_id: string;
  event_type: WebhookDeliveryDto['type'];
  status: string;
  message_id: string | null;
  sequence: string | null;
  next_attempt_at: Date;
  last_status_code: number | null;
  last_error: string | null;
  created_at: Date;
  delivered_at: Date | null;
  payload: Record<string, unknown>;
  attempts: (Omit<WebhookAttemptDto, 'attemptedAt'> & { attemptedAt: string })[];
}

/**
 * The webhook queue's public face for other modules (enqueue, inside their transaction) and the
 * tenant's view of it (deliveries, manual retry). The module's tables are named in SQL only under
 * src/webhooks/.
 */
@Injectable()
export class WebhooksService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly clock: Clock,
  ) {}

  /**
   * Queues events in the caller's transaction: they commit or roll back with the change they report.
   * An event becomes a delivery only if its tenant has an enabled endpoint subscribed to its type
   * at that moment; otherwise it is dropped (not kept for an endpoint registered later). The delivery
   * is for that endpoint (its generation): if the endpoint is deleted before it is sent, it fails, even
   * when the tenant registers a new one meanwhile.
   * Re-enqueueing the same (tenant, eventId) is a no-op. Returns the number of deliveries created.
   */
  async enqueue(manager: EntityManager, events: WebhookEvent[]): Promise<number> {
    if (events.length === 0) return 0;
    const now = this.clock.now();
    const ids: string[] = [];
    const tenants: string[] = [];
    const eventIds: string[] = [];
    const types: string[] = [];
    const envelopes: WebhookEnvelope[] = [];
    const messageIds: (string | null)[] = [];
    const sequences: (number | null)[] = [];
    const eventAts: Date[] = [];
    for (const e of events) {
      TenantScope.of(e.tenantId); // fail closed on an empty tenant id
      const eventId = e.eventId ?? uuidv7();
      const occurredAt = e.occurredAt ?? now;
      const envelope: WebhookEnvelope = {
        type: e.type,
        id: publicEventId(eventId),
        createdAt: occurredAt.toISOString(),
        ...(e.sequence !== undefined ? { sequence: e.sequence } : {}),
        data: e.data,
      };
      ids.push(uuidv7());
      tenants.push(e.tenantId);
      eventIds.push(eventId);
      types.push(e.type);
      envelopes.push(envelope);
      messageIds.push(e.messageId ?? null);
      sequences.push(e.sequence ?? null);
      eventAts.push(occurredAt);
    }
    const rows: unknown[] = await manager.query(
      `INSERT INTO webhook_deliveries
         (id, tenant_id, event_id, event_type, payload, status, next_attempt_at, created_at, message_id, sequence, event_at,
          endpoint_generation)
       SELECT v.id, v.tenant_id, v.event_id, v.event_type, v.payload, 'pending', $9, $9, v.message_id, v.sequence, v.event_at,
              e.generation
         FROM ROWS FROM (unnest($1::uuid[]), unnest($2::uuid[]), unnest($3::uuid[]), unnest($4::text[]),
                         jsonb_array_elements($5::jsonb), unnest($6::uuid[]), unnest($7::bigint[]), unnest($8::timestamptz[]))
              WITH ORDINALITY AS v(id, tenant_id, event_id, event_type, payload, message_id, sequence, event_at, ord)
         JOIN webhook_endpoints e ON e.tenant_id = v.tenant_id AND e.enabled AND v.event_type = ANY (e.events)
        ORDER BY v.ord
       ON CONFLICT (tenant_id, event_id) DO NOTHING
       RETURNING id`,
      // The payloads as one JSON array (one JSON.stringify, one jsonb parse) rather than a jsonb[]: node-postgres
      // escapes every quote of every ~1 KB payload into an array literal that PostgreSQL then unescapes.
      [ids, tenants, eventIds, types, JSON.stringify(envelopes), messageIds, sequences, eventAts, now],
    );
    return rows.length;
  }

  /** Newest first, each with all its attempts (read in the same statement: a consistent view). */
  async listDeliveries(scope: TenantScope, q: ListDeliveriesQueryDto): Promise<Page<WebhookDeliveryDto>> {
    const limit = q.limit ?? 50;
    const after = decodeCursor<{ t: string; id: string }>(q.cursor, { t: cursorField.time, id: cursorField.uuid });
    const params: unknown[] = [scope.tenantId, limit + 1];
    const where = ['d.tenant_id = $1'];
    if (after) {
      params.push(after.t, after.id);
      where.push(`(d.created_at, d.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
    }
    if (q.status) {
      params.push(q.status);
      where.push(`d.status = $${params.length}`);
    }
    if (q.type) {
      params.push(q.type);
      where.push(`d.event_type = $${params.length}`);
    }
    const rows: DeliveryRow[] = await this.dataSource.query(
      `SELECT ${DELIVERY_COLUMNS} FROM webhook_deliveries d WHERE ${where.join(' AND ')}
        ORDER BY d.created_at DESC, d.id DESC LIMIT $2`,
      params,
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      data: page.map(deliveryDto),
      nextCursor: rows.length > limit ? encodeCursor({ t: last.created_at.toISOString(), id: last.id }) : null,
    };
  }

  /**
   * One more attempt now, whatever the delivery's state, except while an attempt is in flight, when the
   * tenant has no endpoint, or when its endpoint is disabled (a 410): 409, the delivery unchanged. A disabled
   * endpoint is not claimed until a PUT enables it again, so a 202 would promise an attempt that is not made.
   * It goes to the endpoint registered now (the tenant asks for it).
   * If it fails, the retry schedule continues from the attempts made so far (a delivery that had
   * used all of them is `failed` again).
   */
  async retry(scope: TenantScope, publicId: string): Promise<WebhookDeliveryDto> {
    const id = fromPublicId('webhookDelivery', publicId);
    if (!id) throw notFound('Webhook delivery');
    const updated = await sqlRows<DeliveryRow>(
      this.dataSource,
      `UPDATE webhook_deliveries d SET status = 'pending', next_attempt_at = $3, endpoint_generation = e.generation
         FROM webhook_endpoints e
        WHERE d.id = $1 AND d.tenant_id = $2 AND d.status <> 'delivering' AND e.tenant_id = $2 AND e.enabled
        RETURNING ${DELIVERY_COLUMNS}`,
      [id, scope.tenantId, this.clock.now()],
    );
    if (updated.length === 1) return deliveryDto(updated[0]);
    const [found] = await sqlRows<{ status: string; enabled: boolean | null }>(
      this.dataSource,
      `SELECT d.status, e.enabled
         FROM webhook_deliveries d LEFT JOIN webhook_endpoints e ON e.tenant_id = d.tenant_id
        WHERE d.id = $1 AND d.tenant_id = $2`,
      [id, scope.tenantId],
    );
    if (!found) throw notFound('Webhook delivery');
    if (found.enabled === null)
      throw new Problem('conflict', 'No webhook endpoint is registered; PUT /v1/webhook first');
    if (!found.enabled)
      throw new Problem(
        'conflict',
        'The webhook endpoint is disabled (it answered 410); PUT /v1/webhook to re-enable it, then retry',
      );
    throw new Problem('conflict', 'An attempt of this delivery is in flight; retry when it has finished');
  }
}

const DELIVERY_COLUMNS = `d.id, d.event_id, d.event_type, d.status, d.message_id, d.sequence, d.next_attempt_at,
  d.last_status_code, d.last_error, d.created_at, d.delivered_at, d.payload,
  coalesce((SELECT json_agg(json_build_object(
                    'attemptedAt', a.attempted_at, 'outcome', a.outcome, 'statusCode', a.status_code,
                    'durationMs', a.duration_ms, 'error', a.error, 'responseExcerpt', a.response_excerpt)
                  ORDER BY a.seq)
              FROM webhook_attempts a WHERE a.delivery_id = d.id), '[]'::json) AS attempts`;

function deliveryDto(r: DeliveryRow): WebhookDeliveryDto {
  return {
    id: toPublicId('webhookDelivery', r.id),
    eventId: publicEventId(r.event_id),
    type: r.event_type,
    status: r.status,
    messageId: r.message_id ? toPublicId('message', r.message_id) : null,
    sequence: r.sequence === null ? null : Number(r.sequence),
    nextAttemptAt: r.status === 'pending' ? r.next_attempt_at : null,
    lastStatusCode: r.last_status_code,
    lastError: r.last_error,
    createdAt: r.created_at,
    deliveredAt: r.delivered_at,
    payload: r.payload,
    attempts: r.attempts.map((a) => ({ ...a, attemptedAt: new Date(a.attemptedAt) })),
  };
}

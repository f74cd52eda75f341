import { Injectable } from '@nestjs/common';
import { prepared } from '../database/raw-rows';
import { EntityManager } from 'typeorm';

/** One status change of one message: a `message_events` row (the audit trail and the webhook outbox). */
export interface MessageEvent {
  messageId: string;
  tenantId: string;
  status: string;
  detail?: object | null;
}

/**
 * The one writer of `message_events` outside single-statement claims (dispatcher claim and lease
 * janitor write theirs in the same CTE as the status change). Always inside the caller's transaction,
 * so an event commits exactly with the status change it records; rows are inserted in the given
 * order (their `seq` follows it, which the webhook relay preserves).
 */
@Injectable()
export class MessageEventsService {
  async record(m: EntityManager, events: MessageEvent[], at: Date): Promise<void> {
    if (events.length === 0) return;
    await prepared(
      m,
      `INSERT INTO message_events (message_id, tenant_id, status, detail, created_at)
       SELECT u.id, u.tenant_id, u.status, u.detail, $1
         FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::jsonb[]) WITH ORDINALITY AS u(id, tenant_id, status, detail, ord)
        ORDER BY u.ord`,
      [
        at,
        events.map((e) => e.messageId),
        events.map((e) => e.tenantId),
        events.map((e) => e.status),
        events.map((e) => (e.detail ? JSON.stringify(e.detail) : null)),
      ],
    );
  }
}

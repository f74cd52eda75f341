import { DataSource, EntityManager } from 'typeorm';
import { Clock } from '../common/clock';
import { rows as sqlRows } from '../database/raw-rows';
import { SendOutcome } from '../provider/client';
import { lockReportKeys, MessageReportsService } from './message-reports.service';
import { MessageEventsService } from './message-events.service';
import { MessageRefundsService } from './message-refunds.service';

/** A message a dispatcher claimed (status `submitting`, under its lease). */
export interface ClaimedMessage {
  id: string;
  tenant_id: string;
  provider_account_id: string;
  msisdn: string;
  text: string;
  attempts: number;
}

/**
 * Writes what became of claimed sends, in one transaction per call: statuses, provider ids, events,
 * refunds, and delivery reports that arrived before their provider id was known. Every update is
 * guarded by the status it expects, so running the same outcomes again (after a failed or
 * doubtful commit) changes nothing that already landed and refunds nothing twice.
 */
export class DispatchOutcomesWriter {
  constructor(
    private readonly dataSource: DataSource,
    private readonly refunds: MessageRefundsService,
    private readonly reports: MessageReportsService,
    private readonly messageEvents: MessageEventsService,
    private readonly clock: Clock,
    private readonly maxAttempts: number,
  ) {}

  async record(claimed: ClaimedMessage[], results: SendOutcome[]): Promise<void> {
    const now = this.clock.now();
    const accepted: { id: string; pid: string }[] = [];
    const failed: { id: string; reason: string; error: string }[] = [];
    const requeue: { id: string; at: Date; error: string; countAttempt: boolean }[] = [];
    const uncertain: { id: string; error: string }[] = [];
    claimed.forEach((msg, i) => {
      const r = results[i];
      switch (r.kind) {
        case 'accepted':
          accepted.push({ id: msg.id, pid: r.providerMessageId });
          break;
        case 'rejected':
          failed.push({ id: msg.id, reason: 'submit_rejected', error: `${r.reason}: ${r.raw.slice(0, 200)}` });
          break;
        case 'notSent':
          if (msg.attempts >= this.maxAttempts) failed.push({ id: msg.id, reason: 'submit_failed', error: r.reason });
          else
            requeue.push({
              id: msg.id,
              at: new Date(now.getTime() + backoffMs(msg.attempts)),
              error: r.reason,
              countAttempt: true,
            });
          break;
        case 'unavailable':
          requeue.push({
            id: msg.id,
            at: new Date(now.getTime() + Math.max(100, r.retryAfterMs)),
            error: r.reason,
            countAttempt: false,
          });
          break;
        case 'uncertain':
          uncertain.push({ id: msg.id, error: r.reason });
          break;
      }
    });

    await this.dataSource.transaction(async (m) => {
      // Refunds of this transaction are made in one call at the end: tenants locked once, in order.
      const refunds: string[] = [];
      if (accepted.length) {
        const accountOf = new Map(claimed.map((c) => [c.id, c.provider_account_id]));
        await lockReportKeys(
          m,
          accepted.map((a) => ({ accountId: accountOf.get(a.id)!, providerMessageId: a.pid })),
        );
        // From `uncertain` too: the lease janitor may have given up on a slow but live worker.
        const rows = await sqlRows<{
          id: string;
          tenant_id: string;
          provider_account_id: string;
          provider_message_id: string;
        }>(
          m,
          `UPDATE messages m SET status = 'submitted', provider_message_id = u.pid, submitted_at = $1, lease_until = NULL
             FROM unnest($2::uuid[], $3::text[]) AS u(id, pid)
            WHERE m.id = u.id AND m.status IN ('submitting', 'uncertain')
            RETURNING m.id, m.tenant_id, m.provider_account_id, m.provider_message_id`,
          [now, accepted.map((a) => a.id), accepted.map((a) => a.pid)],
        );
        await this.events(
          m,
          rows.map((r) => ({ id: r.id, tenant_id: r.tenant_id })),
          'submitted',
          now,
        );
        // A delivery report may have arrived before the send was answered (the provider is fast).
        refunds.push(...(await this.reports.applyPendingFor(m, rows, now)));
      }
      if (failed.length) {
        const rows = await sqlRows<{ id: string; tenant_id: string }>(
          m,
          `UPDATE messages m SET status = 'failed', failure_reason = u.reason, last_error = u.error, finalized_at = $1, lease_until = NULL
             FROM unnest($2::uuid[], $3::text[], $4::text[]) AS u(id, reason, error)
            WHERE m.id = u.id AND ${STILL_OURS}
            RETURNING m.id, m.tenant_id`,
          [now, failed.map((f) => f.id), failed.map((f) => f.reason), failed.map((f) => f.error)],
        );
        await this.events(m, rows, 'failed', now);
        refunds.push(...rows.map((r) => r.id));
      }
      if (requeue.length) {
        await m.query(
          `UPDATE messages m SET status = 'queued', next_attempt_at = u.at, last_error = u.error, lease_until = NULL,
                  attempts = CASE WHEN u.counts THEN m.attempts ELSE m.attempts - 1 END,
                  -- An uncertain submit sent back to the queue: the looks of this attempt say nothing about the
                  -- next one, which gets its own (RECONCILE_AFTER_SECONDS after it is uncertain, then again).
                  next_reconcile_at = NULL, first_absent_at = NULL
             FROM unnest($1::uuid[], $2::timestamptz[], $3::text[], $4::bool[]) AS u(id, at, error, counts)
            WHERE m.id = u.id AND ${STILL_OURS}`,
          [
            requeue.map((r) => r.id),
            requeue.map((r) => r.at),
            requeue.map((r) => r.error),
            requeue.map((r) => r.countAttempt),
          ],
        );
      }
      if (uncertain.length) {
        const rows = await sqlRows<{ id: string; tenant_id: string }>(
          m,
          `UPDATE messages m SET status = 'uncertain', last_error = u.error, lease_until = NULL
             FROM unnest($1::uuid[], $2::text[]) AS u(id, error)
            WHERE m.id = u.id AND m.status = 'submitting'
            RETURNING m.id, m.tenant_id`,
          [uncertain.map((u) => u.id), uncertain.map((u) => u.error)],
        );
        await this.events(m, rows, 'submitted', now, { uncertain: true });
      }
      await this.refunds.refund(m, refunds, now);
    });
  }

  private async events(
    m: EntityManager,
    rows: { id: string; tenant_id: string }[],
    status: string,
    now: Date,
    detail?: object,
  ) {
    await this.messageEvents.record(
      m,
      rows.map((r) => ({ messageId: r.id, tenantId: r.tenant_id, status, detail })),
      now,
    );
  }
}

/**
 * A claim's outcome applies to a row still `submitting`, or to one the lease janitor already turned
 * `uncertain` while this worker was slow: when the worker then learns "rejected" or "never written",
 * that knowledge is better than the janitor's guess (no provider id was recorded either way).
 */
const STILL_OURS = `(m.status = 'submitting' OR (m.status = 'uncertain' AND m.provider_message_id IS NULL))`;

/** 1 s, 2 s, 4 s … capped at 60 s, with ±20 % jitter so retries of a burst spread out. */
export function backoffMs(attempt: number): number {
  const base = Math.min(60_000, 1000 * 2 ** Math.max(0, attempt - 1));
  return Math.round(base * (0.8 + Math.random() * 0.4));
}

import { Injectable } from '@nestjs/common';
import { DataSource, EntityManager } from 'typeorm';
import { MessageEventsService } from './message-events.service';
import { MessageRefundsService } from './message-refunds.service';
import { inTransaction } from '../database/transaction';
import { rows as sqlRows } from '../database/raw-rows';
import { lockReportKeys, MessageReportsService } from './message-reports.service';

/** A submitted message without a final report, claimed for one report.php poll. */
export interface PollTarget {
  id: string;
  providerAccountId: string;
  providerMessageId: string;
  /** Polls made before this one (the backoff exponent). */
  polls: number;
  /** When it was submitted (its 72 h expiry counts from here). */
  submittedAt: Date;
  /** The claim: the poll's result is recorded only while next_poll_at still holds it. */
  claimUntil: Date;
}

/** An `uncertain` submit, claimed for one look in the provider's report download. */
export interface UncertainTarget {
  id: string;
  providerAccountId: string;
  msisdn: string;
  text: string;
  createdAt: Date;
  /** When the submit became uncertain (its last event): the attempt was at most a send timeout before. */
  uncertainAt: Date;
  reconcileLooks: number;
}

export type AbsentResult = 'absent' | 'failed' | 'gone';

/** Statuses a final report still changes (status-machine.ts): open ones, and `expired` (a late 22 delivers it). */
const OPEN_TO_REPORT = ['submitted', 'pending', 'expired'];

/**
 * What the DLR module needs of `messages` to close the report loop (docs/dlr.md "Report pipeline").
 * Messaging stays the only writer of `messages` and `message_events`; every write here is guarded by
 * the status it expects, so a poller or reconciler that lost a race changes nothing.
 */
@Injectable()
export class MessageFollowUpService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly refunds: MessageRefundsService,
    private readonly reports: MessageReportsService,
    private readonly messageEvents: MessageEventsService,
  ) {}

  /**
   * Claims up to `limit` submitted messages whose poll is due (first `pollAfterMs` after submission,
   * then `next_poll_at`), at most `perAccount` per provider account, moving next_poll_at to `claimUntil`
   * (FOR UPDATE SKIP LOCKED: two processes never claim one message for the same turn).
   */
  async claimForPoll(
    now: Date,
    opts: { pollAfterMs: number; claimUntil: Date; limit: number; perAccount: number },
  ): Promise<PollTarget[]> {
    const claimed = await sqlRows<{
      id: string;
      provider_account_id: string;
      provider_message_id: string;
      polls: number;
      submitted_at: Date;
    }>(
      this.dataSource,
      // Every account with due work gets its turn (at most perAccount each), so one account's backlog
      // never starves the others; the rows are locked and skipped as in every claim.
      `WITH due_accounts AS (
         SELECT DISTINCT provider_account_id FROM messages
          WHERE status IN ('submitted', 'pending') AND provider_message_id IS NOT NULL
            AND (next_poll_at <= $1 OR (next_poll_at IS NULL AND submitted_at <= $2))),
       due AS (
         SELECT x.id FROM due_accounts a
          CROSS JOIN LATERAL (
            SELECT id FROM messages
             WHERE provider_account_id = a.provider_account_id
               AND status IN ('submitted', 'pending') AND provider_message_id IS NOT NULL
               AND (next_poll_at <= $1 OR (next_poll_at IS NULL AND submitted_at <= $2))
             ORDER BY COALESCE(next_poll_at, submitted_at)
             LIMIT $5
               FOR UPDATE SKIP LOCKED) x
          LIMIT $3)
       UPDATE messages m SET next_poll_at = $4
         FROM due WHERE m.id = due.id
       RETURNING m.id, m.provider_account_id, m.provider_message_id, m.polls, m.submitted_at`,
      [now, new Date(now.getTime() - opts.pollAfterMs), opts.limit, opts.claimUntil, opts.perAccount],
    );
    return claimed.map((r) => ({
      id: r.id,
      providerAccountId: r.provider_account_id,
      providerMessageId: r.provider_message_id,
      polls: r.polls,
      submittedAt: r.submitted_at,
      claimUntil: opts.claimUntil,
    }));
  }

  /** Records a poll that left the message open: one more poll, the next at `nextPollAt` (only while claimed). */
  async polled(target: PollTarget, nextPollAt: Date): Promise<void> {
    await this.dataSource.query(
      `UPDATE messages SET polls = polls + 1, next_poll_at = $2
        WHERE id = $1 AND status IN ('submitted', 'pending') AND next_poll_at = $3`,
      [target.id, nextPollAt, target.claimUntil],
    );
  }

  /**
   * Submitted messages without a final report `maxAgeMs` after submission become `expired` (final, not
   * refunded; a late 22 still turns them `delivered`). Returns how many.
   *
   * A report the provider was answered for (stored) but that is not applied yet — its apply failed and
   * waits for the sweep, or it is still queued behind others — is applied first, in this transaction,
   * under its advisory key: a 50 kept before the 72 h ends as `failed` and refunded, not as `expired`
   * (which would never take it). The keys are taken before the rows, in the report path's order.
   */
  async expireOverdue(now: Date, maxAgeMs: number, limit = 1000): Promise<number> {
    return inTransaction(this.dataSource, async (m) => {
      const overdue = await sqlRows<{ id: string; provider_account_id: string; provider_message_id: string }>(
        m,
        `SELECT id, provider_account_id, provider_message_id FROM messages
          WHERE status IN ('submitted', 'pending') AND submitted_at <= $1
          ORDER BY submitted_at LIMIT $2`,
        [new Date(now.getTime() - maxAgeMs), limit],
      );
      // (submitted_at of a submitted message never changes: only the status is checked again below.)
      if (overdue.length === 0) return 0;
      await lockReportKeys(
        m,
        overdue.map((o) => ({ accountId: o.provider_account_id, providerMessageId: o.provider_message_id })),
      );
      const refunds = await this.reports.applyPendingFor(m, overdue, now);
      const expired = await sqlRows<{ id: string; tenant_id: string }>(
        m,
        `WITH due AS (
           SELECT id FROM messages
            WHERE id = ANY ($2::uuid[]) AND status IN ('submitted', 'pending')
            FOR UPDATE SKIP LOCKED)
         UPDATE messages m SET status = 'expired', finalized_at = $1, next_poll_at = NULL
           FROM due WHERE m.id = due.id
         RETURNING m.id, m.tenant_id`,
        [now, overdue.map((o) => o.id)],
      );
      await this.events(m, expired, 'expired', now, { reason: 'no_final_report' });
      await this.refunds.refund(m, refunds, now);
      return expired.length;
    });
  }

  /**
   * Claims up to `limit` uncertain submits whose look is due (first `afterMs` after they became
   * uncertain, then next_reconcile_at), moving next_reconcile_at to `claimUntil`.
   */
  async claimUncertain(
    now: Date,
    opts: { afterMs: number; claimUntil: Date; limit: number },
  ): Promise<UncertainTarget[]> {
    const claimed = await sqlRows<{
      id: string;
      provider_account_id: string;
      msisdn: string;
      text: string;
      created_at: Date;
      uncertain_at: Date | null;
      reconcile_looks: number;
    }>(
      this.dataSource,
      `WITH due AS (
         SELECT m.id, ev.at AS uncertain_at
           FROM messages m
           LEFT JOIN LATERAL (SELECT max(e.created_at) AS at FROM message_events e WHERE e.message_id = m.id) ev ON true
          WHERE m.status = 'uncertain' AND m.provider_message_id IS NULL
            AND (m.next_reconcile_at <= $1 OR (m.next_reconcile_at IS NULL AND COALESCE(ev.at, m.created_at) <= $2))
          ORDER BY m.id
          LIMIT $3
          FOR UPDATE OF m SKIP LOCKED)
       UPDATE messages m SET next_reconcile_at = $4
         FROM due WHERE m.id = due.id
       RETURNING m.id, m.provider_account_id, m.msisdn, m.text, m.created_at, due.uncertain_at, m.reconcile_looks`,
      [now, new Date(now.getTime() - opts.afterMs), opts.limit, opts.claimUntil],
    );
    return claimed.map((r) => ({
      id: r.id,
      providerAccountId: r.provider_account_id,
      msisdn: r.msisdn,
      text: r.text,
      createdAt: new Date(r.created_at),
      uncertainAt: new Date(r.uncertain_at ?? r.created_at),
      reconcileLooks: r.reconcile_looks,
    }));
  }

  /** Provider ids of these already recorded on some message of the account (a report row taken by another message). */
  async takenProviderIds(providerAccountId: string, providerMessageIds: string[]): Promise<Set<string>> {
    const found = await sqlRows<{ provider_message_id: string }>(
      this.dataSource,
      `SELECT provider_message_id FROM messages WHERE provider_account_id = $1 AND provider_message_id = ANY($2::text[])`,
      [providerAccountId, providerMessageIds],
    );
    return new Set(found.map((r) => r.provider_message_id));
  }

  /**
   * The provider has the uncertain submit under `providerMessageId`: it becomes `submitted` with that id
   * (submitted at `submittedAt`, the provider's time), and reports stored before the id was known apply
   * now, in the same transaction (refunding a failure once). 'gone' if it was no longer uncertain.
   *
   * 'deferred' (nothing changed) while another message of the same account, number and text is being
   * submitted: the row matched by number, text and time may be that send's, whose own outcome has not
   * been recorded yet. Taking its id here would make that outcome collide with the unique provider id
   * (and hold up its dispatcher's recording); the caller looks again later, when that id is known.
   */
  async markFound(
    messageId: string,
    providerAccountId: string,
    providerMessageId: string,
    submittedAt: Date,
    now: Date,
  ): Promise<'found' | 'gone' | 'deferred'> {
    return inTransaction(this.dataSource, async (m) => {
      await lockReportKeys(m, [{ accountId: providerAccountId, providerMessageId }]);
      const [busy] = await sqlRows<{ busy: boolean }>(
        m,
        `SELECT EXISTS (
           SELECT 1 FROM messages o JOIN messages u ON u.id = $1
            WHERE o.provider_account_id = u.provider_account_id AND o.msisdn = u.msisdn AND o.text = u.text
              AND o.id <> u.id AND o.status = 'submitting') AS busy`,
        [messageId],
      );
      if (busy?.busy) return 'deferred';
      const updated = await sqlRows<{
        id: string;
        tenant_id: string;
        provider_account_id: string;
        provider_message_id: string;
      }>(
        m,
        `UPDATE messages SET status = 'submitted', provider_message_id = $2, submitted_at = $3, next_reconcile_at = NULL,
                last_error = NULL
          WHERE id = $1 AND status = 'uncertain' AND provider_message_id IS NULL
          RETURNING id, tenant_id, provider_account_id, provider_message_id`,
        [messageId, providerMessageId, submittedAt],
      );
      if (updated.length === 0) return 'gone';
      await this.events(m, updated, 'submitted', now, { reconciled: true });
      const refunds = await this.reports.applyPendingFor(m, updated, now);
      await this.refunds.refund(m, refunds, now);
      return 'found';
    });
  }

  /**
   * One look did not find the uncertain submit. The first such look is remembered and another is due
   * `afterMs` later; a look at least `afterMs` after the first absent one fails the message
   * (`failed`/`submit_failed`, refunded exactly once, never resent). 'gone': no longer uncertain.
   */
  async markAbsent(messageId: string, now: Date, afterMs: number): Promise<AbsentResult> {
    return inTransaction(this.dataSource, async (m) => {
      const [row] = await sqlRows<{ first_absent_at: Date | null; tenant_id: string }>(
        m,
        `SELECT first_absent_at, tenant_id FROM messages
          WHERE id = $1 AND status = 'uncertain' AND provider_message_id IS NULL FOR NO KEY UPDATE`,
        [messageId],
      );
      if (!row) return 'gone';
      if (row.first_absent_at && now.getTime() - new Date(row.first_absent_at).getTime() >= afterMs) {
        await m.query(
          `UPDATE messages SET status = 'failed', failure_reason = 'submit_failed', finalized_at = $2,
                  next_reconcile_at = NULL, reconcile_looks = reconcile_looks + 1,
                  last_error = 'not in the provider''s report after two looks'
            WHERE id = $1`,
          [messageId, now],
        );
        await this.events(m, [{ id: messageId, tenant_id: row.tenant_id }], 'failed', now, {
          reason: 'submit_failed',
          reconciled: true,
        });
        await this.refunds.refund(m, [messageId], now);
        return 'failed';
      }
      await m.query(
        `UPDATE messages SET reconcile_looks = reconcile_looks + 1, first_absent_at = COALESCE(first_absent_at, $2),
                next_reconcile_at = $3
          WHERE id = $1`,
        [messageId, now, new Date(now.getTime() + afterMs)],
      );
      return 'absent';
    });
  }

  /** A look that could not be made (download failed): tried again at `nextAt`, nothing else changes. */
  async lookFailed(messageId: string, nextAt: Date): Promise<void> {
    await this.dataSource.query(`UPDATE messages SET next_reconcile_at = $2 WHERE id = $1 AND status = 'uncertain'`, [
      messageId,
      nextAt,
    ]);
  }

  /**
   * Of these provider ids, what the report reconciliation compares (src/dlr): the message carrying each,
   * its status, the segments it was charged, and whether a final report still applies to it (`open`:
   * submitted, pending, expired). Ids no message carries are absent from the map.
   */
  async reportFacts(
    providerAccountId: string,
    providerMessageIds: string[],
  ): Promise<Map<string, { id: string; status: string; segments: number; open: boolean }>> {
    if (!providerAccountId) throw new Error('reportFacts requires a provider account id');
    if (providerMessageIds.length === 0) return new Map();
    const found = await sqlRows<{ id: string; provider_message_id: string; status: string; segments: number }>(
      this.dataSource,
      // Ordered by id so that, should the provider ever reuse an id in a later month (provider ids are
      // unique per month of messages only, docs/data-model.md "Partitioning"), the newest message wins,
      // as in MessageReportsService.apply.
      `SELECT id, provider_message_id, status, segments FROM messages
        WHERE provider_account_id = $1 AND provider_message_id = ANY($2::text[])
        ORDER BY id`,
      [providerAccountId, providerMessageIds],
    );
    return new Map(
      found.map((r) => [
        r.provider_message_id,
        { id: r.id, status: r.status, segments: r.segments, open: OPEN_TO_REPORT.includes(r.status) },
      ]),
    );
  }

  /** The account's messages submitted in [from, to) with a provider id: ours, to look for in the provider's report. */
  async submittedBetween(
    providerAccountId: string,
    from: Date,
    to: Date,
  ): Promise<{ id: string; providerMessageId: string; submittedAt: Date }[]> {
    if (!providerAccountId) throw new Error('submittedBetween requires a provider account id');
    const found = await sqlRows<{ id: string; provider_message_id: string; submitted_at: Date }>(
      this.dataSource,
      `SELECT id, provider_message_id, submitted_at FROM messages
        WHERE provider_account_id = $1 AND provider_message_id IS NOT NULL AND submitted_at >= $2 AND submitted_at < $3`,
      [providerAccountId, from, to],
    );
    return found.map((r) => ({ id: r.id, providerMessageId: r.provider_message_id, submittedAt: r.submitted_at }));
  }

  private async events(
    m: EntityManager,
    rows: { id: string; tenant_id: string }[],
    status: string,
    now: Date,
    detail: object,
  ): Promise<void> {
    await this.messageEvents.record(
      m,
      rows.map((r) => ({ messageId: r.id, tenantId: r.tenant_id, status, detail })),
      now,
    );
  }
}

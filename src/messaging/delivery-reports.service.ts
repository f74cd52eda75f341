import { Injectable, Logger } from '@nestjs/common';
import { Counter, register } from 'prom-client';
import { DataSource, EntityManager } from 'typeorm';
import { LedgerService } from '../billing/ledger.service';
import { Clock } from '../common/clock';
import { ProviderAccountsService } from '../provider/provider-accounts.service';
import { transitionFor } from './status-machine';

export interface IncomingReport {
  sessionId: string;
  code: number;
  text: string | null;
  msisdn: string | null;
}

/** How long sending through an account is held after the provider said 50 (empty) or 51 (lapsed). */
const HOLD_AFTER_EXHAUSTED_MS = 5 * 60_000;
/** Most reports written by one transaction. */
const MAX_REPORTS_PER_TX = 1000;

interface StoredReport {
  seq: number;
  accountId: string;
  providerMessageId: string;
  code: number;
  msisdn: string | null;
}

const flaggedReports =
  (register.getSingleMetric('gerbang_dlr_flagged_total') as Counter<string> | undefined) ??
  new Counter({
    name: 'gerbang_dlr_flagged_total',
    help: 'Delivery reports stored but not applied because they do not fit their message',
    labelNames: ['reason'],
  });

/**
 * The number a report names, in the form messages store (`62` + national number), or null when it
 * is not a number at all. Cheap on purpose (every report): separators and a leading `+` dropped,
 * `0062…` and a trunk `0…` read as `62…`.
 */
export function reportNumber(raw: string): string | null {
  const digits = raw.replace(/[\s().-]/g, '').replace(/^\+/, '');
  if (!/^[0-9]{5,20}$/.test(digits)) return null;
  if (digits.startsWith('0062')) return digits.slice(2);
  if (digits.startsWith('0')) return `62${digits.slice(1)}`;
  return digits;
}

/** A report without a number (the poll answer has none) matches; one with a number must name the message's. */
export function reportFitsNumber(reportMsisdn: string | null, messageMsisdn: string): boolean {
  if (reportMsisdn === null || reportMsisdn === '') return true;
  return reportNumber(reportMsisdn) === messageMsisdn;
}

interface PendingReport {
  accountId: string;
  report: IncomingReport;
  source: 'callback' | 'poll';
  resolve(): void;
  reject(err: unknown): void;
}

/**
 * Delivery reports fan in from every provider account's callback URL. Each report is stored raw
 * first (so nothing is lost), then applied to its message under the message's row lock, in the
 * same transaction, before the provider gets its 200.
 *
 * Group commit, as on the accept path: callbacks that arrive while a transaction runs wait in
 * memory and are stored and applied together by the next one (a burst of thousands of callbacks a
 * second would otherwise be thousands of transactions).
 *
 * A report that arrives before the send was answered (no message carries that provider id yet)
 * waits in `delivery_reports` and is applied when the dispatcher records the id (applyPendingFor).
 */
@Injectable()
export class DeliveryReportsService {
  private readonly logger = new Logger(DeliveryReportsService.name);
  private readonly tokens = new Map<string, { accountId: string | null; until: number }>();
  private pending: PendingReport[] = [];
  private flushing = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly ledger: LedgerService,
    private readonly accounts: ProviderAccountsService,
    private readonly clock: Clock,
  ) {}

  /** Resolves a callback token to its provider account id (cached 30 s), or null. */
  async accountForToken(token: string): Promise<string | null> {
    const now = Date.now();
    const hit = this.tokens.get(token);
    if (hit && hit.until > now) return hit.accountId;
    const account = await this.accounts.findByDlrToken(token);
    if (this.tokens.size > 10_000) this.tokens.clear();
    this.tokens.set(token, { accountId: account?.id ?? null, until: now + 30_000 });
    return account?.id ?? null;
  }

  /** Resolves once the report is durably stored (and applied, if its message is known). */
  receive(accountId: string, report: IncomingReport, source: 'callback' | 'poll' = 'callback'): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ accountId, report, source, resolve, reject });
      if (!this.flushing) void this.drain();
    });
  }

  private async drain(): Promise<void> {
    this.flushing = true;
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, MAX_REPORTS_PER_TX);
        try {
          await this.dataSource.transaction((m) => this.storeAndApply(m, batch));
          batch.forEach((p) => p.resolve());
        } catch (err) {
          if (batch.length === 1) {
            batch[0].reject(err);
            continue;
          }
          this.logger.warn(
            { reports: batch.length, err: (err as Error).message },
            'report group commit failed; retrying one by one',
          );
          for (const p of batch) {
            await this.dataSource
              .transaction((m) => this.storeAndApply(m, [p]))
              .then(
                () => p.resolve(),
                (e: unknown) => p.reject(e),
              );
          }
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  private async storeAndApply(m: EntityManager, batch: PendingReport[]): Promise<void> {
    const now = this.clock.now();
    await lockReportKeys(
      m,
      batch.map((p) => ({ accountId: p.accountId, providerMessageId: p.report.sessionId })),
    );
    const stored: { seq: string }[] = await m.query(
      `INSERT INTO delivery_reports (provider_account_id, provider_message_id, code, text, msisdn, source, received_at)
       SELECT u.account, u.pid, u.code, u.text, u.msisdn, u.source, $1
         FROM unnest($2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS u(account, pid, code, text, msisdn, source, ord)
        ORDER BY u.ord
       RETURNING seq`,
      [
        now,
        batch.map((p) => p.accountId),
        batch.map((p) => p.report.sessionId),
        batch.map((p) => p.report.code),
        batch.map((p) => p.report.text),
        batch.map((p) => p.report.msisdn),
        batch.map((p) => p.source),
      ],
    );
    // RETURNING follows the insert order; seqs are increasing within the statement.
    const seqs = stored.map((r) => Number(r.seq)).sort((a, b) => a - b);
    const refunds = await this.applyReports(
      m,
      batch.map((p, i) => ({
        seq: seqs[i],
        accountId: p.accountId,
        providerMessageId: p.report.sessionId,
        code: p.report.code,
        msisdn: p.report.msisdn,
      })),
      now,
    );
    await this.ledger.refundMessages(m, refunds, now);
  }

  /**
   * Applies reports that arrived before these messages' provider ids were known (caller holds the
   * advisory keys). Returns the messages to refund: the caller refunds them together with its own,
   * in one call, so tenants are always locked in one sorted order per transaction.
   */
  async applyPendingFor(
    m: EntityManager,
    messages: { provider_account_id: string; provider_message_id: string }[],
    now: Date,
  ): Promise<string[]> {
    if (messages.length === 0) return [];
    const pending: {
      seq: string;
      provider_account_id: string;
      provider_message_id: string;
      code: number;
      msisdn: string | null;
    }[] = await m.query(
      `SELECT d.seq, d.provider_account_id, d.provider_message_id, d.code, d.msisdn FROM delivery_reports d
         JOIN unnest($1::uuid[], $2::text[]) AS u(account, pid) ON d.provider_account_id = u.account AND d.provider_message_id = u.pid
        WHERE d.applied_at IS NULL AND d.flagged IS NULL ORDER BY d.seq`,
      [messages.map((x) => x.provider_account_id), messages.map((x) => x.provider_message_id)],
    );
    return this.applyReports(
      m,
      pending.map((p) => ({
        seq: Number(p.seq),
        accountId: p.provider_account_id,
        providerMessageId: p.provider_message_id,
        code: p.code,
        msisdn: p.msisdn,
      })),
      now,
    );
  }

  /**
   * Applies stored reports (in seq order) to their messages, if those are known: one statement per
   * kind of write for the whole batch. Unknown ids stay unapplied for applyPendingFor.
   * Returns the ids of messages that failed and must be refunded (by the caller, once).
   */
  private async applyReports(m: EntityManager, reports: StoredReport[], now: Date): Promise<string[]> {
    if (reports.length === 0) return [];
    const msgs: {
      id: string;
      tenant_id: string;
      status: string;
      provider_account_id: string;
      provider_message_id: string;
      msisdn: string;
    }[] = await m.query(
      `SELECT m.id, m.tenant_id, m.status, m.provider_account_id, m.provider_message_id, m.msisdn FROM messages m
         JOIN (SELECT DISTINCT a, p FROM unnest($1::uuid[], $2::text[]) AS u(a, p)) k
           ON m.provider_account_id = k.a AND m.provider_message_id = k.p
        ORDER BY m.id
          FOR UPDATE OF m`,
      [reports.map((r) => r.accountId), reports.map((r) => r.providerMessageId)],
    );
    if (msgs.length === 0) return [];
    const byKey = new Map(
      msgs.map((x) => [
        `${x.provider_account_id}:${x.provider_message_id}`,
        { ...x, code: null as number | null, changed: false, failureReason: null as string | null, final: false },
      ]),
    );
    const applied: { seq: number; messageId: string }[] = [];
    const events: { id: string; tenantId: string; status: string; code: number }[] = [];
    const refunds: string[] = [];
    const holds = new Map<string, number>();
    const flagged: number[] = [];
    for (const r of [...reports].sort((a, b) => a.seq - b.seq)) {
      const msg = byKey.get(`${r.accountId}:${r.providerMessageId}`);
      if (!msg) continue;
      if (!reportFitsNumber(r.msisdn, msg.msisdn)) {
        // Not this message's report (a provider id reused, or a report for someone else): kept, never applied.
        flagged.push(r.seq);
        continue;
      }
      applied.push({ seq: r.seq, messageId: msg.id });
      const t = transitionFor(msg.status, r.code);
      if (!t) {
        // Duplicate or out of order (e.g. 20 after 22): recorded, but the status stays.
        if (msg.code === null) msg.code = r.code;
        continue;
      }
      msg.status = t.status;
      msg.code = r.code;
      msg.changed = true;
      msg.final = msg.final || t.final;
      msg.failureReason = t.status === 'failed' ? t.failureReason : null;
      events.push({ id: msg.id, tenantId: msg.tenant_id, status: t.status, code: r.code });
      if (t.status === 'failed') {
        refunds.push(msg.id);
        if (r.code === 50 || r.code === 51) holds.set(r.accountId, r.code);
      }
    }
    if (flagged.length) {
      await m.query(`UPDATE delivery_reports SET flagged = 'msisdn_mismatch' WHERE seq = ANY($1::bigint[])`, [flagged]);
      flaggedReports.inc({ reason: 'msisdn_mismatch' }, flagged.length);
      this.logger.warn(
        { reports: flagged, reason: 'msisdn_mismatch' },
        'delivery report names another number than its message: stored, flagged, not applied',
      );
    }
    await m.query(
      `UPDATE delivery_reports d SET message_id = u.message_id, applied_at = $1 FROM unnest($2::bigint[], $3::uuid[]) AS u(seq, message_id) WHERE d.seq = u.seq`,
      [now, applied.map((a) => a.seq), applied.map((a) => a.messageId)],
    );
    const changed = [...byKey.values()].filter((x) => x.changed);
    if (changed.length) {
      await m.query(
        `UPDATE messages m SET status = u.status, provider_status_code = u.code, failure_reason = u.reason,
                finalized_at = CASE WHEN u.final THEN COALESCE(m.finalized_at, $1) ELSE m.finalized_at END
           FROM unnest($2::uuid[], $3::text[], $4::int[], $5::text[], $6::bool[]) AS u(id, status, code, reason, final)
          WHERE m.id = u.id`,
        [
          now,
          changed.map((x) => x.id),
          changed.map((x) => x.status),
          changed.map((x) => x.code),
          changed.map((x) => x.failureReason),
          changed.map((x) => x.final),
        ],
      );
    }
    const codeOnly = [...byKey.values()].filter((x) => !x.changed && x.code !== null);
    if (codeOnly.length) {
      await m.query(
        `UPDATE messages m SET provider_status_code = COALESCE(m.provider_status_code, u.code) FROM unnest($1::uuid[], $2::int[]) AS u(id, code) WHERE m.id = u.id`,
        [codeOnly.map((x) => x.id), codeOnly.map((x) => x.code)],
      );
    }
    if (events.length) {
      await m.query(
        `INSERT INTO message_events (message_id, tenant_id, status, detail, created_at)
         SELECT u.id, u.tenant_id, u.status, jsonb_build_object('code', u.code), $1
           FROM unnest($2::uuid[], $3::uuid[], $4::text[], $5::int[]) WITH ORDINALITY AS u(id, tenant_id, status, code, ord) ORDER BY u.ord`,
        [
          now,
          events.map((e) => e.id),
          events.map((e) => e.tenantId),
          events.map((e) => e.status),
          events.map((e) => e.code),
        ],
      );
    }
    for (const [accountId, code] of holds) {
      await m.query(`UPDATE provider_accounts SET held_until = $2, held_reason = $3 WHERE id = $1`, [
        accountId,
        new Date(now.getTime() + HOLD_AFTER_EXHAUSTED_MS),
        code === 50 ? 'provider balance empty (50)' : 'provider validity expired (51)',
      ]);
      this.logger.warn({ accountId, code }, 'provider account exhausted: holding its queue');
    }
    return refunds;
  }
}

/**
 * Serialises a delivery report and the recording of its message's provider id (which may race:
 * the provider can call back before our send request has been answered). Both sides take these
 * transaction-scoped advisory locks first, in key order, so whichever commits second sees the
 * other's row. Lock order everywhere: advisory keys, then message rows, then tenants.
 */
export async function lockReportKeys(
  m: EntityManager,
  keys: { accountId: string; providerMessageId: string }[],
): Promise<void> {
  if (keys.length === 0) return;
  await m.query(
    `SELECT pg_advisory_xact_lock(k) FROM (
       SELECT DISTINCT hashtextextended(u.a || ':' || u.p, 0) AS k FROM unnest($1::text[], $2::text[]) AS u(a, p) ORDER BY k
     ) s`,
    [keys.map((k) => k.accountId), keys.map((k) => k.providerMessageId)],
  );
}

import { Injectable, Logger } from '@nestjs/common';
import { prepared } from '../database/raw-rows';
import { EntityManager } from 'typeorm';
import { transitionFor } from './status-machine';
import { ProviderAccountsService } from '../provider/provider-accounts.service';
import { MessageEventsService } from './message-events.service';

/** A delivery report as the provider sent it (callback or poll answer). */
export interface IncomingReport {
  sessionId: string;
  code: number;
  text: string | null;
  msisdn: string | null;
}

/** A delivery report as stored (delivery_reports, owned by src/dlr), to be applied to its message. */
export interface StoredReport {
  seq: number;
  accountId: string;
  providerMessageId: string;
  code: number;
  msisdn: string | null;
  /** Where it came from (`callback`, `poll`, `report`: the provider's report download) and when it was stored. */
  source: string;
  receivedAt: Date;
}

export interface ReportVerdicts {
  applied: { seq: number; messageId: string }[];
  /** Reports naming another number than their message (`msisdn_mismatch`). */
  flagged: number[];
  /** Messages failed by these reports: the caller refunds them (once, with its own, in one call). */
  refunds: string[];
}

/** Applies reports that arrived before their messages' provider ids were known; bound by src/dlr. */
export type PendingReportsApplier = (
  m: EntityManager,
  messages: { provider_account_id: string; provider_message_id: string }[],
  now: Date,
) => Promise<string[]>;

/** How long sending through an account is held after the provider said 50 (empty) or 51 (lapsed). */
const HOLD_AFTER_EXHAUSTED_MS = 5 * 60_000;

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

/**
 * Messaging's half of a delivery report: what it does to its message (status machine, event, refund
 * list, account hold). The raw report (`delivery_reports`) belongs to src/dlr, which stores it and
 * calls `apply` in the same transaction (docs/dlr.md "Report pipeline").
 */
@Injectable()
export class MessageReportsService {
  private readonly logger = new Logger(MessageReportsService.name);
  private pending?: PendingReportsApplier;

  constructor(
    private readonly messageEvents: MessageEventsService,
    private readonly accounts: ProviderAccountsService,
  ) {}

  /** src/dlr binds how stored, not yet applied reports are found and applied (it owns them). */
  bindPending(applier: PendingReportsApplier): void {
    this.pending = applier;
  }

  /**
   * Applies reports that arrived before these messages' provider ids were known (caller holds the
   * advisory keys). Returns the messages to refund: the caller refunds them together with its own.
   */
  async applyPendingFor(
    m: EntityManager,
    messages: { provider_account_id: string; provider_message_id: string }[],
    now: Date,
  ): Promise<string[]> {
    if (messages.length === 0) return [];
    // Never silently: an outcome recorded without its early reports would leave them waiting forever.
    if (!this.pending) throw new Error('pending delivery reports are not bound (DlrModule missing)');
    return this.pending(m, messages, now);
  }

  /**
   * Applies stored reports (in seq order) to their messages, if those are known: one statement per
   * kind of write for the whole batch (caller holds the reports' advisory keys). Returns which reports
   * were applied to which message, which do not fit their message (to flag: kept, never applied), and
   * the messages that failed and must be refunded (by the caller, once). Reports of unknown ids are in
   * neither list: they wait for their message (applyPendingFor).
   */
  async apply(m: EntityManager, reports: StoredReport[], now: Date): Promise<ReportVerdicts> {
    const none: ReportVerdicts = { applied: [], flagged: [], refunds: [] };
    if (reports.length === 0) return none;
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
    if (msgs.length === 0) return none;
    // msgs are in id order, so the newest message of a key wins should two months share a provider id.
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
        // A 50/51 holds the account's queue only when it is news about the wallet now: a callback or a poll
        // stored within the hold's length. Yesterday's codes from the report download, or a report the sweep
        // applies long after it arrived, say nothing about today's wallet (the wallet watch decides that).
        if (
          (r.code === 50 || r.code === 51) &&
          r.source !== 'report' &&
          now.getTime() - r.receivedAt.getTime() <= HOLD_AFTER_EXHAUSTED_MS
        )
          holds.set(r.accountId, r.code);
      }
    }
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
    await this.messageEvents.record(
      m,
      events.map((e) => ({ messageId: e.id, tenantId: e.tenantId, status: e.status, detail: { code: e.code } })),
      now,
    );
    // In account order: two transactions holding the same accounts lock their rows in one order (no deadlock).
    for (const [accountId, code] of [...holds].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      await this.accounts.hold(
        m,
        accountId,
        new Date(now.getTime() + HOLD_AFTER_EXHAUSTED_MS),
        code === 50 ? 'provider balance empty (50)' : 'provider validity expired (51)',
      );
      this.logger.warn({ accountId, code }, 'provider account exhausted: holding its queue');
    }
    return { applied, flagged, refunds };
  }
}

/**
 * Serialises a delivery report and the recording of its message's provider id (which may race:
 * the provider can call back before our send request has been answered). Both sides take these
 * transaction-scoped advisory locks first, in key order, so whichever commits second sees the
 * other's row. Lock order everywhere: advisory keys, then message rows, then held provider accounts, then tenants.
 */
export async function lockReportKeys(
  m: EntityManager,
  keys: { accountId: string; providerMessageId: string }[],
): Promise<void> {
  if (keys.length === 0) return;
  await prepared(
    m,
    `SELECT pg_advisory_xact_lock(k) FROM (
       SELECT DISTINCT hashtextextended(u.a || ':' || u.p, 0) AS k FROM unnest($1::text[], $2::text[]) AS u(a, p) ORDER BY k
     ) s`,
    [keys.map((k) => k.accountId), keys.map((k) => k.providerMessageId)],
  );
}

import { Injectable, Logger } from '@nestjs/common';
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

/**
 * Delivery reports fan in from every provider account's callback URL. Each report is stored raw
 * first (so nothing is lost), then applied to its message under the message's row lock. A report
 * that arrives before the send was answered (no message carries that provider id yet) waits in
 * `delivery_reports` and is applied when the dispatcher records the id (applyPendingFor).
 */
@Injectable()
export class DeliveryReportsService {
  private readonly logger = new Logger(DeliveryReportsService.name);
  private readonly tokens = new Map<string, { accountId: string | null; until: number }>();

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

  async receive(accountId: string, report: IncomingReport, source: 'callback' | 'poll' = 'callback'): Promise<void> {
    await this.dataSource.transaction(async (m) => {
      const now = this.clock.now();
      await lockReportKeys(m, [{ accountId, providerMessageId: report.sessionId }]);
      const [row]: { seq: string }[] = await m.query(
        `INSERT INTO delivery_reports (provider_account_id, provider_message_id, code, text, msisdn, source, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq`,
        [accountId, report.sessionId, report.code, report.text, report.msisdn, source, now],
      );
      const msgs: { id: string; tenant_id: string; status: string }[] = await m.query(
        `SELECT id, tenant_id, status FROM messages WHERE provider_account_id = $1 AND provider_message_id = $2 FOR UPDATE`,
        [accountId, report.sessionId],
      );
      if (msgs.length === 0) return; // early (send not answered yet) or unknown: kept for later
      await this.apply(m, msgs[0], accountId, Number(row.seq), report.code, now);
    });
  }

  /** Applies reports that arrived before these messages' provider ids were known. */
  async applyPendingFor(
    m: EntityManager,
    messages: { id: string; tenant_id: string; provider_account_id: string; provider_message_id: string }[],
    now: Date,
  ): Promise<void> {
    if (messages.length === 0) return;
    const pending: { seq: string; provider_account_id: string; provider_message_id: string; code: number }[] = await m.query(
      `SELECT d.seq, d.provider_account_id, d.provider_message_id, d.code FROM delivery_reports d
         JOIN unnest($1::uuid[], $2::text[]) AS u(account, pid) ON d.provider_account_id = u.account AND d.provider_message_id = u.pid
        WHERE d.applied_at IS NULL ORDER BY d.seq`,
      [messages.map((x) => x.provider_account_id), messages.map((x) => x.provider_message_id)],
    );
    for (const p of pending) {
      const msg = messages.find((x) => x.provider_account_id === p.provider_account_id && x.provider_message_id === p.provider_message_id)!;
      const [current]: { status: string }[] = await m.query(`SELECT status FROM messages WHERE id = $1 FOR UPDATE`, [msg.id]);
      await this.apply(m, { id: msg.id, tenant_id: msg.tenant_id, status: current.status }, p.provider_account_id, Number(p.seq), p.code, now);
    }
  }

  private async apply(
    m: EntityManager,
    msg: { id: string; tenant_id: string; status: string },
    accountId: string,
    seq: number,
    code: number,
    now: Date,
  ): Promise<void> {
    await m.query(`UPDATE delivery_reports SET message_id = $2, applied_at = $3 WHERE seq = $1`, [seq, msg.id, now]);
    const t = transitionFor(msg.status, code);
    if (!t) {
      // Duplicate or out of order (e.g. 20 after 22): recorded, but the status stays.
      await m.query(`UPDATE messages SET provider_status_code = COALESCE(provider_status_code, $2) WHERE id = $1`, [msg.id, code]);
      return;
    }
    await m.query(
      `UPDATE messages SET status = $2, provider_status_code = $3, failure_reason = $4,
              finalized_at = CASE WHEN $5 THEN $6::timestamptz ELSE finalized_at END
        WHERE id = $1`,
      [msg.id, t.status, code, t.status === 'failed' ? t.failureReason : null, t.final, now],
    );
    await m.query(`INSERT INTO message_events (message_id, tenant_id, status, detail, created_at) VALUES ($1, $2, $3, $4, $5)`, [
      msg.id, msg.tenant_id, t.status, JSON.stringify({ code }), now,
    ]);
    if (t.status === 'failed') {
      await this.ledger.refundMessages(m, [msg.id], now);
      if (code === 50 || code === 51) {
        await m.query(`UPDATE provider_accounts SET held_until = $2, held_reason = $3 WHERE id = $1`, [
          accountId, new Date(now.getTime() + HOLD_AFTER_EXHAUSTED_MS), code === 50 ? 'provider balance empty (50)' : 'provider validity expired (51)',
        ]);
        this.logger.warn({ accountId, code }, 'provider account exhausted: holding its queue');
      }
    }
  }
}

/**
 * Serialises a delivery report and the recording of its message's provider id (which may race:
 * the provider can call back before our send request has been answered). Both sides take these
 * transaction-scoped advisory locks first, in key order, so whichever commits second sees the
 * other's row. Lock order everywhere: advisory keys, then message rows.
 */
export async function lockReportKeys(m: EntityManager, keys: { accountId: string; providerMessageId: string }[]): Promise<void> {
  if (keys.length === 0) return;
  await m.query(
    `SELECT pg_advisory_xact_lock(k) FROM (
       SELECT DISTINCT hashtextextended(u.a || ':' || u.p, 0) AS k FROM unnest($1::text[], $2::text[]) AS u(a, p) ORDER BY k
     ) s`,
    [keys.map((k) => k.accountId), keys.map((k) => k.providerMessageId)],
  );
}

import { Injectable, Logger } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import { Counter, register } from 'prom-client';
import { DataSource, EntityManager } from 'typeorm';
import { MessageRefundsService } from '../messaging/message-refunds.service';
import { Clock } from '../common/clock';
import { clockTtlCache, dropIfCachedLater } from '../common/ttl-cache';
import {
  IncomingReport,
  lockReportKeys,
  MessageReportsService,
  StoredReport,
} from '../messaging/message-reports.service';
import { ProviderAccountsService } from '../provider/provider-accounts.service';

/** A callback token's provider account is looked up at most this often (an unknown token's `null` too). */
const TOKEN_TTL_MS = 30_000;
const MAX_TOKENS = 10_000;

/** Most reports written by one transaction. */
const MAX_REPORTS_PER_TX = 1000;

const flaggedReports =
  (register.getSingleMetric('gerbang_dlr_flagged_total') as Counter<string> | undefined) ??
  new Counter({
    name: 'gerbang_dlr_flagged_total',
    help: 'Delivery reports stored but not applied because they do not fit their message',
    labelNames: ['reason'],
  });

interface PendingReport {
  accountId: string;
  report: IncomingReport;
  source: 'callback' | 'poll' | 'report';
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
  /** Callback token → its provider account id, or null when no account has it. */
  private readonly tokens: LRUCache<string, { accountId: string | null }>;
  private pending: PendingReport[] = [];
  private flushing = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly refunds: MessageRefundsService,
    private readonly accounts: ProviderAccountsService,
    private readonly messages: MessageReportsService,
    private readonly clock: Clock,
  ) {
    // A burst of callbacks with one token shares one lookup (lru-cache `fetch`).
    this.tokens = clockTtlCache<string, { accountId: string | null }>(clock, {
      max: MAX_TOKENS,
      ttl: TOKEN_TTL_MS,
      fetchMethod: async (token) => ({ accountId: (await this.accounts.findByDlrToken(token))?.id ?? null }),
    });
    // Messaging's dispatcher and reconciler apply early reports through this module (it owns them).
    messages.bindPending((m, msgs, now) => this.applyPendingFor(m, msgs, now));
  }

  /** Resolves a callback token to its provider account id (cached 30 s of the Clock), or null. */
  async accountForToken(token: string): Promise<string | null> {
    dropIfCachedLater(this.tokens, token);
    return (await this.tokens.fetch(token))?.accountId ?? null;
  }

  /** Resolves once the report is durably stored (and applied, if its message is known). */
  receive(
    accountId: string,
    report: IncomingReport,
    source: 'callback' | 'poll' | 'report' = 'callback',
  ): Promise<void> {
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
    const refunds = await this.applyStored(
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
    await this.refunds.refund(m, refunds, now);
  }

  /**
   * Applies reports that arrived before these messages' provider ids were known (caller holds the
   * advisory keys). Returns the messages to refund: the caller refunds them together with its own,
   * in one call, so tenants are always locked in one sorted order per transaction.
   */
  private async applyPendingFor(
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
    return this.applyStored(
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

  /** Applies stored reports through messaging, then records on each report what became of it. */
  private async applyStored(m: EntityManager, reports: StoredReport[], now: Date): Promise<string[]> {
    if (reports.length === 0) return [];
    const { applied, flagged, refunds } = await this.messages.apply(m, reports, now);
    if (flagged.length) {
      await m.query(`UPDATE delivery_reports SET flagged = 'msisdn_mismatch' WHERE seq = ANY($1::bigint[])`, [flagged]);
      flaggedReports.inc({ reason: 'msisdn_mismatch' }, flagged.length);
      this.logger.warn(
        { reports: flagged, reason: 'msisdn_mismatch' },
        'delivery report names another number than its message: stored, flagged, not applied',
      );
    }
    if (applied.length) {
      await m.query(
        `UPDATE delivery_reports d SET message_id = u.message_id, applied_at = $1 FROM unnest($2::bigint[], $3::uuid[]) AS u(seq, message_id) WHERE d.seq = u.seq`,
        [now, applied.map((a) => a.seq), applied.map((a) => a.messageId)],
      );
    }
    return refunds;
  }
}

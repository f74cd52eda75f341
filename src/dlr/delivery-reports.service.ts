import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { prepared } from '../database/raw-rows';
import { LRUCache } from 'lru-cache';
import { Counter, register } from 'prom-client';
import { DataSource, EntityManager } from 'typeorm';
import { MessageRefundsService } from '../messaging/message-refunds.service';
import { Clock } from '../common/clock';
import { clockTtlCache, dropIfCachedLater } from '../common/ttl-cache';
import { isConnectionError } from '../database/connection-errors';
import { inTransaction } from '../database/transaction';
import {
  IncomingReport,
  lockReportKeys,
  MessageReportsService,
  StoredReport,
} from '../messaging/message-reports.service';
import { ProviderAccountsService } from '../provider/provider-accounts.service';
import { applyFailures } from './report-metrics';

/** A callback token's provider account is looked up at most this often (an unknown token's `null` too). */
const TOKEN_TTL_MS = 30_000;
const MAX_TOKENS = 10_000;

/** Most reports written by one transaction. */
const MAX_REPORTS_PER_TX = 1000;

/** Stored reports waiting for the apply beyond which storing waits for it (bounds memory, slows the provider). */
const MAX_APPLY_BACKLOG = 20_000;

const flaggedReports =
  (register.getSingleMetric('gerbang_dlr_flagged_total') as Counter<string> | undefined) ??
  new Counter({
    name: 'gerbang_dlr_flagged_total',
    help: 'Delivery reports stored but not applied because they do not fit their message',
    labelNames: ['reason'],
  });

/** Which message a report is for: its provider account and the provider's id (the advisory key). */
export interface ReportKey {
  accountId: string;
  providerMessageId: string;
}

interface PendingReport {
  accountId: string;
  report: IncomingReport;
  /** A callback is resolved once stored; a poll or the daily report once an apply was attempted. */
  source: 'callback' | 'poll' | 'report';
  resolve(): void;
  reject(err: unknown): void;
}

/** A stored report's key waiting for the apply; `applied` resolves its caller. */
interface StoredKey {
  key: ReportKey;
  applied: () => void;
}

/**
 * Delivery reports fan in from every provider account's callback URL (and from polls and the daily
 * report). The raw report is kept first: each one is stored (one INSERT, committed) before it is
 * matched, then applied to its message in a second transaction. A provider's callback is answered as
 * soon as its report is stored (its 200 means "kept"; the message shows it milliseconds later, once the
 * apply commits): the provider never waits for the matching, and a slow apply (its message row locked
 * by the dispatcher, say) never slows the provider down. Polls and the daily report resolve after
 * their apply (their callers read the outcome). A failure while applying loses nothing and is not the
 * caller's problem: the report stays stored, unapplied, and ReportReapplyService's sweep applies it
 * later. Only a report that could not be stored is answered with an error (503 when the database is
 * away; the poll finds it later).
 *
 * Two group-commit stages, as on the accept path, that overlap: callbacks that arrive while an INSERT
 * runs go together into the next INSERT; keys stored while an apply runs go together into the next
 * apply (up to 1,000 per transaction). Batch k+1 is stored while batch k is applied, instead of one
 * after the other (docs/benchmark.md has the DLR ingest figures).
 *
 * A report that arrives before the send was answered (no message carries that provider id yet)
 * waits in `delivery_reports` and is applied when the dispatcher records the id (applyPendingFor).
 */
@Injectable()
export class DeliveryReportsService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(DeliveryReportsService.name);
  /** Callback token → its provider account id, or null when no account has it. */
  private readonly tokens: LRUCache<string, { accountId: string | null }>;
  private pending: PendingReport[] = [];
  private flushing: Promise<void> | null = null;
  private toApply: StoredKey[] = [];
  private applying: Promise<void> | null = null;

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

  /**
   * Resolves once the report is durably stored (a callback) or once it is stored and an apply was
   * attempted (a poll or the daily report: applied if its message is known and nothing failed);
   * rejects only if it could not be stored.
   */
  receive(
    accountId: string,
    report: IncomingReport,
    source: 'callback' | 'poll' | 'report' = 'callback',
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pending.push({ accountId, report, source, resolve, reject });
      this.flushing ??= this.drain();
    });
  }

  private async drain(): Promise<void> {
    try {
      while (this.pending.length > 0) {
        const batch = this.pending.splice(0, MAX_REPORTS_PER_TX);
        const stored = await this.storeRaw(batch);
        if (stored.length === 0) continue;
        // Stored is durable: from here on the callers get their answer whatever happens to the apply.
        for (const p of stored) {
          const answerNow = p.source === 'callback';
          if (answerNow) p.resolve();
          this.toApply.push({
            key: { accountId: p.accountId, providerMessageId: p.report.sessionId },
            applied: answerNow ? () => {} : () => p.resolve(),
          });
        }
        this.applying ??= this.applyBacklog();
        if (this.toApply.length > MAX_APPLY_BACKLOG) await this.applying;
      }
    } finally {
      this.flushing = null;
    }
  }

  /** Applies stored keys in groups of up to MAX_REPORTS_PER_TX until none are left. Never rejects. */
  private async applyBacklog(): Promise<void> {
    try {
      while (this.toApply.length > 0) {
        const group = this.toApply.splice(0, MAX_REPORTS_PER_TX);
        await this.applyStoredFor(
          group.map((g) => g.key),
          'receive',
        ).catch((err: unknown) => this.logger.error({ err: errorText(err) }, 'applying stored reports failed'));
        group.forEach((g) => g.applied());
      }
    } finally {
      this.applying = null;
    }
  }

  /** Shutdown: reports being stored, and those stored, are applied before the pool closes (else the sweep would, later). */
  async beforeApplicationShutdown(): Promise<void> {
    while (this.flushing || this.applying) await (this.flushing ?? this.applying);
  }

  /**
   * Step 1: the raw rows, one INSERT (its own short transaction) for the whole batch, committed
   * before anything is matched. If the batch fails it is tried one by one, so one bad row fails only
   * its own caller. A caller whose row could not be stored gets the error (a 503 when the database is
   * away). Returns the stored ones.
   */
  private async storeRaw(batch: PendingReport[]): Promise<PendingReport[]> {
    try {
      await this.insertRaw(batch);
      return batch;
    } catch (err) {
      if (batch.length === 1) {
        batch[0].reject(err);
        return [];
      }
      this.logger.warn(
        { reports: batch.length, err: (err as Error).message },
        'storing a batch of reports failed; storing them one by one',
      );
    }
    const stored: PendingReport[] = [];
    for (const p of batch) {
      await this.insertRaw([p]).then(
        () => stored.push(p),
        (e: unknown) => p.reject(e),
      );
    }
    return stored;
  }

  private async insertRaw(batch: PendingReport[]): Promise<void> {
    await prepared(
      this.dataSource,
      `INSERT INTO delivery_reports (provider_account_id, provider_message_id, code, text, msisdn, source, received_at)
       SELECT u.account, u.pid, u.code, u.text, u.msisdn, u.source, $1
         FROM unnest($2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[]) WITH ORDINALITY AS u(account, pid, code, text, msisdn, source, ord)
        ORDER BY u.ord`,
      [
        this.clock.now(),
        batch.map((p) => p.accountId),
        batch.map((p) => p.report.sessionId),
        batch.map((p) => p.report.code),
        batch.map((p) => p.report.text),
        batch.map((p) => p.report.msisdn),
        batch.map((p) => p.source),
      ],
    );
  }

  /**
   * Step 2 (and the sweep's only step): applies every stored, not yet applied report of these keys
   * (provider account + id), in one transaction: advisory keys, reports, messages, refunds. If that
   * fails it is tried once per key, so a report that cannot be applied holds back only its own
   * message. Never throws: a failure is logged and counted, the reports stay stored and unapplied,
   * and the sweep (ReportReapplyService) tries them again. `keys` may repeat (one per report).
   * Returns how many stored reports were applied and how many entries of `keys` failed.
   *
   * Why a report is never left waiting when both it and its message are committed: its raw row was
   * committed before this transaction takes the advisory key; the dispatcher (and the reconciler's
   * `markFound`) records a provider id and runs `applyPendingFor` under the same key. Whichever of the
   * two takes the key second sees the other's committed row (READ COMMITTED: every statement after the
   * lock reads a fresh snapshot) and applies the report; the reports are read again under the key, so
   * one already applied by the other side is not applied twice.
   */
  async applyStoredFor(keys: ReportKey[], stage: 'receive' | 'sweep'): Promise<{ applied: number; failed: number }> {
    const byKey = new Map<string, { key: ReportKey; reports: number }>();
    for (const key of keys) {
      const k = `${key.accountId}:${key.providerMessageId}`;
      let group = byKey.get(k);
      if (!group) byKey.set(k, (group = { key, reports: 0 }));
      group.reports++;
    }
    const groups = [...byKey.values()];
    let lastError: unknown;
    try {
      return { applied: await this.applyKeys(groups.map((g) => g.key)), failed: 0 };
    } catch (err) {
      lastError = err;
    }
    // One by one, unless that cannot help: one key, or the database is away (the sweep will retry).
    let applied = 0;
    let failed = 0;
    if (groups.length === 1 || isConnectionError(lastError)) failed = keys.length;
    else {
      for (const g of groups) {
        try {
          applied += await this.applyKeys([g.key]);
        } catch (err) {
          failed += g.reports;
          lastError = err;
        }
      }
    }
    if (failed > 0) {
      applyFailures.inc({ stage }, failed);
      this.logger.warn(
        { stage, reports: failed, keys: groups.length, err: errorText(lastError) },
        'applying stored delivery reports failed: kept unapplied for the sweep',
      );
    }
    return { applied, failed };
  }

  /** One transaction (rerun on deadlock): the keys, their unapplied reports, messages, refunds. */
  private applyKeys(keys: ReportKey[]): Promise<number> {
    return inTransaction(this.dataSource, async (m) => {
      const now = this.clock.now();
      await lockReportKeys(m, keys);
      const { applied, refunds } = await this.applyUnapplied(
        m,
        keys.map((k) => ({ provider_account_id: k.accountId, provider_message_id: k.providerMessageId })),
        now,
      );
      await this.refunds.refund(m, refunds, now);
      return applied;
    });
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
    return (await this.applyUnapplied(m, messages, now)).refunds;
  }

  /** The stored, unapplied, unflagged reports of these keys, applied in seq order (caller holds the keys). */
  private async applyUnapplied(
    m: EntityManager,
    keys: { provider_account_id: string; provider_message_id: string }[],
    now: Date,
  ): Promise<{ applied: number; refunds: string[] }> {
    if (keys.length === 0) return { applied: 0, refunds: [] };
    const pending: {
      seq: string;
      provider_account_id: string;
      provider_message_id: string;
      code: number;
      msisdn: string | null;
      source: string;
      received_at: Date;
    }[] = await m.query(
      `SELECT d.seq, d.provider_account_id, d.provider_message_id, d.code, d.msisdn, d.source, d.received_at
         FROM delivery_reports d
         JOIN (SELECT DISTINCT account, pid FROM unnest($1::uuid[], $2::text[]) AS u(account, pid)) u
           ON d.provider_account_id = u.account AND d.provider_message_id = u.pid
        WHERE d.applied_at IS NULL AND d.flagged IS NULL ORDER BY d.seq`,
      [keys.map((x) => x.provider_account_id), keys.map((x) => x.provider_message_id)],
    );
    return this.applyStored(
      m,
      pending.map((p) => ({
        seq: Number(p.seq),
        accountId: p.provider_account_id,
        providerMessageId: p.provider_message_id,
        code: p.code,
        msisdn: p.msisdn,
        source: p.source,
        receivedAt: p.received_at,
      })),
      now,
    );
  }

  /** Applies stored reports through messaging, then records on each report what became of it. */
  private async applyStored(
    m: EntityManager,
    reports: StoredReport[],
    now: Date,
  ): Promise<{ applied: number; refunds: string[] }> {
    if (reports.length === 0) return { applied: 0, refunds: [] };
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
    return { applied: applied.length, refunds };
  }

  /**
   * The sweep's page: keys of stored reports not applied and not flagged, received in
   * [`from`, `to`], with seq after `afterSeq`, in seq order (keyset). Read without locks: the
   * apply reads them again under their keys.
   */
  async unappliedAfter(
    afterSeq: number,
    from: Date,
    to: Date,
    limit: number,
  ): Promise<{ seq: number; key: ReportKey }[]> {
    const rows: { seq: string; provider_account_id: string; provider_message_id: string }[] =
      await this.dataSource.query(
        `SELECT seq, provider_account_id, provider_message_id FROM delivery_reports
          WHERE applied_at IS NULL AND flagged IS NULL AND seq > $1 AND received_at >= $2 AND received_at <= $3
          ORDER BY seq LIMIT $4`,
        [afterSeq, from, to, limit],
      );
    return rows.map((r) => ({
      seq: Number(r.seq),
      key: { accountId: r.provider_account_id, providerMessageId: r.provider_message_id },
    }));
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

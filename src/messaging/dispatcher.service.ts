import { Inject, Injectable, Logger, OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import { rows as sqlRows } from '../database/sql';
import { Counter, register } from 'prom-client';
import { DataSource, EntityManager } from 'typeorm';
import { LedgerService } from '../billing/ledger.service';
import { Clock } from '../common/clock';
import { APP_CONFIG, AppConfig } from '../config/config';
import { SendOutcome } from '../provider/client';
import { AcceptService } from './accept.service';
import { DeliveryReportsService, lockReportKeys } from './delivery-reports.service';
import { ProviderClients } from '../provider/provider-clients.service';

interface Claimed {
  id: string;
  tenant_id: string;
  provider_account_id: string;
  msisdn: string;
  text: string;
  attempts: number;
}

const outcomes =
  (register.getSingleMetric('gerbang_dispatch_outcomes_total') as Counter<string> | undefined) ??
  new Counter({ name: 'gerbang_dispatch_outcomes_total', help: 'Submit outcomes by class', labelNames: ['outcome'] });

/** Dispatcher tuning (config.ts `dispatcher`, from the DISPATCH_* variables). */
export type DispatcherOptions = Omit<AppConfig['dispatcher'], 'enabled'>;

/**
 * Submits queued messages to the provider, safely across several gateway processes.
 *
 * Claim: one statement moves a batch from `queued`/due `scheduled` to `submitting` with a lease
 * (`FOR UPDATE SKIP LOCKED`, so concurrent workers never claim the same row). After the HTTP
 * calls, all outcomes of the batch are written in one transaction, each update guarded by the
 * expected status. A worker that dies mid-submit leaves rows in `submitting`; when the lease runs
 * out they become `uncertain`, never `queued`: the provider may have the message, so it is not
 * resent blindly (reconciliation settles it from reports).
 *
 * Outcomes: accepted → `submitted`; rejected → `failed/submit_rejected` + refund; notSent → back to
 * `queued` with backoff, after maxAttempts `failed/submit_failed` + refund; unavailable (breaker
 * open, local limits) → back to `queued`, not counted as an attempt; uncertain → `uncertain`.
 */
@Injectable()
export class DispatcherService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly logger = new Logger(DispatcherService.name);
  private running = false;
  private loops: Promise<void>[] = [];
  private wakers: (() => void)[] = [];
  private janitor?: NodeJS.Timeout;
  readonly options: DispatcherOptions;

  constructor(
    private readonly dataSource: DataSource,
    private readonly ledger: LedgerService,
    private readonly clients: ProviderClients,
    private readonly accept: AcceptService,
    private readonly reports: DeliveryReportsService,
    private readonly clock: Clock,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    const { enabled, ...options } = config.dispatcher;
    this.options = options;
    this.enabled = enabled;
  }
  private readonly enabled: boolean;

  onApplicationBootstrap(): void {
    if (this.enabled) this.start();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.accept.events.on('accepted', this.wakeAll);
    for (let i = 0; i < this.options.loops; i++) this.loops.push(this.loop());
    this.janitor = setInterval(
      () => void this.expireLeases().catch((e: Error) => this.logger.warn({ err: e.message }, 'lease janitor failed')),
      5000,
    );
    this.janitor.unref();
  }

  async stop(): Promise<void> {
    this.running = false;
    this.accept.events.off('accepted', this.wakeAll);
    if (this.janitor) clearInterval(this.janitor);
    this.wakeAll();
    await Promise.all(this.loops);
    this.loops = [];
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  private readonly wakeAll = () => {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  };

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      const self = this;
      function done() {
        clearTimeout(t);
        self.wakers = self.wakers.filter((f) => f !== done);
        resolve();
      }
      this.wakers.push(done);
    });
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        const n = await this.runOnce();
        if (n === 0) await this.sleep(this.options.pollMs);
      } catch (e) {
        this.logger.error({ err: (e as Error).message }, 'dispatch iteration failed');
        await this.sleep(1000);
      }
    }
  }

  /** Claims one batch, submits it, records the outcomes. Returns how many messages were claimed. */
  async runOnce(): Promise<number> {
    const claimed = await this.claim();
    if (claimed.length === 0) return 0;
    const results = new Array<SendOutcome>(claimed.length);
    let next = 0;
    const worker = async () => {
      while (next < claimed.length) {
        const i = next++;
        results[i] = await this.submit(claimed[i]);
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.options.concurrency, claimed.length) }, worker));
    await this.record(claimed, results);
    return claimed.length;
  }

  private async claim(): Promise<Claimed[]> {
    const now = this.clock.now();
    return this.dataSource.query(
      `WITH due AS (
         SELECT m.id, m.status AS prev_status FROM messages m
          WHERE m.status IN ('queued', 'scheduled') AND m.next_attempt_at <= $1
            AND m.provider_account_id IN (SELECT id FROM provider_accounts WHERE status = 'active' AND (held_until IS NULL OR held_until <= $1))
          ORDER BY m.next_attempt_at
          LIMIT $2
          FOR UPDATE OF m SKIP LOCKED
       ), claimed AS (
         UPDATE messages m SET status = 'submitting', attempts = m.attempts + 1, lease_until = $3
           FROM due WHERE m.id = due.id
         RETURNING m.id, m.tenant_id, m.provider_account_id, m.msisdn, m.text, m.attempts, due.prev_status
       ), released AS (
         INSERT INTO message_events (message_id, tenant_id, status, created_at)
         SELECT id, tenant_id, 'queued', $1 FROM claimed WHERE prev_status = 'scheduled'
       )
       SELECT id, tenant_id, provider_account_id, msisdn, text, attempts FROM claimed`,
      [now, this.options.batchSize, new Date(now.getTime() + this.options.leaseMs)],
    );
  }

  private async submit(msg: Claimed): Promise<SendOutcome> {
    try {
      const found = await this.clients.forAccount(msg.provider_account_id);
      if (!found) return { kind: 'unavailable', reason: 'provider account not found', retryAfterMs: 60_000 };
      return await found.client.send(msg.msisdn, msg.text);
    } catch (e) {
      // send() never throws by contract; anything here happened before a request was made.
      return { kind: 'notSent', reason: `local error: ${(e as Error).message}` };
    }
  }

  private async record(claimed: Claimed[], results: SendOutcome[]): Promise<void> {
    const now = this.clock.now();
    const accepted: { id: string; pid: string }[] = [];
    const failed: { id: string; reason: string; error: string }[] = [];
    const requeue: { id: string; at: Date; error: string; countAttempt: boolean }[] = [];
    const uncertain: { id: string; error: string }[] = [];
    claimed.forEach((msg, i) => {
      const r = results[i];
      outcomes.inc({ outcome: r.kind });
      switch (r.kind) {
        case 'accepted':
          accepted.push({ id: msg.id, pid: r.providerMessageId });
          break;
        case 'rejected':
          failed.push({ id: msg.id, reason: 'submit_rejected', error: `${r.reason}: ${r.raw.slice(0, 200)}` });
          break;
        case 'notSent':
          if (msg.attempts >= this.options.maxAttempts)
            failed.push({ id: msg.id, reason: 'submit_failed', error: r.reason });
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
                  attempts = CASE WHEN u.counts THEN m.attempts ELSE m.attempts - 1 END
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
      await this.ledger.refundMessages(m, refunds, now);
    });
  }

  /** Claims whose worker died (lease over): `uncertain`, never back to `queued`. */
  async expireLeases(): Promise<number> {
    const now = this.clock.now();
    const rows: { id: string; tenant_id: string }[] = await this.dataSource.query(
      `WITH expired AS (
         UPDATE messages SET status = 'uncertain', last_error = 'worker lease expired during submit', lease_until = NULL
          WHERE status = 'submitting' AND lease_until < $1
         RETURNING id, tenant_id
       ), ev AS (
         INSERT INTO message_events (message_id, tenant_id, status, detail, created_at)
         SELECT id, tenant_id, 'submitted', '{"uncertain":true}'::jsonb, $1 FROM expired
       )
       SELECT id, tenant_id FROM expired`,
      [now],
    );
    if (rows.length) this.logger.warn({ count: rows.length }, 'claims expired: messages marked uncertain');
    return rows.length;
  }

  private async events(
    m: EntityManager,
    rows: { id: string; tenant_id: string }[],
    status: string,
    now: Date,
    detail?: object,
  ) {
    if (rows.length === 0) return;
    await m.query(
      `INSERT INTO message_events (message_id, tenant_id, status, detail, created_at)
       SELECT u.id, u.tenant_id, $1, $2::jsonb, $3 FROM unnest($4::uuid[], $5::uuid[]) AS u(id, tenant_id)`,
      [status, detail ? JSON.stringify(detail) : null, now, rows.map((r) => r.id), rows.map((r) => r.tenant_id)],
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

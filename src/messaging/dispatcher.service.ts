import {
  BeforeApplicationShutdown,
  Inject,
  Injectable,
  Logger,
  OnApplicationBootstrap,
  OnApplicationShutdown,
} from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { isConnectionError, isTransientConflict } from '../database/connection-errors';
import { prepared, rows as sqlRows } from '../database/raw-rows';
import { Counter, Gauge, register } from 'prom-client';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { SendOutcome } from '../provider/client';
import { AcceptService } from './accept.service';
import { MessageReportsService } from './message-reports.service';
import { ClaimedMessage, DispatchOutcomesWriter } from './dispatch-outcomes';
import { MessageEventsService } from './message-events.service';
import { MessageRefundsService } from './message-refunds.service';
import { ProviderClients } from '../provider/provider-clients.service';
import { ProviderAccountsService } from '../provider/provider-accounts.service';

type Claimed = ClaimedMessage;

/** A send whose answer is known: kept (in memory) until its recording committed. */
interface Known {
  msg: Claimed;
  result: SendOutcome;
  /** Failures of this outcome written alone, each after other recordings landed (see recordKnown). */
  loneFailures?: number;
  /** `landings` at its last counted lone failure. */
  landingsAtFailure?: number;
}

const outcomes =
  (register.getSingleMetric('gerbang_dispatch_outcomes_total') as Counter<string> | undefined) ??
  new Counter({ name: 'gerbang_dispatch_outcomes_total', help: 'Submit outcomes by class', labelNames: ['outcome'] });
const recordFailures =
  (register.getSingleMetric('gerbang_dispatch_record_failures_total') as Counter<string> | undefined) ??
  new Counter({
    name: 'gerbang_dispatch_record_failures_total',
    help: 'Failed transactions recording submit outcomes (retried until they land)',
  });
const unrecorded =
  (register.getSingleMetric('gerbang_dispatch_unrecorded_outcomes') as Gauge<string> | undefined) ??
  new Gauge({
    name: 'gerbang_dispatch_unrecorded_outcomes',
    help: 'Known submit outcomes waiting in memory for their recording to commit',
  });

const recordAbandoned =
  (register.getSingleMetric('gerbang_dispatch_record_abandoned_total') as Counter<string> | undefined) ??
  new Counter({
    name: 'gerbang_dispatch_record_abandoned_total',
    help: 'Submit outcomes that could not be recorded and were left to the lease janitor (uncertain, then reconciliation)',
  });

/** Most outcomes written by one recording transaction. */
const MAX_OUTCOMES_PER_TX = 500;
/** An error that is the database's answer to this write (not an outage, not a collision that a retry resolves). */
function isAnswer(e: unknown): boolean {
  return !isConnectionError(e) && !isTransientConflict(e);
}

/** Lone failures (while other recordings land) after which one outcome is given up to the lease janitor. */
const MAX_LONE_FAILURES = 5;
/** Retry of a failed recording: 100 ms doubling to 5 s, with jitter. */
const RECORD_RETRY_MAX_MS = 5_000;

/** The lease janitor's and renewer's intervals on the SchedulerRegistry. */
const JANITOR_INTERVAL = 'messaging.lease-janitor';
const RENEWER_INTERVAL = 'messaging.lease-renewer';
const JANITOR_EVERY_MS = 5_000;

/**
 * The advisory key of a claim's token (parameter `$n`): the claim holds it until its transaction ends, the
 * release of a claim in doubt waits for it (see releaseClaimsInDoubt).
 */
const claimLockKey = (n: number) => `hashtextextended('dispatch-claim:' || $${n}::uuid::text, 0)`;
/** How long one try to release a claim in doubt waits for the claim's transaction to end. */
const CLAIM_LOCK_WAIT_MS = 3_000;

/** Dispatcher tuning (config.ts `dispatcher`, from the DISPATCH_* variables). */
export type DispatcherOptions = Omit<AppConfig['dispatcher'], 'enabled'>;

/**
 * Submits queued messages to the provider, safely across several gateway processes.
 *
 * Claim per free send slot: a process has `loops × concurrency` send slots; a claim moves at most as
 * many due messages as there are free slots (and, per provider account, as the account's rate
 * limit has tokens for and its in-flight limit has room for) from `queued`/due `scheduled` to
 * `submitting` with a lease (`FOR UPDATE SKIP LOCKED`, so concurrent workers never claim the same
 * row), and each claimed message goes on the wire at once. Nothing claimed waits behind a limit,
 * so a process that dies leaves in `submitting` only the sends it had on the wire.
 *
 * Recording: each answer is recorded as soon as it is known; answers that arrive while a recording
 * transaction runs are written together by the next one (group commit, a few ms). Every update is
 * guarded by the expected status, so a recording that failed, or whose commit is in doubt, can simply
 * be run again: a failed recording keeps its outcomes in memory and is retried with backoff until it
 * lands, while the process lives. Meanwhile their leases are renewed (and this process's lease
 * janitor skips them); a recording that lands after another process's janitor gave up on the claim
 * still applies (STILL_OURS in dispatch-outcomes.ts).
 *
 * A worker that dies mid-submit leaves rows in `submitting`; when the lease runs out they become
 * `uncertain`, never `queued`: the provider may have the message, so it is not resent blindly
 * (reconciliation settles it from reports). A claim whose own commit is in doubt (its answer lost) is
 * different: this process knows it sent none of its rows, and puts them back to `queued` (claim).
 *
 * Outcomes: accepted → `submitted`; rejected → `failed/submit_rejected` + refund; notSent → back to
 * `queued` with backoff, after maxAttempts `failed/submit_failed` + refund; unavailable (breaker
 * open, local limits) → back to `queued`, not counted as an attempt; uncertain → `uncertain`.
 *
 * Shutdown: no new claims; sends on the wire finish (each within the provider's total timeout) and
 * are recorded before the pool closes.
 */
@Injectable()
export class DispatcherService implements OnApplicationBootstrap, BeforeApplicationShutdown, OnApplicationShutdown {
  private readonly logger = new Logger(DispatcherService.name);
  private running = false;
  private pump?: Promise<void>;
  private wakers: (() => void)[] = [];
  readonly options: DispatcherOptions;
  private readonly provider: AppConfig['provider'];
  private readonly enabled: boolean;
  /** Claimed by this process and not yet recorded (on the wire, or answered and waiting to be written). */
  private readonly held = new Map<string, Claimed>();
  /** Sends on the wire, per provider account. */
  private readonly onWire = new Map<string, number>();
  private readonly sends = new Set<Promise<void>>();
  /** Per provider account: the send rate's token bucket (mirrors the client's, so claims never wait on it). */
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private known: Known[] = [];
  private recorder?: Promise<void>;
  /** Recording transactions of this process that committed. */
  private landings = 0;
  /** Set when the pool is about to close: a failing recorder stops retrying. */
  private abandoned = false;
  /** Tokens of this process's claims whose answer was lost and that are not yet released (see claim). */
  private readonly claimsInDoubt = new Set<string>();

  constructor(
    private readonly dataSource: DataSource,
    refunds: MessageRefundsService,
    private readonly clients: ProviderClients,
    private readonly accounts: ProviderAccountsService,
    private readonly accept: AcceptService,
    reports: MessageReportsService,
    messageEvents: MessageEventsService,
    private readonly clock: Clock,
    private readonly scheduler: SchedulerRegistry,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    const { enabled, ...options } = config.dispatcher;
    this.options = options;
    this.enabled = enabled;
    this.provider = config.provider;
    this.writer = new DispatchOutcomesWriter(dataSource, refunds, reports, messageEvents, clock, options.maxAttempts);
  }
  private readonly writer: DispatchOutcomesWriter;

  /** Sends this process may have on the wire at once. */
  get capacity(): number {
    return this.options.loops * this.options.concurrency;
  }

  onApplicationBootstrap(): void {
    if (this.enabled) this.start();
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abandoned = false;
    this.accept.events.on('accepted', this.wakeAll);
    this.pump = this.loop();
    this.every(JANITOR_INTERVAL, JANITOR_EVERY_MS, () => this.expireLeases(), 'lease janitor failed');
    this.every(
      RENEWER_INTERVAL,
      Math.max(200, Math.floor(this.options.leaseMs / 3)),
      () => this.renewLeases(),
      'lease renewal failed',
    );
  }

  /**
   * Stops claiming, lets the sends on the wire finish (each ends within the provider's total timeout)
   * and records their outcomes (retrying a failed recording until `recordWithinMs` has passed).
   */
  async stop(recordWithinMs = 10_000): Promise<void> {
    const wasRunning = this.running;
    this.running = false;
    this.accept.events.off('accepted', this.wakeAll);
    this.cancel(JANITOR_INTERVAL);
    this.wakeAll();
    await this.pump;
    this.pump = undefined;
    await this.releaseClaimsInDoubt();
    if (this.sends.size > 0) this.logger.log({ sends: this.sends.size }, 'shutdown: waiting for sends on the wire');
    await Promise.all([...this.sends]);
    const deadline = Date.now() + recordWithinMs;
    while (this.recorder || this.known.length > 0) {
      if (!this.recorder) this.startRecorder();
      await Promise.race([this.recorder, delay(Math.max(0, deadline - Date.now()))]);
      if (Date.now() >= deadline) break;
    }
    // The renewer runs until here: held claims keep their leases while they are sent and recorded.
    this.cancel(RENEWER_INTERVAL);
    if (this.known.length > 0 || this.recorder) {
      this.logger.error(
        { unrecorded: this.known.length },
        'shutdown: outcomes could not be recorded in time; their leases will expire to uncertain',
      );
    } else if (wasRunning && this.held.size === 0) this.logger.log('dispatcher stopped: every outcome recorded');
  }

  /** Before the database pool and the provider clients close. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stop(0);
    this.abandoned = true;
  }

  /**
   * A named interval on the SchedulerRegistry, replacing one an earlier start() left. ScheduleModule
   * clears every registered interval in its own beforeApplicationShutdown, but it is global and Nest
   * runs global modules' hooks last: the renewer still runs while beforeApplicationShutdown drains.
   */
  private every(name: string, ms: number, job: () => Promise<unknown>, failure: string): void {
    this.cancel(name);
    const timer = setInterval(() => void job().catch((e: Error) => this.logger.warn({ err: e.message }, failure)), ms);
    timer.unref();
    this.scheduler.addInterval(name, timer);
  }

  private cancel(name: string): void {
    if (this.scheduler.doesExist('interval', name)) this.scheduler.deleteInterval(name);
  }

  private readonly wakeAll = () => {
    const w = this.wakers;
    this.wakers = [];
    for (const f of w) f();
  };

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(t);
        this.wakers = this.wakers.filter((f) => f !== done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakers.push(done);
    });
  }

  private async loop(): Promise<void> {
    while (this.running) {
      try {
        // A slot is free once its outcome is recorded (not when the answer arrives): a crash then
        // exposes at most `capacity` claims, those on the wire and answers not yet written.
        const free = this.capacity - this.held.size;
        if (free <= 0) {
          await this.sleep(this.options.pollMs); // a finished send wakes it
          continue;
        }
        const n = await this.runOnce(free);
        // Fewer than asked: the queue is empty or the rate limits are spent. A finished send, an
        // accepted message or the poll interval (tokens refill) wakes it.
        if (n < free) await this.sleep(this.options.pollMs);
      } catch (e) {
        this.logger.error({ err: (e as Error).message }, 'dispatch iteration failed');
        await this.sleep(1000);
      }
    }
  }

  /** Claims up to `free` messages and puts each on the wire at once. Returns how many were claimed. */
  async runOnce(free = this.capacity - this.held.size): Promise<number> {
    if (free <= 0) return 0;
    await this.releaseClaimsInDoubt();
    const claimed = await this.claim(Math.min(free, this.options.batchSize));
    for (const msg of claimed) this.launch(msg);
    return claimed.length;
  }

  private launch(msg: Claimed): void {
    this.held.set(msg.id, msg);
    this.onWire.set(msg.provider_account_id, (this.onWire.get(msg.provider_account_id) ?? 0) + 1);
    const bucket = this.bucket(msg.provider_account_id);
    if (bucket) bucket.tokens -= 1;
    const send: Promise<void> = this.submit(msg).then((result) => {
      outcomes.inc({ outcome: result.kind });
      this.onWire.set(msg.provider_account_id, (this.onWire.get(msg.provider_account_id) ?? 1) - 1);
      this.sends.delete(send);
      this.known.push({ msg, result });
      unrecorded.set(this.known.length);
      if (!this.recorder) this.startRecorder();
      this.wakeAll();
    });
    this.sends.add(send);
  }

  /** The account's refilled token bucket, or undefined when sends are not rate limited. */
  private bucket(accountId: string): { tokens: number; at: number } | undefined {
    const rate = this.provider.sendRatePerSecond;
    if (!(rate > 0)) return undefined;
    const burst = Math.max(1, Math.ceil(rate));
    const now = Date.now();
    let b = this.buckets.get(accountId);
    if (!b) {
      b = { tokens: burst, at: now };
      this.buckets.set(accountId, b);
    }
    b.tokens = Math.min(burst, b.tokens + ((now - b.at) / 1000) * rate);
    b.at = now;
    return b;
  }

  /** How many sends an account may start now: its free in-flight room and its rate tokens. */
  private quota(accountId: string): number {
    const room = this.provider.maxInFlight - (this.onWire.get(accountId) ?? 0);
    const b = this.bucket(accountId);
    return Math.max(0, Math.min(room, b ? Math.floor(b.tokens) : room));
  }

  /**
   * One statement (its own transaction) under a fresh token: the rows it claims carry it (`claim_token`) and it
   * holds the token's advisory lock until it has committed or rolled back. If it fails without an answer (the
   * connection lost while it committed), the rows may be claimed and this process does not know them: they
   * would stay `submitting`, never sent, until the lease janitor made them `uncertain` and reconciliation,
   * finding nothing at the provider, failed them. So the token is kept in doubt and released at once (and
   * again before each claim until that succeeds): see releaseClaimsInDoubt.
   */
  private async claim(limit: number): Promise<Claimed[]> {
    const now = this.clock.now();
    const known = [...new Set([...this.onWire.keys(), ...this.buckets.keys()])];
    const rate = this.provider.sendRatePerSecond;
    const fresh = Math.min(this.provider.maxInFlight, rate > 0 ? Math.max(1, Math.ceil(rate)) : limit);
    // Accounts in service and not held, from their owner (provider); a hold set right after this read
    // is seen by the next claim, as a hold committed during the old one-statement claim was.
    const accounts = await this.accounts.dispatchableIds(now);
    if (accounts.length === 0) return [];
    const token = randomUUID();
    try {
      return await this.claimUnder(token, now, limit, fresh, known, accounts);
    } catch (e) {
      this.claimsInDoubt.add(token);
      await this.releaseClaimsInDoubt();
      throw e;
    }
  }

  private claimUnder(
    token: string,
    now: Date,
    limit: number,
    fresh: number,
    known: string[],
    accounts: string[],
  ): Promise<Claimed[]> {
    // claim_lock calls a volatile function: a materialised CTE, run once, before due yields its first row.
    return prepared(
      this.dataSource,
      `WITH quota AS (
         SELECT a.id, COALESCE(q.n, $4) AS n FROM unnest($7::uuid[]) AS a(id)
           LEFT JOIN unnest($5::uuid[], $6::int[]) AS q(id, n) ON q.id = a.id
       ), claim_lock AS (
         SELECT pg_advisory_xact_lock(${claimLockKey(8)})
       ), due AS (
         SELECT d.id, d.prev_status FROM claim_lock CROSS JOIN quota CROSS JOIN LATERAL (
           SELECT m.id, m.status AS prev_status, m.next_attempt_at FROM messages m
            WHERE m.provider_account_id = quota.id AND m.status IN ('queued', 'scheduled') AND m.next_attempt_at <= $1
            ORDER BY m.next_attempt_at
            LIMIT LEAST(quota.n, $2)
            FOR UPDATE OF m SKIP LOCKED
         ) d
          WHERE quota.n > 0
          ORDER BY d.next_attempt_at
          LIMIT $2
       ), claimed AS (
         UPDATE messages m SET status = 'submitting', attempts = m.attempts + 1, lease_until = $3, claim_token = $8::uuid
           FROM due WHERE m.id = due.id
         RETURNING m.id, m.tenant_id, m.provider_account_id, m.msisdn, m.text, m.attempts, due.prev_status
       ), released AS (
         INSERT INTO message_events (message_id, tenant_id, status, created_at)
         SELECT id, tenant_id, 'queued', $1 FROM claimed WHERE prev_status = 'scheduled'
       )
       SELECT id, tenant_id, provider_account_id, msisdn, text, attempts FROM claimed`,
      [
        now,
        limit,
        new Date(now.getTime() + this.options.leaseMs),
        fresh,
        known,
        known.map((a) => this.quota(a)),
        accounts,
        token,
      ],
    );
  }

  /**
   * Puts the rows of this process's claims in doubt back to `queued`, as if never claimed: attempt count
   * restored, lease cleared. The `queued` event a scheduled message got from the claim stays: it is queued
   * now, and the next claim sees it `queued` and writes none again. Only rows still `submitting` under the
   * token: nobody else writes that token, and a row that has moved on since (another process's janitor made
   * it `uncertain`) is left alone. Never throws: a token that cannot be released now stays in doubt (and out
   * of this process's lease janitor) and is tried again before the next claim.
   *
   * The token's advisory lock comes first, in a statement of its own: granted, the claim's transaction has
   * ended (the server may still have been committing it when the connection went), and the UPDATE after it
   * takes a snapshot that sees its outcome. A claim that had not yet taken the lock when the release ran
   * (its statement not yet started on the server) would be seen as not committed; its rows then expire to
   * `uncertain` as a dead worker's do: never a second send.
   */
  private async releaseClaimsInDoubt(): Promise<void> {
    for (const token of [...this.claimsInDoubt]) {
      try {
        const released = await this.dataSource.transaction(async (m) => {
          await m.query(`SET LOCAL lock_timeout = '${CLAIM_LOCK_WAIT_MS}ms'`);
          await m.query(`SELECT pg_advisory_xact_lock(${claimLockKey(1)})`, [token]);
          return sqlRows<{ id: string }>(
            m,
            `UPDATE messages SET status = 'queued', attempts = attempts - 1, lease_until = NULL, claim_token = NULL
              WHERE status = 'submitting' AND claim_token = $1
             RETURNING id`,
            [token],
          );
        });
        this.claimsInDoubt.delete(token);
        this.logger.warn(
          { released: released.length },
          'dispatcher claim in doubt resolved: what it claimed (never sent) is queued again',
        );
      } catch (e) {
        this.logger.warn(
          { claimsInDoubt: this.claimsInDoubt.size, err: (e as Error).message },
          'dispatcher claim in doubt not yet resolved; retried before the next claim',
        );
        return;
      }
    }
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

  private startRecorder(): void {
    this.recorder = this.recordKnown().finally(() => (this.recorder = undefined));
  }

  /**
   * Writes known outcomes until none is left. A failed transaction (lost connection, database
   * restart, deadlock, a commit in doubt) leaves its outcomes in memory, first in line, and is run
   * again after a backoff: the guarded updates make a second run of a committed one a no-op.
   *
   * A group that fails with an answer from the database (not an outage, not a deadlock) is written
   * again one outcome at a time, so that one outcome that cannot be written (a provider id another
   * message already holds, a bad row) does not hold back the others. An outcome that has failed alone
   * MAX_LONE_FAILURES times, each time after other recordings landed, is given up: logged, counted, and
   * no longer held, so its lease runs out and the lease janitor turns the message `uncertain`, which
   * reconciliation settles from the provider's report (never resent). When nothing lands (the
   * database refuses every write) nothing is given up: the outcomes wait in memory as for an outage.
   */
  private async recordKnown(): Promise<void> {
    let failures = 0;
    while (this.known.length > 0) {
      const batch = this.known.splice(0, MAX_OUTCOMES_PER_TX);
      const failed: { k: Known; e: unknown }[] = [];
      let alone = batch.length === 1;
      try {
        await this.writeKnown(batch);
      } catch (e) {
        if (batch.length > 1 && isAnswer(e)) {
          alone = true;
          for (const k of batch) await this.writeKnown([k]).catch((e1: unknown) => failed.push({ k, e: e1 }));
        } else failed.push(...batch.map((k) => ({ k, e })));
      }
      try {
        if (failed.length === 0) {
          failures = 0;
          continue;
        }
        const keep: Known[] = [];
        for (const { k, e } of failed) {
          // A failure of this outcome alone counts once per stretch in which other recordings landed: when
          // nothing lands (the database refuses every write), an outcome is never given up.
          const lone = alone && isAnswer(e);
          if (lone && (k.loneFailures === undefined || this.landings > k.landingsAtFailure!)) {
            k.loneFailures = (k.loneFailures ?? 0) + 1;
            k.landingsAtFailure = this.landings;
          }
          if (lone && (k.loneFailures ?? 0) >= MAX_LONE_FAILURES) this.giveUp(k, e);
          else keep.push(k);
        }
        this.known.unshift(...keep);
        // Some of the group landed: the database is writing, go on at once (the rest is tried alone again).
        if (keep.length === 0 || failed.length < batch.length) {
          failures = 0;
          continue;
        }
        failures++;
        recordFailures.inc();
        const wait = Math.round(Math.min(RECORD_RETRY_MAX_MS, 100 * 2 ** (failures - 1)) * (0.8 + Math.random() * 0.4));
        this.logger.warn(
          { outcomes: keep.length, failures, retryInMs: wait, err: (failed[0].e as Error)?.message },
          'recording submit outcomes failed; kept in memory, retrying',
        );
        if (this.abandoned) return;
        await delay(wait);
      } finally {
        unrecorded.set(this.known.length);
      }
    }
  }

  /** One recording transaction; on success the claims are no longer held and their slots are free. */
  private async writeKnown(batch: Known[]): Promise<void> {
    await this.writer.record(
      batch.map((k) => k.msg),
      batch.map((k) => k.result),
    );
    for (const k of batch) this.held.delete(k.msg.id);
    this.landings++;
    this.wakeAll();
  }

  /** Hands an outcome that cannot be written over to the lease janitor (see recordKnown). */
  private giveUp(k: Known, error: unknown): void {
    this.held.delete(k.msg.id);
    this.wakeAll(); // its send slot is free
    recordAbandoned.inc();
    this.logger.error(
      {
        messageId: k.msg.id,
        tenantId: k.msg.tenant_id,
        outcome: k.result.kind,
        failures: k.loneFailures,
        err: (error as Error)?.message,
      },
      'a submit outcome cannot be recorded; given up: the message becomes uncertain when its lease ends and reconciliation settles it',
    );
  }

  /** Pushes the leases of everything this process holds (on the wire or waiting to be recorded). */
  async renewLeases(): Promise<number> {
    if (this.held.size === 0) return 0;
    const until = new Date(this.clock.now().getTime() + this.options.leaseMs);
    const renewed = await sqlRows<unknown>(
      this.dataSource,
      `UPDATE messages SET lease_until = $1 WHERE id = ANY($2::uuid[]) AND status = 'submitting' RETURNING id`,
      [until, [...this.held.keys()]],
    );
    return renewed.length;
  }

  /**
   * Claims whose worker died (lease over): `uncertain`, never back to `queued`. Never the claims this
   * process still holds (their outcome is on its way, or their send still on the wire), nor those of its
   * claims in doubt (never sent; released to `queued` once the database answers).
   */
  async expireLeases(): Promise<number> {
    const now = this.clock.now();
    const rows: { id: string; tenant_id: string }[] = await this.dataSource.query(
      `WITH expired AS (
         UPDATE messages SET status = 'uncertain', last_error = 'worker lease expired during submit', lease_until = NULL
          WHERE status = 'submitting' AND lease_until < $1 AND NOT (id = ANY($2::uuid[]))
            AND (claim_token IS NULL OR claim_token <> ALL($3::uuid[]))
         RETURNING id, tenant_id
       ), ev AS (
         INSERT INTO message_events (message_id, tenant_id, status, detail, created_at)
         SELECT id, tenant_id, 'submitted', '{"uncertain":true}'::jsonb, $1 FROM expired
       )
       SELECT id, tenant_id FROM expired`,
      [now, [...this.held.keys()], [...this.claimsInDoubt]],
    );
    if (rows.length) this.logger.warn({ count: rows.length }, 'claims expired: messages marked uncertain');
    return rows.length;
  }
}

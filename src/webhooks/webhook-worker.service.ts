import { Inject, Injectable, Logger } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { SecretBox } from '../common/secret-box';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { isConnectionError } from '../database/connection-errors';
import { prepared, rows as sqlRows } from '../database/raw-rows';
import { publicEventId, retryDelayMs } from './webhook-events';
import { webhookAttemptDuration, webhookAttempts, webhookQueueAge, webhookQueueDue } from './webhook-metrics';
import { AttemptResult, WebhookSender } from './webhook-sender';

interface ClaimedDelivery {
  id: string;
  tenant_id: string;
  event_id: string;
  body: string;
  attempts: number;
  owner: string;
  url: string;
  /** The endpoint (row) it was claimed for: see the WebhookEndpointGeneration migration. */
  generation: string;
  /**
   * The endpoint's `enabled_at` when claimed, as PostgreSQL's text (exact to the microsecond): a 410 disables
   * the endpoint only if no PUT has enabled it since (the WebhookEndpointEnabledAt migration).
   */
  enabled_at: string;
  secrets: string[];
}

interface PendingOutcome {
  d: ClaimedDelivery;
  r: AttemptResult;
  at: Date;
  /** False for an attempt cut short by this process stopping: logged, but due again at once and not counted. */
  counted: boolean;
  resolve(): void;
  reject(err: unknown): void;
}

interface EndpointSecrets {
  tenant_id: string;
  secret_enc: string;
  previous_secret_enc: string | null;
  previous_secret_until: Date | null;
}

type ClaimedRow = EndpointSecrets & {
  id: string;
  generation: string;
  enabled_at: string;
  event_id: string;
  body: string;
  attempts: number;
  url: string;
};

/**
 * Is `column` (a delivery's endpoint_generation) the generation of the endpoint row `alias`? A delivery
 * without one was queued by a process of the version before generations (a rolling upgrade): it is for
 * whatever endpoint its tenant has.
 */
function sameGeneration(column: string, alias = 'e'): string {
  return `(${alias}.generation = ${column} OR ${column} IS NULL)`;
}

/**
 * The tail of a statement whose CTE `source` returns the `tenant_id` and `endpoint_generation` of each
 * delivery it moved out of `delivering`: lowers those endpoints' `in_flight` by as many. Only the endpoint
 * the lease was taken on: a lease taken before the endpoint was deleted (and registered again, a new
 * generation) does not lower the new row's count.
 */
function lowerInFlight(source: string): string {
  return `UPDATE webhook_endpoints e SET in_flight = greatest(0, e.in_flight - r.n)
            FROM (SELECT s.tenant_id, count(*)::int AS n
                    FROM ${source} s JOIN webhook_endpoints cur
                      ON cur.tenant_id = s.tenant_id AND ${sameGeneration('s.endpoint_generation', 'cur')}
                   GROUP BY s.tenant_id) r
           WHERE e.tenant_id = r.tenant_id`;
}

/**
 * Delivers queued webhooks: at-least-once from `webhook_deliveries`, shared safely by any number
 * of gateway processes.
 *
 * Claim (one short transaction): lock the endpoints that have due work and a free slot
 * (`FOR UPDATE SKIP LOCKED`, least recently served first), then take up to their free slots of due
 * deliveries each and lease them (`delivering`, lease_until, lease_owner). Holding the endpoint row
 * while counting its in-flight leases is what makes the per-endpoint cap hold across processes; an
 * endpoint at its cap is simply not chosen, so a slow or dead endpoint never blocks another
 * tenant's deliveries (no head-of-line blocking). A lease that outlives its worker (crash) is
 * released by `releaseExpiredLeases` and the delivery is due again.
 *
 * Times: due/retry times use the injected Clock (tests move it); leases use the database's real
 * clock, because they guard against crashed processes in real time.
 */
@Injectable()
export class WebhookWorkerService {
  private readonly logger = new Logger(WebhookWorkerService.name);
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private inFlight = new Set<Promise<void>>();
  private wakeUp: (() => void) | null = null;
  private wokenWhileBusy = false;
  private stopController = new AbortController();
  private lastGauges = 0;
  private readonly secretErrorsLogged = new Map<string, number>();
  /** Opened secrets by ciphertext: a rotation changes the ciphertext, so an entry never goes stale. */
  private readonly openedSecrets = new LRUCache<string, string>({ max: 10_000 });
  private readonly opts: AppConfig['webhooks'];

  constructor(
    private readonly dataSource: DataSource,
    private readonly clock: Clock,
    private readonly secretBox: SecretBox,
    private readonly sender: WebhookSender,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.opts = config.webhooks;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.stopController = new AbortController();
    this.loopDone = this.loop();
  }

  /** Stops claiming, aborts requests in flight (they are recorded as attempts and retried) and waits. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.stopController.abort();
    this.wake();
    await this.loopDone;
    await Promise.all([...this.inFlight]);
  }

  /** Claim now instead of at the next poll (new deliveries, a finished request freeing a slot). */
  wake(): void {
    const w = this.wakeUp;
    this.wakeUp = null;
    if (w) w();
    else this.wokenWhileBusy = true; // the loop is claiming: it must not sleep after that
  }

  private sleep(ms: number): Promise<void> {
    if (this.wokenWhileBusy) {
      this.wokenWhileBusy = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.wakeUp = null;
        resolve();
      }, ms);
      this.wakeUp = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  private async loop(): Promise<void> {
    while (this.running) {
      let claimed = 0;
      try {
        const free = this.opts.concurrency - this.inFlight.size;
        if (free > 0) claimed = await this.claimAndStart(free);
        if (Date.now() - this.lastGauges > 5000) {
          this.lastGauges = Date.now();
          await this.releaseExpiredLeases();
          await this.failOrphaned();
          await this.refreshGauges();
        }
      } catch (e) {
        this.logger.error({ err: (e as Error).message }, 'webhook claim failed');
        await this.sleep(1000);
        continue;
      }
      if (!this.running) break;
      if (claimed === 0 || this.inFlight.size >= this.opts.concurrency) await this.sleep(this.opts.pollMs);
    }
  }

  /** Claims and starts up to `max` deliveries; resolves when they are started (not finished). */
  async claimAndStart(max: number): Promise<number> {
    const claimed = await this.claim(max);
    for (const d of claimed) {
      const p = this.deliver(d)
        .catch((e: Error) => this.logger.error({ err: e.message, delivery: d.id }, 'webhook delivery failed'))
        .finally(() => {
          this.inFlight.delete(p);
          this.wake();
        });
      this.inFlight.add(p);
    }
    return claimed.length;
  }

  /**
   * One statement, its own transaction: lock the endpoints with due work and a free slot, least recently
   * served first (`FOR UPDATE OF e SKIP LOCKED`), lease up to their free slots of due deliveries each, raise
   * their `in_flight` by what was leased and send those that got any to the back of the round-robin (one
   * that got none keeps its place). A locked row is
   * re-read at its newest committed version, so `in_flight` (and with it the cap) is exact across processes
   * without a second statement. The "has due work" probe is a correlated `LIMIT 1` on the endpoint's partial
   * due index: a plain index scan marks the dead entries it passes (a bitmap scan, which the planner chose for
   * an `EXISTS`, revisits every delivery leased since the last vacuum: measured 4.8 ms per claim).
   */
  private async claim(max: number): Promise<ClaimedDelivery[]> {
    const now = this.clock.now();
    const owner = randomUUID();
    const leaseMs = this.opts.timeoutMs + 30_000;
    const rows = await prepared<ClaimedRow>(
      this.dataSource,
      `WITH ep AS (
         SELECT e.tenant_id, e.generation, e.enabled_at, e.url, e.secret_enc, e.previous_secret_enc,
                e.previous_secret_until, $2::int - e.in_flight AS free
           FROM webhook_endpoints e
          WHERE e.enabled AND e.in_flight < $2
            AND (SELECT true FROM webhook_deliveries d
                  WHERE d.tenant_id = e.tenant_id AND d.status = 'pending' AND d.next_attempt_at <= $1
                    AND ${sameGeneration('d.endpoint_generation')}
                  LIMIT 1)
          ORDER BY e.claimed_at NULLS FIRST, e.tenant_id
          LIMIT $3
          FOR UPDATE OF e SKIP LOCKED),
       pick AS (
         SELECT c.id, ep.generation
           FROM ep CROSS JOIN LATERAL (
                  SELECT x.id FROM webhook_deliveries x
                   WHERE x.tenant_id = ep.tenant_id AND x.status = 'pending' AND x.next_attempt_at <= $1
                     AND ${sameGeneration('x.endpoint_generation', 'ep')}
                   ORDER BY x.next_attempt_at, x.id
                   LIMIT ep.free
                   FOR UPDATE SKIP LOCKED) c
          LIMIT $3),
       leased AS (
         UPDATE webhook_deliveries d
            SET status = 'delivering', lease_owner = $4,
                lease_until = clock_timestamp() + $5::int * interval '1 millisecond',
                -- one queued by a process of the previous version has none: it is now for this endpoint
                endpoint_generation = coalesce(d.endpoint_generation, pick.generation)
           FROM pick
          WHERE d.id = pick.id
          RETURNING d.id, d.tenant_id, d.event_id, d.payload::text AS body, d.attempts),
       bumped AS (
         UPDATE webhook_endpoints e
            -- Only an endpoint that got something goes to the back of the round-robin: one that got no slot
            -- (the process's free slots went to endpoints ahead of it) keeps its place for the next claim.
            SET in_flight = e.in_flight + n.n, claimed_at = clock_timestamp()
           FROM ep JOIN (SELECT tenant_id, count(*)::int AS n FROM leased GROUP BY tenant_id) n USING (tenant_id)
          WHERE e.tenant_id = ep.tenant_id)
       SELECT l.id, l.tenant_id, l.event_id, l.body, l.attempts,
              ep.generation, ep.enabled_at::text AS enabled_at, ep.url, ep.secret_enc, ep.previous_secret_enc,
              ep.previous_secret_until
         FROM leased l JOIN ep USING (tenant_id)`,
      [now, this.opts.perEndpoint, max, owner, leaseMs],
    );
    const claimed: ClaimedDelivery[] = [];
    const unopened: string[] = [];
    for (const r of rows) {
      // An endpoint whose secret cannot be opened (ENCRYPTION_KEY changed) gives its leases back at once,
      // due again in a minute; it does not stop the others.
      const secrets = this.openSecrets(r, now);
      if (secrets) claimed.push({ ...r, owner, secrets });
      else unopened.push(r.id);
    }
    // The claim has committed: if giving those back fails, the others' leases must still be started (else they
    // sit leased, holding their slots, unsent until their leases expire). Unreleased, they expire like a crash's.
    if (unopened.length > 0)
      await this.releaseLeases(unopened, owner, new Date(now.getTime() + 60_000)).catch((e: Error) =>
        this.logger.error(
          { err: e.message, count: unopened.length },
          'webhook leases of an unreadable secret not given back; released when their leases expire',
        ),
      );
    return claimed;
  }

  /** Gives leases back unused: due again at `nextAttemptAt`, no attempt counted. */
  private async releaseLeases(ids: string[], owner: string, nextAttemptAt: Date): Promise<void> {
    await this.dataSource.query(
      `WITH released AS (
         UPDATE webhook_deliveries SET status = 'pending', lease_until = NULL, lease_owner = NULL, next_attempt_at = $3
          WHERE id = ANY ($1::uuid[]) AND status = 'delivering' AND lease_owner = $2
          RETURNING tenant_id, endpoint_generation)
       ${lowerInFlight('released')}`,
      [ids, owner, nextAttemptAt],
    );
  }

  /**
   * The current secret, and the previous one while its rotation overlap lasts; null if the current one
   * cannot be opened. A previous secret that cannot be opened is left out: rotating is how a tenant
   * recovers from an unreadable secret (ENCRYPTION_KEY changed), and it must not hold the endpoint back
   * for the 24 h overlap.
   */
  private openSecrets(ep: EndpointSecrets, now: Date): string[] | null {
    try {
      const secrets = [this.open(ep.secret_enc)];
      if (ep.previous_secret_enc && ep.previous_secret_until && ep.previous_secret_until > now) {
        try {
          secrets.push(this.open(ep.previous_secret_enc));
        } catch {
          // unreadable: sign with the current secret only
        }
      }
      return secrets;
    } catch (e) {
      const last = this.secretErrorsLogged.get(ep.tenant_id) ?? 0;
      if (Date.now() - last < 60_000) return null;
      this.secretErrorsLogged.set(ep.tenant_id, Date.now());
      this.logger.error(
        { tenantId: ep.tenant_id, err: (e as Error).message },
        'webhook secret cannot be decrypted (ENCRYPTION_KEY changed?); its deliveries wait',
      );
      return null;
    }
  }

  private open(secretEnc: string): string {
    let secret = this.openedSecrets.get(secretEnc);
    if (secret === undefined) {
      secret = this.secretBox.open(secretEnc);
      this.openedSecrets.set(secretEnc, secret);
    }
    return secret;
  }

  private async deliver(d: ClaimedDelivery): Promise<void> {
    if (this.stopController.signal.aborted) {
      // Claimed while this process began stopping: never sent, so given back as it was (no attempt).
      await this.releaseLeases([d.id], d.owner, this.clock.now());
      return;
    }
    const result = await this.sender.send(
      d.url,
      publicEventId(d.event_id),
      d.body,
      d.secrets,
      this.stopController.signal,
    );
    webhookAttempts.labels(result.outcome).inc();
    webhookAttemptDuration.labels(result.outcome).observe(result.durationMs / 1000);
    // A failed attempt is retried later (minutes later from the second retry on): say so in the log, so
    // that a webhook a tenant is waiting for can be traced without reading the attempts table. No URL
    // (it may carry the tenant's own token) and no body.
    if (result.outcome !== 'delivered')
      this.logger.warn(
        {
          tenantId: d.tenant_id,
          delivery: d.id,
          attempt: d.attempts + 1,
          outcome: result.outcome,
          statusCode: result.statusCode,
          err: result.error,
        },
        'webhook attempt failed; it will be retried unless it was the last',
      );
    // An attempt our own shutdown aborted says nothing about the receiver: it must not use up one of the
    // delivery's scheduled attempts (the last one would fail it for good) nor push it to the next backoff step.
    const interrupted = result.outcome === 'timeout' && this.stopController.signal.aborted;
    await this.record(
      d,
      interrupted
        ? { ...result, error: `aborted: the gateway was stopping (not counted); ${result.error ?? ''}` }
        : result,
      !interrupted,
    );
  }

  /**
   * Logs the attempt and moves the delivery on, guarded by the lease owner: if the lease expired and
   * another worker took the delivery over, only the attempt row is written (it did happen).
   *
   * Group commit: outcomes that finish while a recording statement runs wait and are written
   * together by the next one (one statement per group, not a transaction per delivery). The delivery's slot is
   * free only once its outcome is committed: the per-endpoint cap counts leases in the database.
   */
  private record(d: ClaimedDelivery, r: AttemptResult, counted = true): Promise<void> {
    return new Promise((resolve, reject) => {
      this.toRecord.push({ d, r, at: this.clock.now(), counted, resolve, reject });
      if (!this.recording) void this.flushRecords();
    });
  }
  private toRecord: PendingOutcome[] = [];
  private recording = false;

  private async flushRecords(): Promise<void> {
    this.recording = true;
    try {
      while (this.toRecord.length > 0) {
        const group = this.toRecord.splice(0, 500);
        try {
          await this.writeOutcomes(group);
          group.forEach((o) => o.resolve());
        } catch (e) {
          if (group.length === 1 || isConnectionError(e)) {
            group.forEach((o) => o.reject(e));
            continue;
          }
          // One outcome that cannot be written (or a conflict) must not fail the others of its group: they
          // would stay leased until their leases expire and then be sent again. Each is written alone.
          for (const o of group)
            await this.writeOutcomes([o]).then(
              () => o.resolve(),
              (err: unknown) => o.reject(err),
            );
        }
      }
    } finally {
      this.recording = false;
    }
  }

  private async writeOutcomes(group: PendingOutcome[]): Promise<void> {
    const rows = group.map(({ d, r, at, counted }) => {
      const attempts = d.attempts + 1;
      let status: 'succeeded' | 'pending' | 'failed';
      let next: Date | null = null;
      if (r.outcome === 'delivered') status = 'succeeded';
      else if (r.outcome === 'gone') status = 'failed';
      else if (!counted) {
        status = 'pending';
        next = at;
      } else {
        const delay = retryDelayMs(attempts);
        status = delay === null ? 'failed' : 'pending';
        if (delay !== null) next = new Date(at.getTime() + delay);
      }
      return { d, r, at, status, next, counted };
    });
    // One statement (its own transaction, one round trip): the attempts, the deliveries moved on, and
    // for a 410 the endpoint disabled — only the URL that answered, and only if the endpoint has not been
    // enabled (PUT) since the attempt was claimed: a tenant who has just changed its URL, or re-enabled it
    // after an earlier 410 while this request was in flight, keeps it enabled.
    const answeredIsCurrent = `e.url = g.url AND e.generation = g.generation AND e.enabled_at = g.enabled_at`;
    await this.dataSource.query(
      `WITH u AS (
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::int[], $6::text[],
                              $7::timestamptz[], $8::int[], $9::text[], $10::text[], $11::uuid[], $12::text[],
                              $13::bool[], $14::uuid[], $15::timestamptz[])
                    AS u(id, owner, status, next, code, error, at, duration, outcome, excerpt, tenant_id, url, counted,
                         generation, enabled_at)),
       attempts AS (
         INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, error, duration_ms, outcome, response_excerpt)
         SELECT id, at, code, error, duration, outcome, excerpt FROM u),
       -- A retry of a delivery whose endpoint was deleted meanwhile (its generation is no longer the
       -- tenant's) is not made: failed, as the DELETE failed the pending ones.
       moved AS (
         UPDATE webhook_deliveries d
            SET status = CASE WHEN u.status = 'pending' AND NOT coalesce(${sameGeneration('d.endpoint_generation', 'cur')}, false)
                              THEN 'failed' ELSE u.status END,
                attempts = d.attempts + CASE WHEN u.counted THEN 1 ELSE 0 END,
                next_attempt_at = coalesce(u.next, d.next_attempt_at),
                lease_until = NULL, lease_owner = NULL, last_status_code = u.code,
                last_error = CASE WHEN u.status = 'pending' AND NOT coalesce(${sameGeneration('d.endpoint_generation', 'cur')}, false)
                                  THEN 'endpoint deleted' ELSE u.error END,
                delivered_at = CASE WHEN u.status = 'succeeded' THEN u.at ELSE d.delivered_at END
           FROM u LEFT JOIN webhook_endpoints cur ON cur.tenant_id = u.tenant_id
          WHERE d.id = u.id AND d.status = 'delivering' AND d.lease_owner = u.owner
          RETURNING d.tenant_id, d.endpoint_generation),
       -- One UPDATE per endpoint row (a row updated by two parts of one statement keeps only one change):
       -- the slots its own leases held freed, and on a 410 from the URL it still has, to a request claimed
       -- since its last enable, disabled.
       freed AS (
         SELECT m.tenant_id, count(*)::int AS n
           FROM moved m JOIN webhook_endpoints e ON e.tenant_id = m.tenant_id AND ${sameGeneration('m.endpoint_generation')}
          GROUP BY m.tenant_id),
       gone AS (
         SELECT DISTINCT ON (u.tenant_id) u.tenant_id, u.url, u.generation, u.enabled_at, u.at
           FROM u LEFT JOIN webhook_endpoints e ON e.tenant_id = u.tenant_id
          WHERE u.outcome = 'gone'
          ORDER BY u.tenant_id, (u.url = e.url AND u.generation = e.generation AND u.enabled_at = e.enabled_at) DESC),
       endpoints AS (
         UPDATE webhook_endpoints e
            SET in_flight = greatest(0, e.in_flight - coalesce(f.n, 0)),
                enabled = e.enabled AND NOT coalesce(${answeredIsCurrent}, false),
                disabled_reason = CASE WHEN e.enabled AND ${answeredIsCurrent}
                                       THEN 'gone' ELSE e.disabled_reason END,
                disabled_at = CASE WHEN e.enabled AND ${answeredIsCurrent}
                                   THEN g.at ELSE e.disabled_at END,
                updated_at = CASE WHEN e.enabled AND ${answeredIsCurrent}
                                  THEN g.at ELSE e.updated_at END
           FROM freed f FULL JOIN gone g USING (tenant_id)
          WHERE e.tenant_id = coalesce(f.tenant_id, g.tenant_id))
       SELECT 1`,
      [
        rows.map((x) => x.d.id),
        rows.map((x) => x.d.owner),
        rows.map((x) => x.status),
        rows.map((x) => x.next),
        rows.map((x) => x.r.statusCode),
        rows.map((x) => x.r.error),
        rows.map((x) => x.at),
        rows.map((x) => x.r.durationMs),
        rows.map((x) => x.r.outcome),
        rows.map((x) => x.r.responseExcerpt),
        rows.map((x) => x.d.tenant_id),
        rows.map((x) => x.d.url),
        rows.map((x) => x.counted),
        rows.map((x) => x.d.generation),
        rows.map((x) => x.d.enabled_at),
      ],
    );
  }

  /**
   * A lease that ended without an outcome (its process crashed or hung) makes the delivery due
   * again at once. The attempt is not counted: it may or may not have reached the receiver, which
   * is what at-least-once allows. Any process does this every few seconds.
   */
  async releaseExpiredLeases(): Promise<number> {
    const released = await sqlRows<{ id: string }>(
      this.dataSource,
      `WITH released AS (
         UPDATE webhook_deliveries SET status = 'pending', lease_until = NULL, lease_owner = NULL,
                last_error = 'lease expired without an outcome'
          WHERE status = 'delivering' AND lease_until <= clock_timestamp()
          RETURNING id, tenant_id, endpoint_generation),
       lowered AS (${lowerInFlight('released')})
       SELECT id FROM released`,
    );
    if (released.length) this.logger.warn({ count: released.length }, 'webhook leases expired: deliveries due again');
    return released.length;
  }

  /**
   * Due deliveries of an endpoint that no longer exists fail (`endpoint deleted`). The DELETE fails the
   * pending ones itself; this catches those queued by a transaction that read the endpoint before the
   * DELETE and committed after it (the claim never sends them: it takes only deliveries of the endpoint's
   * own generation). Any process does this every few seconds; it reads only due deliveries (the due index).
   */
  async failOrphaned(): Promise<number> {
    const failed = await sqlRows<{ id: string }>(
      this.dataSource,
      `UPDATE webhook_deliveries d SET status = 'failed', last_error = 'endpoint deleted'
        WHERE d.status = 'pending' AND d.next_attempt_at <= $1
          AND NOT EXISTS (SELECT 1 FROM webhook_endpoints e
                           WHERE e.tenant_id = d.tenant_id AND ${sameGeneration('d.endpoint_generation')})
        RETURNING d.id`,
      [this.clock.now()],
    );
    if (failed.length) this.logger.warn({ count: failed.length }, 'deliveries of a deleted webhook endpoint failed');
    return failed.length;
  }

  private async refreshGauges(): Promise<void> {
    const now = this.clock.now();
    const [g] = await sqlRows<{ due: number; oldest: Date | null }>(
      this.dataSource,
      `SELECT count(*)::int AS due, min(next_attempt_at) AS oldest
         FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= $1`,
      [now],
    );
    webhookQueueDue.set(g.due);
    webhookQueueAge.set(g.oldest ? Math.max(0, (now.getTime() - new Date(g.oldest).getTime()) / 1000) : 0);
  }
}

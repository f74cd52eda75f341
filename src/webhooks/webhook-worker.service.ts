import { Inject, Injectable, Logger } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { SecretBox } from '../common/secret-box';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { isConnectionError } from '../database/connection-errors';
import { rows as sqlRows } from '../database/raw-rows';
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
  secrets: string[];
}

interface PendingOutcome {
  d: ClaimedDelivery;
  r: AttemptResult;
  at: Date;
  resolve(): void;
  reject(err: unknown): void;
}

interface EndpointForClaim {
  tenant_id: string;
  url: string;
  secret_enc: string;
  previous_secret_enc: string | null;
  previous_secret_until: Date | null;
  free: number;
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

  private async claim(max: number): Promise<ClaimedDelivery[]> {
    const now = this.clock.now();
    const owner = randomUUID();
    const leaseMs = this.opts.timeoutMs + 30_000;
    return this.dataSource.transaction(async (m) => {
      const endpoints: EndpointForClaim[] = await m.query(
        `SELECT e.tenant_id, e.url, e.secret_enc, e.previous_secret_enc, e.previous_secret_until
           FROM webhook_endpoints e
          WHERE e.enabled
            AND EXISTS (SELECT 1 FROM webhook_deliveries d
                         WHERE d.tenant_id = e.tenant_id AND d.status = 'pending' AND d.next_attempt_at <= $1)
          ORDER BY e.claimed_at NULLS FIRST, e.tenant_id
          LIMIT $2
          FOR UPDATE OF e SKIP LOCKED`,
        [now, max],
      );
      // Counted in a statement of its own, after the endpoint rows are locked: READ COMMITTED gives it
      // a fresh snapshot, so it sees every lease committed by a claimer that held the lock before us.
      // (Counted inside the locking statement, its snapshot predates the lock: measured 6 in flight
      // with a cap of 4 under two processes.)
      if (endpoints.length > 0) {
        const counts: { tenant_id: string; n: number }[] = await m.query(
          `SELECT tenant_id, count(*)::int AS n FROM webhook_deliveries
            WHERE tenant_id = ANY ($1::uuid[]) AND status = 'delivering' AND lease_until > clock_timestamp()
            GROUP BY tenant_id`,
          [endpoints.map((e) => e.tenant_id)],
        );
        const inFlight = new Map(counts.map((c) => [c.tenant_id, c.n]));
        for (const ep of endpoints) ep.free = this.opts.perEndpoint - (inFlight.get(ep.tenant_id) ?? 0);
      }
      const take: { ep: EndpointForClaim; n: number; secrets: string[] }[] = [];
      let left = max;
      for (const ep of endpoints) {
        const n = Math.min(ep.free, left);
        if (n <= 0) continue;
        // Secrets are opened before anything is leased: an endpoint whose secret cannot be opened
        // (ENCRYPTION_KEY changed) keeps its deliveries pending and does not stop the others.
        const secrets = this.openSecrets(ep, now);
        if (!secrets) continue;
        take.push({ ep, n, secrets });
        left -= n;
        if (left === 0) break;
      }
      // Every endpoint looked at goes to the back of the round-robin, served or not (at its cap, or
      // a secret that cannot be opened): it cannot keep the others out of the LIMIT.
      if (endpoints.length > 0)
        await m.query(
          `UPDATE webhook_endpoints SET claimed_at = clock_timestamp() WHERE tenant_id = ANY ($1::uuid[])`,
          [endpoints.map((e) => e.tenant_id)],
        );
      if (take.length === 0) return [];
      const rows = await sqlRows<{ id: string; tenant_id: string; event_id: string; body: string; attempts: number }>(
        m,
        `UPDATE webhook_deliveries d
            SET status = 'delivering', lease_owner = $3,
                lease_until = clock_timestamp() + $4::int * interval '1 millisecond'
           FROM (SELECT c.id
                   FROM unnest($1::uuid[], $2::int[]) AS q(tenant_id, n)
                   CROSS JOIN LATERAL (
                     SELECT x.id FROM webhook_deliveries x
                      WHERE x.tenant_id = q.tenant_id AND x.status = 'pending' AND x.next_attempt_at <= $5
                      ORDER BY x.next_attempt_at, x.id
                      LIMIT q.n
                      FOR UPDATE SKIP LOCKED) c) pick
          WHERE d.id = pick.id
          RETURNING d.id, d.tenant_id, d.event_id, d.payload::text AS body, d.attempts`,
        [take.map((t) => t.ep.tenant_id), take.map((t) => t.n), owner, leaseMs, now],
      );
      const byTenant = new Map(take.map((t) => [t.ep.tenant_id, t]));
      return rows.map((r) => {
        const { ep, secrets } = byTenant.get(r.tenant_id)!;
        return { ...r, owner, url: ep.url, secrets };
      });
    });
  }

  /** The current secret, and the previous one while its rotation overlap lasts; null if they cannot be opened. */
  private openSecrets(ep: EndpointForClaim, now: Date): string[] | null {
    try {
      const secrets = [this.secretBox.open(ep.secret_enc)];
      if (ep.previous_secret_enc && ep.previous_secret_until && ep.previous_secret_until > now)
        secrets.push(this.secretBox.open(ep.previous_secret_enc));
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

  private async deliver(d: ClaimedDelivery): Promise<void> {
    const result = await this.sender.send(
      d.url,
      publicEventId(d.event_id),
      d.body,
      d.secrets,
      this.stopController.signal,
    );
    webhookAttempts.labels(result.outcome).inc();
    webhookAttemptDuration.labels(result.outcome).observe(result.durationMs / 1000);
    await this.record(d, result);
  }

  /**
   * Logs the attempt and moves the delivery on, guarded by the lease owner: if the lease expired and
   * another worker took the delivery over, only the attempt row is written (it did happen).
   *
   * Group commit: outcomes that finish while a recording statement runs wait and are written
   * together by the next one (one statement per group, not a transaction per delivery). The delivery's slot is
   * free only once its outcome is committed: the per-endpoint cap counts leases in the database.
   */
  private record(d: ClaimedDelivery, r: AttemptResult): Promise<void> {
    return new Promise((resolve, reject) => {
      this.toRecord.push({ d, r, at: this.clock.now(), resolve, reject });
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
    const rows = group.map(({ d, r, at }) => {
      const attempts = d.attempts + 1;
      let status: 'succeeded' | 'pending' | 'failed';
      let next: Date | null = null;
      if (r.outcome === 'delivered') status = 'succeeded';
      else if (r.outcome === 'gone') status = 'failed';
      else {
        const delay = retryDelayMs(attempts);
        status = delay === null ? 'failed' : 'pending';
        if (delay !== null) next = new Date(at.getTime() + delay);
      }
      return { d, r, at, status, next };
    });
    // One statement (its own transaction, one round trip): the attempts, the deliveries moved on, and
    // for a 410 the endpoint disabled — only the URL that answered: a tenant who has just changed it
    // keeps the new one enabled.
    await this.dataSource.query(
      `WITH u AS (
         SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::timestamptz[], $5::int[], $6::text[],
                              $7::timestamptz[], $8::int[], $9::text[], $10::text[], $11::uuid[], $12::text[])
                    AS u(id, owner, status, next, code, error, at, duration, outcome, excerpt, tenant_id, url)),
       attempts AS (
         INSERT INTO webhook_attempts (delivery_id, attempted_at, status_code, error, duration_ms, outcome, response_excerpt)
         SELECT id, at, code, error, duration, outcome, excerpt FROM u),
       moved AS (
         UPDATE webhook_deliveries d
            SET status = u.status, attempts = d.attempts + 1, next_attempt_at = coalesce(u.next, d.next_attempt_at),
                lease_until = NULL, lease_owner = NULL, last_status_code = u.code, last_error = u.error,
                delivered_at = CASE WHEN u.status = 'succeeded' THEN u.at ELSE d.delivered_at END
           FROM u
          WHERE d.id = u.id AND d.status = 'delivering' AND d.lease_owner = u.owner),
       gone AS (
         UPDATE webhook_endpoints e
            SET enabled = false, disabled_reason = 'gone', disabled_at = g.at, updated_at = g.at
           FROM (SELECT DISTINCT ON (tenant_id, url) tenant_id, url, at FROM u WHERE outcome = 'gone') g
          WHERE e.tenant_id = g.tenant_id AND e.url = g.url AND e.enabled)
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
      `UPDATE webhook_deliveries SET status = 'pending', lease_until = NULL, lease_owner = NULL,
              last_error = 'lease expired without an outcome'
        WHERE status = 'delivering' AND lease_until <= clock_timestamp()
        RETURNING id`,
    );
    if (released.length) this.logger.warn({ count: released.length }, 'webhook leases expired: deliveries due again');
    return released.length;
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

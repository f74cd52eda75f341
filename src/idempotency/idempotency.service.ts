import { BeforeApplicationShutdown, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { PeriodicJob } from '../common/periodic-job';
import { rows as sqlRows } from '../database/raw-rows';
import { createHash, randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import { DataSource, EntityManager } from 'typeorm';
import { Clock } from '../common/clock';
import { Problem, problemBody } from '../common/problem';

/** How long an in-progress claim protects a key before a crashed holder's claim may be taken over. */
const IN_PROGRESS_LEASE_MS = 60_000;
/** Completed keys are kept at least this long (API.md: at least 24 h). */
export const IDEMPOTENCY_RETENTION_MS = 48 * 3600_000;
/** The purge of expired keys, on the SchedulerRegistry. */
const PURGE_INTERVAL = 'idempotency.purge';
const PURGE_EVERY_MS = 600_000;

export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

/** A request's hash (stored) and further hashes it also matches (see hashes()). */
export type RequestHashes = string | readonly [string, ...string[]];

export type IdempotencyStart = { kind: 'new'; owner: string } | { kind: 'replay'; status: number; body: unknown };

/** A claimed key: only its owner may complete or release it. */
export interface IdempotencyClaim {
  tenantId: string;
  key: string;
  owner: string;
}

/** An HTTP answer that may be stored under a key and replayed. */
export interface IdempotentResult<T = unknown> {
  status: number;
  body: T;
  replayed?: boolean;
}

/** JSON with object keys sorted recursively (arrays keep their order): formatting-independent. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const obj = value as Record<string, unknown>;
    const keys = Object.keys(obj)
      .filter((k) => obj[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** Writes an idempotent result: its status, `Idempotent-Replayed: true` on a replay, problem+json for errors. */
export function sendIdempotent(res: FastifyReply, r: IdempotentResult): unknown {
  res.status(r.status);
  if (r.replayed) res.header('Idempotent-Replayed', 'true');
  if (r.status >= 400) {
    res.type('application/problem+json');
    return JSON.stringify(r.body); // the stored problem; on a replay the same JSON value, re-serialised from jsonb (key order may differ)
  }
  return r.body;
}

/**
 * Idempotency-Key, per tenant. A key is claimed with an insert (the primary key decides who wins a
 * race); the result is written by the same transaction that creates the messages and debits the
 * balance (accept.service.ts), or credits it (ledger.service.ts for admin top-ups and adjustments),
 * so "charged" and "key completed" cannot be separated by a crash. An `in_progress` row therefore
 * always means "nothing committed yet".
 *
 * Scopes: a tenant's own keys (POST /v1/messages, /batch) are stored as sent. Keys of admin routes on
 * a tenant are stored under the same tenant as `admin:<route> <key>` (scopedKey): a space cannot occur
 * in a client's key, so the scopes never collide. Requests compare by method, path and canonical JSON
 * of the body (key order does not matter).
 */
@Injectable()
export class IdempotencyService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(IdempotencyService.name);
  private readonly purge: PeriodicJob;

  constructor(
    private readonly dataSource: DataSource,
    private readonly clock: Clock,
    scheduler: SchedulerRegistry,
  ) {
    this.purge = new PeriodicJob(
      scheduler,
      PURGE_INTERVAL,
      () => this.purgeExpired(),
      (e) => this.logger.warn({ err: e.message }, 'idempotency purge failed'),
    );
  }

  /** Deletes keys past their retention every 10 minutes. */
  onApplicationBootstrap(): void {
    this.purge.start(PURGE_EVERY_MS);
  }

  /** Stops the purge and lets a running one finish before the pool closes. */
  async beforeApplicationShutdown(): Promise<void> {
    await this.purge.stop();
  }

  static hash(method: string, path: string, body: unknown): string {
    return createHash('sha256')
      .update(`${method} ${path}\n${canonicalJson(body ?? null)}`)
      .digest('base64url');
  }

  /**
   * The request's hash, then the hash the previous release stored (body as sent, key order
   * significant): a key stored before the deploy still replays. The second may go once every key
   * from before the deploy has been purged (IDEMPOTENCY_RETENTION_MS).
   */
  static hashes(method: string, path: string, body: unknown): RequestHashes {
    const legacy = createHash('sha256')
      .update(`${method} ${path}\n${JSON.stringify(body ?? null)}`)
      .digest('base64url');
    return [IdempotencyService.hash(method, path, body), legacy];
  }

  /** The stored key of an admin route's Idempotency-Key (validated first): per tenant and route. */
  static scopedKey(route: 'topups' | 'adjustments', key: string): string {
    IdempotencyService.validateKey(key);
    return `admin:${route} ${key}`;
  }

  /**
   * Runs `fn` at most once per key: a completed key replays its stored answer (whatever the request
   * would do now), a key in progress is 409 `idempotency_in_progress`, another body 422
   * `idempotency_conflict`. `fn` must complete the claim (complete()) inside the transaction that
   * commits its effect. With `storeRefusals`, a 4xx Problem thrown by `fn` (nothing committed) is
   * stored as the key's answer too, like a refused send; other errors release the key for a retry.
   */
  async run(
    tenantId: string,
    key: string | undefined,
    requestHash: RequestHashes,
    fn: (claim?: IdempotencyClaim) => Promise<IdempotentResult>,
    opts: { storeRefusals?: boolean } = {},
  ): Promise<IdempotentResult> {
    if (key === undefined) return fn(undefined);
    const start = await this.begin(tenantId, key, requestHash);
    if (start.kind === 'replay') return { status: start.status, body: start.body, replayed: true };
    const claim: IdempotencyClaim = { tenantId, key, owner: start.owner };
    try {
      return await fn(claim);
    } catch (e) {
      if (opts.storeRefusals && e instanceof Problem && e.status < 500 && !e.code.startsWith('idempotency_')) {
        const refusal = { status: e.status, body: problemBody(e) };
        await this.complete(this.dataSource, claim, refusal.status, refusal.body);
        return refusal;
      }
      await this.abandon(tenantId, key, start.owner).catch(() => undefined);
      throw e;
    }
  }

  /**
   * Stores the answer of a claimed key, inside the caller's transaction. Throws (so that transaction
   * rolls back) if the claim was taken over by a retry that presumed this holder dead.
   */
  async complete(m: EntityManager | DataSource, claim: IdempotencyClaim, status: number, body: unknown): Promise<void> {
    const completed = await sqlRows<unknown>(
      m,
      `UPDATE idempotency_keys SET state = 'done', response_status = $4, response_body = $5
        WHERE tenant_id = $1 AND key = $2 AND state = 'in_progress' AND owner = $3 RETURNING key`,
      [claim.tenantId, claim.key, claim.owner, status, JSON.stringify(body)],
    );
    if (completed.length !== 1) {
      throw new Problem('idempotency_in_progress', 'This Idempotency-Key was taken over by a newer request');
    }
  }

  /**
   * How many of these claims (key and owner token) completed: the accept path's answer to "did my
   * transaction commit?" after a commit in doubt. Any > 0 means it did (they complete together).
   */
  async countCompleted(tenantId: string, claims: { key: string; owner: string }[]): Promise<number> {
    if (!tenantId) throw new Error('countCompleted requires a tenant id');
    if (claims.length === 0) return 0;
    const found = await sqlRows<{ n: number }>(
      this.dataSource,
      `SELECT count(*)::int AS n FROM idempotency_keys k JOIN unnest($2::text[], $3::uuid[]) AS u(key, owner)
          ON k.key = u.key AND k.owner = u.owner
        WHERE k.tenant_id = $1 AND k.state = 'done'`,
      [tenantId, claims.map((c) => c.key), claims.map((c) => c.owner)],
    );
    return found[0].n;
  }

  static validateKey(key: string): void {
    if (!IDEMPOTENCY_KEY_PATTERN.test(key)) {
      throw new Problem('validation_failed', 'Idempotency-Key must be 1 to 255 printable ASCII characters', [
        { field: 'Idempotency-Key', message: 'must be 1 to 255 printable ASCII characters' },
      ]);
    }
  }

  async begin(tenantId: string, key: string, requestHashes: RequestHashes): Promise<IdempotencyStart> {
    const accepted: readonly string[] = typeof requestHashes === 'string' ? [requestHashes] : requestHashes;
    const requestHash = accepted[0];
    const now = this.clock.now();
    const lockedUntil = new Date(now.getTime() + IN_PROGRESS_LEASE_MS);
    const owner = randomUUID();
    const inserted: unknown[] = await this.dataSource.query(
      `INSERT INTO idempotency_keys (tenant_id, key, request_hash, state, created_at, locked_until, owner)
       VALUES ($1, $2, $3, 'in_progress', $4, $5, $6) ON CONFLICT (tenant_id, key) DO NOTHING RETURNING key`,
      [tenantId, key, requestHash, now, lockedUntil, owner],
    );
    if (inserted.length === 1) return { kind: 'new', owner };

    const rows: {
      request_hash: string;
      state: string;
      response_status: number | null;
      response_body: unknown;
      locked_until: Date;
    }[] = await this.dataSource.query(
      `SELECT request_hash, state, response_status, response_body, locked_until FROM idempotency_keys WHERE tenant_id = $1 AND key = $2`,
      [tenantId, key],
    );
    if (rows.length === 0) return this.begin(tenantId, key, requestHashes); // expired and deleted meanwhile
    const row = rows[0];
    if (!accepted.includes(row.request_hash)) {
      throw new Problem('idempotency_conflict', 'This Idempotency-Key was used with a different request');
    }
    if (row.state === 'done') return { kind: 'replay', status: row.response_status ?? 200, body: row.response_body };
    if (row.locked_until > now) {
      throw new Problem(
        'idempotency_in_progress',
        'A request with this Idempotency-Key is still being processed',
        undefined,
        {
          'Retry-After': '1',
        },
      );
    }
    // The holder seems dead (nothing committed within the lease): take the claim over, guarded against
    // a racing taker. If the old holder was only slow, its completion now fails (wrong owner) and rolls
    // back its messages and debit: one charge either way.
    const taken = await sqlRows<unknown>(
      this.dataSource,
      `UPDATE idempotency_keys SET locked_until = $4, owner = $5 WHERE tenant_id = $1 AND key = $2 AND state = 'in_progress' AND locked_until = $3 RETURNING key`,
      [tenantId, key, row.locked_until, lockedUntil, owner],
    );
    if (taken.length === 1) return { kind: 'new', owner };
    return this.begin(tenantId, key, requestHashes);
  }

  /** Releases a claim whose request failed before anything was committed, so the client may retry. */
  async abandon(tenantId: string, key: string, owner: string): Promise<void> {
    await this.dataSource.query(
      `DELETE FROM idempotency_keys WHERE tenant_id = $1 AND key = $2 AND state = 'in_progress' AND owner = $3`,
      [tenantId, key, owner],
    );
  }

  async purgeExpired(): Promise<number> {
    const cutoff = new Date(this.clock.now().getTime() - IDEMPOTENCY_RETENTION_MS);
    const deleted = await sqlRows<unknown>(
      this.dataSource,
      `DELETE FROM idempotency_keys WHERE created_at < $1 RETURNING key`,
      [cutoff],
    );
    return deleted.length;
  }
}

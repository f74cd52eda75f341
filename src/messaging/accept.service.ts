import { Injectable, Logger } from '@nestjs/common';
import { EventEmitter } from 'node:events';
import { Histogram, register } from 'prom-client';
import { DataSource, EntityManager } from 'typeorm';
import { ChargePolicy, messagePrice } from '../billing';
import { LedgerService } from '../billing/ledger.service';
import { Clock } from '../common/clock';
import { uuidv7 } from '../common/ids';
import { Problem, problemBody } from '../common/problem';
import { MessageRow } from './message.row';
import { IdempotencyService } from '../idempotency/idempotency.service';
import { prepared, rows as sqlRows } from '../database/raw-rows';

/** One message to accept, already validated, normalised and counted. */
export interface AcceptItem {
  msisdn: string;
  text: string;
  reference: string | null;
  segments: number;
  encoding: 'GSM-7' | 'UCS-2';
  sendAt: Date | null;
}

export type ItemResult = { ok: true; row: MessageRow } | { ok: false; problem: Problem };

/** What to store for an Idempotency-Key, computed from the item results inside the transaction. */
export interface IdempotencyCompletion {
  key: string;
  /** The claim's owner token (idempotency.service.ts): completion fails if the claim was taken over. */
  owner: string;
  respond(results: ItemResult[]): { status: number; body: unknown };
}

/**
 * What one transaction wrote, known once its work is done and before its COMMIT: if the COMMIT
 * fails, these say whether it happened anyway (message ids are generated here, not by the database).
 */
interface Attempt {
  results: ItemResult[][];
  messageIds: string[];
  keys: { key: string; owner: string }[];
}

/**
 * Looking up an ambiguous commit: tries, with backoff (100 ms doubling, at most 3 s: about 9 s in
 * all), before the requests are failed unresolved (503; a client that retries with the same
 * Idempotency-Key then gets the stored answer). Shorter than a client's usual 15-30 s timeout.
 */
const RESOLVE_TRIES = 7;
const RESOLVE_MAX_BACKOFF_MS = 3_000;
/** How long one lookup waits for the tenant's money lock, i.e. for the transaction in doubt to end. */
const RESOLVE_LOCK_WAIT_MS = 3_000;
/** Re-runs of a transaction whose COMMIT failed and, looked up, did not happen. */
const MAX_RERUNS = 3;

interface PendingRequest {
  items: AcceptItem[];
  idempotency?: IdempotencyCompletion;
  resolve(results: ItemResult[]): void;
  reject(err: unknown): void;
}

const txSeconds =
  (register.getSingleMetric('gerbang_accept_tx_seconds') as Histogram<string> | undefined) ??
  new Histogram({
    name: 'gerbang_accept_tx_seconds',
    help: 'Accept (charge) transaction duration',
    buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1],
  });
const txItems =
  (register.getSingleMetric('gerbang_accept_tx_items') as Histogram<string> | undefined) ??
  new Histogram({
    name: 'gerbang_accept_tx_items',
    help: 'Messages charged per accept transaction',
    buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000],
  });

/** Most items charged in one transaction. */
const MAX_ITEMS_PER_TX = 2000;
/**
 * Most items waiting for one tenant's next transaction in this process. Beyond it the database is
 * not keeping up: new requests get 429 with Retry-After instead of queueing without bound in memory.
 */
const MAX_PENDING_ITEMS = 20_000;

/**
 * Accepting a message = its row, its ledger debit and (if any) its idempotency record commit
 * together or not at all. The message row is also the dispatcher's work item (status `queued`), so
 * "charged" and "will be submitted" are one fact. Creating a message writes no `message_events` row:
 * events record changes, and the initial status is the row's own (and the 202's); so there is no
 * `message.status` webhook for it either (docs/webhooks.md).
 *
 * Group commit: one tenant's balance row is a hot spot (~800 durable tx/s on this machine when
 * each message is its own transaction). Requests for the same tenant that arrive while a
 * transaction is running wait in memory and are charged together by the next one, in arrival
 * order: one row lock and one fsync per batch instead of per message. A request's promise
 * resolves only after its transaction committed.
 */
@Injectable()
export class AcceptService {
  private readonly logger = new Logger(AcceptService.name);
  private readonly queues = new Map<string, { pending: PendingRequest[]; running: boolean; items: number }>();
  /** Emits 'accepted' after a commit that queued work, so the dispatcher can start at once. */
  readonly events = new EventEmitter();

  constructor(
    private readonly dataSource: DataSource,
    private readonly ledger: LedgerService,
    private readonly idempotency: IdempotencyService,
    private readonly clock: Clock,
  ) {}

  accept(tenantId: string, items: AcceptItem[], idempotency?: IdempotencyCompletion): Promise<ItemResult[]> {
    return new Promise((resolve, reject) => {
      let queue = this.queues.get(tenantId);
      if (!queue) {
        queue = { pending: [], running: false, items: 0 };
        this.queues.set(tenantId, queue);
      }
      if (queue.items > 0 && queue.items + items.length > MAX_PENDING_ITEMS) {
        reject(
          new Problem(
            'rate_limited',
            'The gateway is busy charging earlier messages of this tenant; retry shortly',
            undefined,
            { 'Retry-After': '1' },
          ),
        );
        return;
      }
      queue.items += items.length;
      queue.pending.push({ items, idempotency, resolve, reject });
      if (!queue.running) void this.drain(tenantId, queue);
    });
  }

  private async drain(
    tenantId: string,
    queue: { pending: PendingRequest[]; running: boolean; items: number },
  ): Promise<void> {
    queue.running = true;
    try {
      while (queue.pending.length > 0) {
        const batch: PendingRequest[] = [];
        let count = 0;
        while (
          queue.pending.length > 0 &&
          (batch.length === 0 || count + queue.pending[0].items.length <= MAX_ITEMS_PER_TX)
        ) {
          const next = queue.pending.shift()!;
          count += next.items.length;
          batch.push(next);
        }
        queue.items -= count;
        await this.commitBatch(tenantId, batch);
      }
    } finally {
      queue.running = false;
      if (queue.pending.length === 0) this.queues.delete(tenantId);
    }
  }

  private async commitBatch(tenantId: string, batch: PendingRequest[], reruns = 0): Promise<void> {
    let attempt: Attempt | undefined;
    try {
      const end = txSeconds.startTimer();
      const results = await this.dataSource.transaction(async (m) => {
        attempt = undefined;
        const out = await this.chargeAndInsert(m, tenantId, batch);
        // Everything is written; only COMMIT is left. From here on a failure may be a commit in doubt.
        attempt = {
          results: out,
          messageIds: out.flat().flatMap((r) => (r.ok ? [r.row.id] : [])),
          keys: batch.flatMap((r) => (r.idempotency ? [{ key: r.idempotency.key, owner: r.idempotency.owner }] : [])),
        };
        return out;
      });
      end();
      txItems.observe(batch.reduce((n, r) => n + r.items.length, 0));
      batch.forEach((req, i) => req.resolve(results[i]));
      this.events.emit('accepted');
    } catch (err) {
      if (attempt) {
        // The work was done and the COMMIT failed (e.g. the connection dropped while committing):
        // it may have happened. Find out before anything is re-run, or a retry would charge twice.
        let committed: boolean;
        try {
          committed = await this.resolveCommit(tenantId, attempt);
        } catch (lookupErr) {
          this.logger.error(
            { tenantId, requests: batch.length, err: (lookupErr as Error).message },
            'accept commit in doubt and could not be resolved; failing its requests without re-running them',
          );
          for (const req of batch) req.reject(err);
          return;
        }
        this.logger.warn(
          { tenantId, requests: batch.length, committed, err: (err as Error).message },
          'accept commit failed in doubt; resolved by looking up what it wrote',
        );
        if (committed) {
          const results = attempt.results;
          txItems.observe(batch.reduce((n, r) => n + r.items.length, 0));
          batch.forEach((req, i) => req.resolve(results[i]));
          this.events.emit('accepted');
          return;
        }
        // It did not commit: nothing of it exists, so running it again (with new ids) is safe.
        if (reruns < MAX_RERUNS) return this.commitBatch(tenantId, batch, reruns + 1);
      }
      if (batch.length === 1) {
        batch[0].reject(err);
        return;
      }
      // One bad request must not fail its neighbours: retry each alone.
      this.logger.warn(
        { tenantId, requests: batch.length, err: (err as Error).message },
        'group commit failed; retrying requests one by one',
      );
      for (const req of batch) await this.commitBatch(tenantId, [req]);
    }
  }

  /**
   * Did the transaction that wrote `attempt` commit? Its message rows (all or none: one transaction)
   * or, with nothing charged, its idempotency completions tell. A transaction that wrote neither
   * changed nothing worth keeping, so re-running it is safe (false). Retries the lookup with backoff
   * (a dropped connection often means a restarting database); throws if it never answers.
   *
   * The lookup first takes the tenant's money lock: the transaction in doubt took it before writing and
   * holds it until it has committed or rolled back, and the connection may have been lost while the server
   * was still committing (its answer never came). Looked up before that commit ended, its rows are not yet
   * visible, "not committed" would re-run it and charge twice. With the lock the answer is final; a lock
   * that does not come within RESOLVE_LOCK_WAIT_MS (the server still holds a dead session's transaction)
   * fails this try like any lookup error.
   */
  private async resolveCommit(tenantId: string, attempt: Attempt): Promise<boolean> {
    let lastErr: unknown;
    for (let i = 0; i < RESOLVE_TRIES; i++) {
      try {
        // Got (and released at once): the transaction in doubt has ended, its outcome is visible to any reader.
        await this.dataSource.transaction(async (m) => {
          await m.query(`SET LOCAL lock_timeout = '${RESOLVE_LOCK_WAIT_MS}ms'`);
          await this.ledger.lockTenants(m, [tenantId]);
        });
        if (attempt.messageIds.length > 0) {
          const found = await sqlRows<{ n: number }>(
            this.dataSource,
            `SELECT count(*)::int AS n FROM messages WHERE id = ANY($1::uuid[])`,
            [attempt.messageIds],
          );
          return found[0].n > 0;
        }
        if (attempt.keys.length > 0) {
          return (await this.idempotency.countCompleted(tenantId, attempt.keys)) > 0;
        }
        return false;
      } catch (e) {
        lastErr = e;
        await new Promise((r) => setTimeout(r, Math.min(RESOLVE_MAX_BACKOFF_MS, 100 * 2 ** i)));
      }
    }
    throw lastErr;
  }

  private async chargeAndInsert(m: EntityManager, tenantId: string, batch: PendingRequest[]): Promise<ItemResult[][]> {
    const now = this.clock.now();
    const tenant = await this.ledger.lockForCharging(m, tenantId, now);
    let balance = tenant.balance;
    const policy = new ChargePolicy(tenant, now);

    const results: ItemResult[][] = [];
    const rows: MessageRow[] = [];
    for (const req of batch) {
      const out: ItemResult[] = [];
      for (const item of req.items) {
        const price = messagePrice(item.segments, tenant.pricePerSegment);
        const refusal = policy.refusal(balance, price);
        if (refusal) {
          out.push({ ok: false, problem: refusal });
          continue;
        }
        balance -= price;
        const row: MessageRow = {
          id: uuidv7(),
          tenant_id: tenantId,
          msisdn: item.msisdn,
          text: item.text,
          reference: item.reference,
          status: item.sendAt ? 'scheduled' : 'queued',
          segments: item.segments,
          encoding: item.encoding,
          price,
          provider_message_id: null,
          provider_status_code: null,
          failure_reason: null,
          refunded: false,
          send_at: item.sendAt,
          created_at: now,
          submitted_at: null,
          finalized_at: null,
        };
        rows.push(row);
        out.push({ ok: true, row });
      }
      results.push(out);
    }

    if (rows.length > 0) {
      await prepared(
        m,
        `INSERT INTO messages (id, tenant_id, provider_account_id, msisdn, text, reference, status, segments, encoding, price,
                               send_at, next_attempt_at, created_at)
         SELECT u.id, $1, $2, u.msisdn, u.text, u.reference, u.status, u.segments, u.encoding, u.price,
                u.send_at, COALESCE(u.send_at, $3), $3
           FROM unnest($4::uuid[], $5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::text[], $11::bigint[], $12::timestamptz[])
             AS u(id, msisdn, text, reference, status, segments, encoding, price, send_at)`,
        [
          tenantId,
          tenant.providerAccountId,
          now,
          rows.map((r) => r.id),
          rows.map((r) => r.msisdn),
          rows.map((r) => r.text),
          rows.map((r) => r.reference),
          rows.map((r) => r.status),
          rows.map((r) => r.segments),
          rows.map((r) => r.encoding),
          rows.map((r) => Number(r.price)),
          rows.map((r) => r.send_at),
        ],
      );
      await this.ledger.debitMessages(
        m,
        tenantId,
        tenant.balance,
        rows.map((r) => ({ messageId: r.id, price: Number(r.price) })),
        now,
      );
    }

    for (let i = 0; i < batch.length; i++) {
      const idem = batch[i].idempotency;
      if (!idem) continue;
      const response = idem.respond(results[i]);
      // Throws if our claim was taken over by a retry that presumed us dead: roll back, charge nothing here.
      await this.idempotency.complete(
        m,
        { tenantId, key: idem.key, owner: idem.owner },
        response.status,
        response.body,
      );
    }
    return results;
  }
}

/** Renders an item refusal as the single-send HTTP response. */
export function problemResponse(p: Problem): { status: number; body: unknown } {
  return { status: p.status, body: problemBody(p) };
}

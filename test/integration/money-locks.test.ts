import { DataSource } from 'typeorm';
import { MessageRefundsService } from '../../src/messaging/message-refunds.service';
import { inTransaction, sqlState } from '../../src/database/transaction';
import { bearer, createTenant, startTestApp, TestApp, uuidOf } from '../support/app';

/**
 * The money path under contention (issue 7 item 1), on real PostgreSQL: transactions of one tenant
 * that insert rows referencing the tenant (FOR KEY SHARE) and then lock it must not deadlock, and
 * multi-tenant refunds lock tenants in one order whatever order their callers work in.
 */
describe('money transactions under contention', () => {
  let t: TestApp;
  let refunds: MessageRefundsService;

  beforeAll(async () => {
    t = await startTestApp({ DISPATCHER: 'false' });
    refunds = t.app.get(MessageRefundsService);
  });
  afterAll(async () => {
    await t.close();
  });

  async function balanceEqualsLedger(tenantUuid: string): Promise<number> {
    const [row] = await t.db.query(
      `SELECT t.balance, (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE tenant_id = t.id)::bigint AS s
         FROM tenants t WHERE t.id = $1`,
      [tenantUuid],
    );
    expect(row.balance).toBe(row.s);
    return Number(row.balance);
  }

  it('40 concurrent cancels of one tenant’s scheduled messages all answer 200; balance == sum(ledger)', async () => {
    const { tenantId, apiKey } = await createTenant(t, { balance: 10_000, pricePerSegment: 100 });
    const sendAt = new Date(Date.now() + 3600_000).toISOString();
    const ids: string[] = [];
    for (let i = 0; i < 40; i++) {
      const r = await t.http
        .post('/v1/messages')
        .set(bearer(apiKey))
        .send({ to: '081234567890', text: `later ${i}`, sendAt });
      expect(r.status).toBe(202);
      ids.push(r.body.id);
    }
    expect(await balanceEqualsLedger(uuidOf(tenantId))).toBe(6000);

    const responses = await Promise.all(ids.map((id) => t.http.delete(`/v1/messages/${id}`).set(bearer(apiKey))));
    expect(responses.map((r) => `${r.status} ${r.status === 200 ? '' : JSON.stringify(r.body)}`)).toEqual(
      Array(40).fill('200 '),
    );
    expect(responses.every((r) => r.body.status === 'canceled' && r.body.refunded === true)).toBe(true);
    expect(await balanceEqualsLedger(uuidOf(tenantId))).toBe(10_000);
    const [refunds] = await t.db.query(
      `SELECT count(*)::int AS n FROM ledger_entries WHERE tenant_id = $1 AND kind = 'refund'`,
      [uuidOf(tenantId)],
    );
    expect(refunds.n).toBe(40);
  });

  it('dispatcher-style and DLR-style refund transactions over 20 tenants, in opposite orders: no error, each refund once', async () => {
    const tenants: { id: string; apiKey: string }[] = [];
    for (let i = 0; i < 20; i++) {
      const c = await createTenant(t, { balance: 1000, pricePerSegment: 100 });
      tenants.push({ id: uuidOf(c.tenantId), apiKey: c.apiKey });
    }
    // Per tenant: one message failed by the "dispatcher", one by a "DLR", one both try to refund.
    const own: { dispatcher: string[]; dlr: string[]; shared: string[] } = { dispatcher: [], dlr: [], shared: [] };
    for (const tn of tenants) {
      for (const role of ['dispatcher', 'dlr', 'shared'] as const) {
        const r = await t.http.post('/v1/messages').set(bearer(tn.apiKey)).send({ to: '081234567890', text: role });
        expect(r.status).toBe(202);
        own[role].push(uuidOf(r.body.id));
      }
    }
    const tenantOf = new Map<string, string>();
    for (const role of ['dispatcher', 'dlr', 'shared'] as const)
      own[role].forEach((id, i) => tenantOf.set(id, tenants[i].id));
    // The shared ones failed already (both paths then try to refund them): a refund is only ever for a
    // failed or canceled message, and the books check (ledger:verify) runs over this database later.
    await t.db.query(`UPDATE messages SET status = 'failed', finalized_at = now() WHERE id = ANY($1::uuid[])`, [
      own.shared,
    ]);

    // Both transactions first write their status rows (message_events: FOR KEY SHARE on every tenant, in
    // their own order), wait until the other did too, then refund: the moment the old lock upgrade deadlocked.
    let arrived = 0;
    let release!: () => void;
    const bothInserted = new Promise<void>((r) => (release = r));
    const style = (db: DataSource, mine: string[], order: 'asc' | 'desc') =>
      db.transaction(async (m) => {
        const sorted = [...mine].sort((a, b) => {
          const c = tenantOf.get(a)!.localeCompare(tenantOf.get(b)!);
          return order === 'asc' ? c : -c;
        });
        for (const id of sorted) {
          await m.query(`UPDATE messages SET status = 'failed', finalized_at = now() WHERE id = $1`, [id]);
          await m.query(
            `INSERT INTO message_events (message_id, tenant_id, status, created_at) VALUES ($1, $2, 'failed', now())`,
            [id, tenantOf.get(id)],
          );
        }
        if (++arrived === 2) release();
        await bothInserted;
        const sharedInOrder = [...own.shared].sort((a, b) => {
          const c = tenantOf.get(a)!.localeCompare(tenantOf.get(b)!);
          return order === 'asc' ? c : -c;
        });
        // The dispatcher's path and the delivery reports' one both refund through messaging (flip, then
        // billing credits), with the shared messages listed in opposite tenant orders: one lock order.
        const ids = [...sorted, ...sharedInOrder];
        return refunds.refund(m, ids, new Date());
      });

    const [a, b] = await Promise.allSettled([style(t.db, own.dispatcher, 'asc'), style(t.db, own.dlr, 'desc')]);
    expect([
      a.status,
      b.status,
      (a as PromiseRejectedResult).reason?.message,
      (b as PromiseRejectedResult).reason?.message,
    ]).toEqual(['fulfilled', 'fulfilled', undefined, undefined]);
    const refundedNow = [
      ...(a as PromiseFulfilledResult<string[]>).value,
      ...(b as PromiseFulfilledResult<string[]>).value,
    ];
    expect(refundedNow.length).toBe(60);
    expect(new Set(refundedNow).size).toBe(60);

    for (const tn of tenants) {
      expect(await balanceEqualsLedger(tn.id)).toBe(1000);
      const rows: { message_id: string; n: number }[] = await t.db.query(
        `SELECT message_id, count(*)::int AS n FROM ledger_entries WHERE tenant_id = $1 AND kind = 'refund' GROUP BY message_id`,
        [tn.id],
      );
      expect(rows.length).toBe(3);
      expect(rows.every((r) => r.n === 1)).toBe(true);
    }
  });

  describe('inTransaction', () => {
    /** Two transactions that lock two tenant rows in opposite orders, each waiting for the other's first lock. */
    async function crossedLocks(attempts: number) {
      const a = await createTenant(t);
      const b = await createTenant(t);
      const [ida, idb] = [uuidOf(a.tenantId), uuidOf(b.tenantId)];
      let arrived = 0;
      let release!: () => void;
      const both = new Promise<void>((r) => (release = r));
      const runs = { first: 0, second: 0 };
      const retries: string[] = [];
      const tx = (name: 'first' | 'second', x: string, y: string) =>
        inTransaction(
          t.db,
          async (m) => {
            runs[name]++;
            await m.query(`SELECT 1 FROM tenants WHERE id = $1 FOR NO KEY UPDATE`, [x]);
            if (runs[name] === 1 && ++arrived === 2) release();
            if (runs[name] === 1) await both;
            await m.query(`UPDATE tenants SET updated_at = now() WHERE id = $1`, [y]);
            return name;
          },
          { attempts, onRetry: (_n, err) => retries.push(sqlState(err)!) },
        );
      const results = await Promise.allSettled([tx('first', ida, idb), tx('second', idb, ida)]);
      return { results, runs, retries };
    }

    it('a transaction PostgreSQL aborts with a deadlock (40P01) is rerun and both commit', async () => {
      // Without retries the same schedule really deadlocks: one of the two fails with 40P01.
      const bare = await crossedLocks(1);
      expect(bare.results.filter((r) => r.status === 'rejected').map((r) => sqlState(r.reason))).toEqual(['40P01']);

      const retried = await crossedLocks(5);
      expect(retried.results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
      expect(retried.retries).toEqual(['40P01']);
      expect(retried.runs.first + retried.runs.second).toBe(3);
    });

    it('a serialization failure (40001) is rerun; other errors are not', async () => {
      const { tenantId } = await createTenant(t);
      const id = uuidOf(tenantId);
      let runs = 0;
      const retries: string[] = [];
      const value = await inTransaction(
        t.db,
        async (m) => {
          runs++;
          await m.query(`SELECT updated_at FROM tenants WHERE id = $1`, [id]); // snapshot taken
          if (runs === 1) await t.db.query(`UPDATE tenants SET updated_at = now() WHERE id = $1`, [id]);
          await m.query(`UPDATE tenants SET updated_at = now() WHERE id = $1`, [id]);
          return runs;
        },
        { isolation: 'REPEATABLE READ', onRetry: (_n, err) => retries.push(sqlState(err)!) },
      );
      expect({ value, retries }).toEqual({ value: 2, retries: ['40001'] });

      let other = 0;
      await expect(
        inTransaction(t.db, async (m) => {
          other++;
          await m.query(`SELECT 1/0`);
        }),
      ).rejects.toMatchObject({ driverError: { code: '22012' } });
      expect(other).toBe(1);
    });
  });
});

import { Client } from 'pg';
import { prepared, preparedTexts, rows } from '../../src/database/raw-rows';
import { inTransaction, sqlState } from '../../src/database/transaction';
import { startSandbox } from '../../src/sandbox';
import { Receiver, waitFor } from '../webhooks/receiver';
import { bearer, createTenantOnSandbox, startTestApp, TEST_DATABASE_URL, TestApp } from '../support/app';

/**
 * `prepared()` (named prepared statements for the hot pipeline statements) on real PostgreSQL: inside a
 * transaction it must run on that transaction's connection — a write must roll back with it, and a row
 * locked there must be its own — and it must be a prepared statement of that session, parsed once.
 */
describe('prepared()', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_POLL_MS: '20',
      DISPATCH_POLL_MS: '50',
      PROVIDER_SEND_RATE_PER_SECOND: '0',
    });
    await t.app.listen(0, '127.0.0.1');
    await t.db.query(`CREATE TABLE IF NOT EXISTS test_prepared (id int PRIMARY KEY, v text)`);
  });
  afterAll(async () => {
    await t.db.query(`DROP TABLE IF EXISTS test_prepared`);
    await t.close();
  });

  const INSERT = `INSERT INTO test_prepared (id, v) SELECT u.id, u.v FROM unnest($1::int[], $2::text[]) AS u(id, v) RETURNING id`;
  const SESSION = `SELECT pg_backend_pid() AS pid, (SELECT count(*)::int FROM pg_prepared_statements WHERE statement = $1) AS n`;

  it('runs on the transaction’s own connection: rolled back with it, and a prepared statement of that session', async () => {
    const seen: { pid: number; n: number }[] = [];
    await expect(
      inTransaction(t.db, async (m) => {
        expect(
          await prepared<{ id: number }>(m, INSERT, [
            [1, 2],
            ['a', 'b'],
          ]),
        ).toEqual([{ id: 1 }, { id: 2 }]);
        expect(await prepared(m, INSERT, [[3], ['c']])).toEqual([{ id: 3 }]);
        // Visible inside (same connection), one prepared statement however often it ran.
        expect(await rows(m, `SELECT count(*)::int AS n FROM test_prepared`)).toEqual([{ n: 3 }]);
        seen.push(...(await rows<{ pid: number; n: number }>(m, SESSION, [INSERT])));
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(seen[0].n).toBe(1);
    expect(await rows(t.db, `SELECT count(*)::int AS n FROM test_prepared`)).toEqual([{ n: 0 }]);
  });

  it('outside a transaction it commits on a pooled connection; errors keep their SQLSTATE', async () => {
    expect(await prepared(t.db, INSERT, [[10], ['x']])).toEqual([{ id: 10 }]);
    expect(await rows(t.db, `SELECT v FROM test_prepared WHERE id = 10`)).toEqual([{ v: 'x' }]);
    const err = await prepared(t.db, INSERT, [[10], ['again']]).catch((e: unknown) => e);
    expect(sqlState(err)).toBe('23505');
    // A row locked by the transaction blocks another connection's prepared write until it ends (it is
    // the transaction's lock, not some other session's).
    let released = false;
    const tx = inTransaction(t.db, async (m) => {
      await prepared(m, `SELECT id FROM test_prepared WHERE id = $1 FOR UPDATE`, [10]);
      await new Promise((r) => setTimeout(r, 300));
      released = true;
    });
    await new Promise((r) => setTimeout(r, 50));
    await prepared(t.db, `UPDATE test_prepared SET v = $2 WHERE id = $1 RETURNING id`, [10, 'after']);
    expect(released).toBe(true);
    await tx;
  });

  /** Tables that grow with traffic: a generic plan must reach their rows by an index condition. */
  const GROWING =
    /^(messages|message_events|delivery_reports|webhook_deliveries|webhook_attempts|ledger_entries|inbound_messages|idempotency_keys)(_|$)/;

  type PlanNode = {
    'Node Type': string;
    'Relation Name'?: string;
    'Index Name'?: string;
    'Index Cond'?: string;
    Plans?: PlanNode[];
  };

  /** Accesses of growing tables that are not keyed: sequential scans, or index scans without an index condition. */
  function unkeyed(node: PlanNode, out: string[] = []): string[] {
    const table = node['Relation Name'];
    if (table && GROWING.test(table)) {
      const keyed = ['Index Scan', 'Index Only Scan'].includes(node['Node Type'])
        ? !!node['Index Cond']
        : node['Node Type'] === 'Bitmap Heap Scan'
          ? (node.Plans ?? []).every((p) => !!p['Index Cond'])
          : !['Seq Scan', 'Sample Scan', 'Tid Range Scan'].includes(node['Node Type']);
      if (!keyed)
        out.push(`${node['Node Type']} on ${table}${node['Index Name'] ? ` using ${node['Index Name']}` : ''}`);
    }
    for (const child of node.Plans ?? []) unkeyed(child, out);
    return out;
  }

  it('every statement run through prepared() reaches growing tables by key, as a generic plan planned on empty tables', async () => {
    // One real send, report and webhook through the app: the pipeline's prepared statements get run.
    const sandbox = await startSandbox({ knobs: { dlrDelayMs: [5, 20], latencyMs: [0, 0] } });
    const receiver = await new Receiver().start();
    try {
      const tenant = await createTenantOnSandbox(t, sandbox, { balance: 10_000 });
      expect((await t.http.put('/v1/webhook').set(bearer(tenant.apiKey)).send({ url: receiver.url })).status).toBe(201);
      const sent = await t.http
        .post('/v1/messages')
        .set(bearer(tenant.apiKey))
        .send({ to: '081234567890', text: 'plans' });
      expect(sent.status).toBe(202);
      await waitFor(
        () => receiver.received.filter((h) => h.body.data.id === sent.body.id),
        (x) => x.some((h) => h.body.data.status === 'delivered'),
      );
    } finally {
      await receiver.stop();
      await sandbox.close();
    }
    const texts = preparedTexts().filter((x) => !x.includes('test_prepared')); // the app's, not this file's
    // The pipeline's claims, recording and inserts went through it.
    for (const part of [
      'WITH quota AS',
      'WITH ep AS',
      'INSERT INTO messages',
      'INSERT INTO delivery_reports',
      'pg_advisory_xact_lock',
    ])
      expect(texts.some((x) => x.includes(part))).toBe(true);

    // A new database: every table empty, as in a fresh install or a new month's partition.
    const name = `gerbang_plans_${process.pid}_${Date.now()}`;
    await t.db.query(`CREATE DATABASE ${name}`);
    const url = new URL(TEST_DATABASE_URL);
    url.pathname = `/${name}`;
    const c = new Client({ connectionString: url.toString() });
    try {
      const migrated = await startTestApp({
        DATABASE_URL: url.toString(),
        DISPATCHER: 'false',
        WEBHOOK_WORKER: 'false',
      });
      await migrated.close();
      await c.connect();
      await c.query(`SET plan_cache_mode = force_generic_plan`);
      const found: { text: string; unkeyed: string[] }[] = [];
      for (const [i, text] of texts.entries()) {
        await c.query(`PREPARE s${i} AS ${text}`);
        const [{ n }] = (
          await c.query<{ n: number }>(
            `SELECT cardinality(parameter_types) AS n FROM pg_prepared_statements WHERE name = $1`,
            [`s${i}`],
          )
        ).rows;
        const [explained] = (
          await c.query<{ 'QUERY PLAN': { Plan: PlanNode }[] }>(
            `EXPLAIN (FORMAT JSON) EXECUTE s${i}(${Array(n).fill('NULL').join(', ')})`,
          )
        ).rows;
        found.push({ text: text.slice(0, 80), unkeyed: unkeyed(explained['QUERY PLAN'][0].Plan) });
      }
      expect(found.filter((f) => f.unkeyed.length > 0)).toEqual([]);
    } finally {
      await c.end().catch(() => undefined);
      await t.db.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
    }
  });
});

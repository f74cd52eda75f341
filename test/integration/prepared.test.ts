import { prepared, rows } from '../../src/database/raw-rows';
import { inTransaction, sqlState } from '../../src/database/transaction';
import { startTestApp, TestApp } from '../support/app';

/**
 * `prepared()` (named prepared statements for the hot pipeline statements) on real PostgreSQL: inside a
 * transaction it must run on that transaction's connection — a write must roll back with it, and a row
 * locked there must be its own — and it must be a prepared statement of that session, parsed once.
 */
describe('prepared()', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ DISPATCHER: 'false', WEBHOOK_WORKER: 'false' });
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
});

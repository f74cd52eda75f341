import { LedgerService } from '../../src/billing/ledger.service';
import { LedgerVerifyService } from '../../src/billing/ledger-verify.service';
import { bearer, createTenant, startTestApp, TestApp, uuidOf } from '../support/app';

interface ChainRow {
  seq: string;
  kind: string;
  amount: string;
  balance_after: string;
}

/**
 * Concurrency claims of the ledger, checked in SQL against real PostgreSQL: concurrent writers on one
 * tenant serialise on the tenant row, so balance == sum(ledger), the balance never goes negative, and
 * each row's balance_after continues the previous one.
 */
describe('ledger under concurrency', () => {
  let t: TestApp;
  let ledger: LedgerService;

  beforeAll(async () => {
    t = await startTestApp();
    ledger = t.app.get(LedgerService);
  });
  afterAll(async () => {
    await t.close();
  });
  afterEach(() => t.clock.reset());

  /** The tenant's ledger in seq order, after asserting every invariant that must hold for it. */
  async function assertInvariants(tenantPublicId: string): Promise<ChainRow[]> {
    const id = uuidOf(tenantPublicId);
    const rows: ChainRow[] = await t.db.query(
      `SELECT seq, kind, amount, balance_after FROM ledger_entries WHERE tenant_id = $1 ORDER BY seq`,
      [id],
    );
    const [tenant] = await t.db.query(`SELECT balance FROM tenants WHERE id = $1`, [id]);
    const [sum] = await t.db.query(
      `SELECT coalesce(sum(amount), 0)::bigint AS s FROM ledger_entries WHERE tenant_id = $1`,
      [id],
    );
    expect(tenant.balance).toBe(sum.s);
    expect(Number(tenant.balance)).toBeGreaterThanOrEqual(0);
    let running = 0;
    for (const r of rows) {
      running += Number(r.amount);
      expect({ seq: r.seq, balanceAfter: Number(r.balance_after) }).toEqual({ seq: r.seq, balanceAfter: running });
      expect(Number(r.balance_after)).toBeGreaterThanOrEqual(0);
    }
    expect(running).toBe(Number(tenant.balance));
    // The same chain, computed by PostgreSQL itself.
    const broken = await t.db.query(
      `SELECT seq FROM (
         SELECT seq, balance_after, amount, lag(balance_after) OVER (ORDER BY seq) AS prev FROM ledger_entries WHERE tenant_id = $1
       ) c WHERE balance_after <> coalesce(prev, 0) + amount`,
      [id],
    );
    expect(broken).toEqual([]);
    return rows;
  }

  /** 25 × +100, 20 × -300 (some overdraw depending on order), 5 × -5000 (always overdraw), shuffled deterministically. */
  function mixedAmounts(): number[] {
    const amounts = [...Array(25).fill(100), ...Array(20).fill(-300), ...Array(5).fill(-5000)];
    let seed = 42;
    for (let i = amounts.length - 1; i > 0; i--) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const j = seed % (i + 1);
      [amounts[i], amounts[j]] = [amounts[j], amounts[i]];
    }
    return amounts;
  }

  it('50 concurrent adjustments through LedgerService keep balance == sum(ledger) and never overdraw', async () => {
    const { tenantId } = await createTenant(t, { balance: 1000 });
    const rowsBefore = (await assertInvariants(tenantId)).length;
    const amounts = mixedAmounts();
    const results = await Promise.allSettled(
      amounts.map((amount, i) => ledger.adjust(uuidOf(tenantId), amount, `race ${i}`, null)),
    );

    const ok = results.flatMap((r, i) => (r.status === 'fulfilled' ? [amounts[i]] : []));
    const refused = results.filter((r) => r.status === 'rejected');
    for (const r of refused) expect(r.reason).toMatchObject({ code: 'insufficient_balance' });
    expect(ok.length + refused.length).toBe(50);
    expect(refused.length).toBeGreaterThanOrEqual(5); // the -5000s can never fit: at most 1000 + 2500 is there
    expect(ok.filter((a) => a > 0)).toHaveLength(25); // credits always succeed

    const rows = await assertInvariants(tenantId);
    expect(rows.length - rowsBefore).toBe(ok.length);
    const adjustments = rows.filter((r) => r.kind === 'adjustment').map((r) => Number(r.amount));
    expect([...adjustments].sort((x, y) => x - y)).toEqual([...ok].sort((x, y) => x - y));
    expect(Number(rows[rows.length - 1].balance_after)).toBe(1000 + ok.reduce((s, a) => s + a, 0));
  });

  it('50 concurrent adjustments over HTTP: only 201 or 402, and the same invariants', async () => {
    const { tenantId, apiKey } = await createTenant(t, { balance: 1000 });
    const rowsBefore = (await assertInvariants(tenantId)).length;
    const amounts = mixedAmounts();
    const responses = await Promise.all(
      amounts.map((amount, i) =>
        t.http
          .post(`/v1/admin/tenants/${tenantId}/adjustments`)
          .set(bearer(t.adminToken))
          .send({ amount, reason: `http race ${i}` }),
      ),
    );
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s !== 201 && s !== 402)).toEqual([]);
    for (const r of responses.filter((x) => x.status === 402)) expect(r.body.code).toBe('insufficient_balance');
    const ok = responses.flatMap((r, i) => (r.status === 201 ? [amounts[i]] : []));

    const rows = await assertInvariants(tenantId);
    expect(rows.length - rowsBefore).toBe(ok.length);
    // Each 201 reported the balanceAfter of its own row: they are all distinct points of one chain.
    const reported = responses.filter((r) => r.status === 201).map((r) => r.body.entry.balanceAfter as number);
    const chain = rows.slice(rowsBefore).map((r) => Number(r.balance_after));
    expect([...reported].sort((x, y) => x - y)).toEqual([...chain].sort((x, y) => x - y));
    const balance = await t.http.get('/v1/balance').set(bearer(apiKey));
    expect(balance.body.balance).toBe(1000 + ok.reduce((s, a) => s + a, 0));
  });

  it('20 concurrent top-ups all land, in one consistent chain', async () => {
    const { tenantId, apiKey } = await createTenant(t);
    const amounts = Array.from({ length: 20 }, (_, i) => 1000 + i);
    const responses = await Promise.all(
      amounts.map((amount, i) =>
        t.http
          .post(`/v1/admin/tenants/${tenantId}/topups`)
          .set(bearer(t.adminToken))
          .send({ amount, reference: `INV-${i}` }),
      ),
    );
    expect(responses.map((r) => r.status)).toEqual(Array(20).fill(201));
    const rows = await assertInvariants(tenantId);
    expect(rows).toHaveLength(20);
    expect(rows.every((r) => r.kind === 'topup')).toBe(true);
    const total = amounts.reduce((s, a) => s + a, 0);
    expect(Number(rows[19].balance_after)).toBe(total);
    expect((await t.http.get('/v1/balance').set(bearer(apiKey))).body).toMatchObject({
      balance: total,
      state: 'active',
    });
    const [tenant] = await t.db.query(`SELECT valid_until FROM tenants WHERE id = $1`, [uuidOf(tenantId)]);
    // Validity is the latest of the twenty "now + 3 months", and never shorter than any of them.
    const validities = responses.map((r) => Date.parse(r.body.entry.validUntil));
    expect(tenant.valid_until.getTime()).toBe(Math.max(...validities));
  });

  it('concurrent top-ups and adjustments mixed with reads keep the invariants', async () => {
    const { tenantId, apiKey } = await createTenant(t, { balance: 500 });
    const ops = Array.from({ length: 40 }, (_, i) => {
      if (i % 4 === 0) return ledger.topUp(uuidOf(tenantId), 250, `mix ${i}`, null).then(() => 'ok');
      if (i % 4 === 1)
        return t.http
          .get('/v1/balance')
          .set(bearer(apiKey))
          .then((r) => (r.status === 200 ? 'read' : `read ${r.status}`));
      return ledger.adjust(uuidOf(tenantId), i % 4 === 2 ? -400 : 50, `mix ${i}`, null).then(
        () => 'ok',
        (e: { code?: string }) => e.code ?? 'error',
      );
    });
    const outcomes = await Promise.all(ops);
    expect(outcomes.filter((o) => !['ok', 'read', 'insufficient_balance'].includes(o))).toEqual([]);
    await assertInvariants(tenantId);
  });

  it('at graceUntil, 20 concurrent readers and writers forfeit the balance exactly once', async () => {
    t.clock.set(new Date('2031-01-10T03:00:00Z'));
    const { tenantId, apiKey } = await createTenant(t, { balance: 3000 });
    const [row] = await t.db.query(`SELECT grace_until FROM tenants WHERE id = $1`, [uuidOf(tenantId)]);
    t.clock.set(new Date(row.grace_until.getTime() + 1000));
    const ops = Array.from({ length: 20 }, (_, i) =>
      i % 2 === 0
        ? t.http
            .get('/v1/balance')
            .set(bearer(apiKey))
            .then((r) => r.status)
        : t.http
            .post(`/v1/admin/tenants/${tenantId}/adjustments`)
            .set(bearer(t.adminToken))
            .send({ amount: -1, reason: 'late' })
            .then((r) => r.status),
    );
    const statuses = await Promise.all(ops);
    // Reads succeed; a -1 adjustment after the forfeiture finds a zero balance.
    expect(statuses.filter((s, i) => (i % 2 === 0 ? s !== 200 : s !== 402))).toEqual([]);
    const rows = await assertInvariants(tenantId);
    expect(rows.map((r) => [r.kind, Number(r.amount)])).toEqual([
      ['topup', 3000],
      ['expiry', -3000],
    ]);
  });

  it('the whole database: every tenant’s balance equals the sum of its ledger', async () => {
    const mismatched = await t.db.query(
      `SELECT t.id, t.balance, coalesce(l.s, 0) AS ledger_sum
         FROM tenants t LEFT JOIN (SELECT tenant_id, sum(amount) AS s FROM ledger_entries GROUP BY tenant_id) l ON l.tenant_id = t.id
        WHERE t.balance <> coalesce(l.s, 0) OR t.balance < 0`,
    );
    expect(mismatched).toEqual([]);
  });

  it('the books verifier (GET /v1/admin/ledger/verify, npm run ledger:verify) finds nothing after these races', async () => {
    const verified = await t.app.get(LedgerVerifyService).verify();
    expect(verified.problems).toEqual([]);
    expect(verified.ok).toBe(true);
    const res = await t.http.get('/v1/admin/ledger/verify').set(bearer(t.adminToken));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ok: true, problems: [] });
  });

  describe('the ledger is append-only', () => {
    it('UPDATE of a ledger row raises an error and changes nothing', async () => {
      const { tenantId } = await createTenant(t, { balance: 100 });
      const id = uuidOf(tenantId);
      await expect(
        t.db.query(`UPDATE ledger_entries SET amount = 1000000, balance_after = 1000000 WHERE tenant_id = $1`, [id]),
      ).rejects.toThrow(/append-only/);
      await expect(
        t.db.query(`UPDATE ledger_entries SET reference = 'rewritten' WHERE tenant_id = $1`, [id]),
      ).rejects.toThrow(/append-only/);
      const rows = await t.db.query(`SELECT amount, reference FROM ledger_entries WHERE tenant_id = $1`, [id]);
      expect(rows).toEqual([{ amount: '100', reference: null }]);
    });

    it('DELETE of a ledger row raises an error and deletes nothing', async () => {
      const { tenantId } = await createTenant(t, { balance: 100 });
      const id = uuidOf(tenantId);
      await expect(t.db.query(`DELETE FROM ledger_entries WHERE tenant_id = $1`, [id])).rejects.toThrow(/append-only/);
      const [n] = await t.db.query(`SELECT count(*)::int AS n FROM ledger_entries WHERE tenant_id = $1`, [id]);
      expect(n.n).toBe(1);
    });

    it('the schema refuses a negative balance and a negative balance_after even from raw SQL', async () => {
      const { tenantId } = await createTenant(t, { balance: 100 });
      const id = uuidOf(tenantId);
      await expect(t.db.query(`UPDATE tenants SET balance = -1 WHERE id = $1`, [id])).rejects.toThrow(
        /check constraint/,
      );
      await expect(
        t.db.query(
          `INSERT INTO ledger_entries (id, tenant_id, kind, amount, balance_after, created_at) VALUES (gen_random_uuid(), $1, 'adjustment', -200, -100, now())`,
          [id],
        ),
      ).rejects.toThrow(/check constraint/);
      await assertInvariants(tenantId);
    });
  });
});

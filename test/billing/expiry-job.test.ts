import { BillingJobsService } from '../../src/billing/billing-jobs.service';
import { LedgerService } from '../../src/billing/ledger.service';
import { LedgerVerifyService } from '../../src/billing/ledger-verify.service';
import { ADMIN_EMAIL, ADMIN_PASSWORD, bearer, createTenant, startTestApp, TestApp, uuidOf } from '../support/app';

/**
 * The scheduled forfeiture (BillingJobsService → LedgerService.sweepExpired) run by two gateway
 * instances at once (two Nest apps, two connection pools, one database), against itself and against
 * concurrent top-ups: each due tenant is forfeited exactly once, and money topped up concurrently is
 * never forfeited.
 */
describe('expiry job', () => {
  let a: TestApp;
  let b: TestApp;

  beforeAll(async () => {
    // Two instances of one deployment share their secrets (each test app would otherwise generate its own).
    const shared = {
      JWT_SECRET: 'expiry-job-test-secret-0123456789abcdef',
      ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
    };
    a = await startTestApp(shared);
    b = await startTestApp(shared);
  });
  afterAll(async () => {
    await a.close();
    await b.close();
  });
  afterEach(() => {
    a.clock.reset();
    b.clock.reset();
  });

  /** `n` tenants topped up now; then both instances' clocks move to just after all their graces ended. */
  async function dueTenants(n: number, balance: number) {
    const tenants = [];
    for (let i = 0; i < n; i++) tenants.push(await createTenant(a, { balance }));
    const [{ min, max }] = await a.db.query(
      `SELECT min(grace_until) AS min, max(grace_until) AS max FROM tenants WHERE id = ANY($1::uuid[])`,
      [tenants.map((x) => uuidOf(x.tenantId))],
    );
    const after = new Date((max as Date).getTime() + 1000);
    a.clock.set(after);
    b.clock.set(after);
    return { tenants, lastGraceStart: min as Date };
  }

  async function ledgerOf(tenantId: string) {
    const rows: { kind: string; amount: string }[] = await a.db.query(
      `SELECT kind, amount FROM ledger_entries WHERE tenant_id = $1 ORDER BY seq`,
      [uuidOf(tenantId)],
    );
    return rows.map((r) => [r.kind, Number(r.amount)]);
  }

  it('two instances running the job together (twice each) forfeit each of 40 due tenants once', async () => {
    const { tenants } = await dueTenants(40, 700);
    const jobsA = a.app.get(BillingJobsService);
    const jobsB = b.app.get(BillingJobsService);
    const runs = await Promise.all([jobsA.runOnce(), jobsB.runOnce(), jobsA.runOnce(), jobsB.runOnce()]);
    // Every tenant forfeited by exactly one of the four runs (other suites' due tenants may add to the sum).
    expect(runs.reduce((s, r) => s + r.expired, 0)).toBeGreaterThanOrEqual(40);
    for (const x of tenants) {
      expect(await ledgerOf(x.tenantId)).toEqual([
        ['topup', 700],
        ['expiry', -700],
      ]);
    }
    const [{ n }] = await a.db.query(
      `SELECT count(*)::int AS n FROM tenants WHERE id = ANY($1::uuid[]) AND balance = 0`,
      [tenants.map((x) => uuidOf(x.tenantId))],
    );
    expect(n).toBe(40);
    // A further run finds nothing of these to do.
    await jobsA.runOnce();
    for (const x of tenants) expect(await ledgerOf(x.tenantId)).toHaveLength(2);
  });

  it('racing top-ups made in the last second of grace: the money topped up is never forfeited', async () => {
    const { tenants, lastGraceStart } = await dueTenants(30, 500);
    // Instance b's clock is still in grace for every tenant (a top-up there restores the whole balance),
    // instance a's job already sees every grace ended: the job must decide under the tenant's lock.
    b.clock.set(new Date(lastGraceStart.getTime() - 1000));
    const jobsA = a.app.get(BillingJobsService);
    const jobsB = b.app.get(BillingJobsService);
    const topped = tenants.filter((_, i) => i % 2 === 0);
    // An admin token issued at the moved clock (the one from start-up has expired by then).
    const login = await b.http.post('/v1/auth/login').send({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD });
    expect(login.status).toBe(200);
    const topUp = (x: (typeof tenants)[number]) =>
      b.http
        .post(`/v1/admin/tenants/${x.tenantId}/topups`)
        .set(bearer(login.body.accessToken))
        .send({ amount: 900 })
        .then((r) => r.status);
    // Both instances' jobs, and for every topped-up tenant its top-up racing the job's step for that tenant
    // (LedgerService.expireIfDue: the sweep's candidate list was read before the top-up committed).
    const ledgerA = a.app.get(LedgerService);
    const [statuses] = await Promise.all([
      Promise.all(topped.map(topUp)),
      Promise.all(topped.map((x) => ledgerA.expireIfDue(uuidOf(x.tenantId)))),
      jobsA.runOnce(),
      jobsB.runOnce(),
    ]);
    expect(statuses.every((s) => s === 201)).toBe(true);

    for (const x of tenants) {
      const ledger = await ledgerOf(x.tenantId);
      const balance = await a.http.get('/v1/balance').set(bearer(x.apiKey));
      if (topped.includes(x)) {
        // Either the job locked first (the period's 500 forfeited, then 900 credited) or the top-up did
        // (1,400 kept with the new validity, nothing due any more). Never the 900 forfeited.
        const jobFirst = [
          ['topup', 500],
          ['expiry', -500],
          ['topup', 900],
        ];
        const topUpFirst = [
          ['topup', 500],
          ['topup', 900],
        ];
        expect([jobFirst, topUpFirst]).toContainEqual(ledger);
        expect(balance.body).toMatchObject({ balance: ledger.length === 3 ? 900 : 1400, state: 'active' });
      } else {
        expect(ledger).toEqual([
          ['topup', 500],
          ['expiry', -500],
        ]);
        expect(balance.body).toMatchObject({ balance: 0, state: 'expired' });
      }
    }
    const before = await Promise.all(tenants.map((x) => ledgerOf(x.tenantId)));
    await jobsA.runOnce();
    expect(await Promise.all(tenants.map((x) => ledgerOf(x.tenantId)))).toEqual(before);
    const verified = await a.app.get(LedgerVerifyService).verify();
    expect(verified.problems).toEqual([]);
  });
});

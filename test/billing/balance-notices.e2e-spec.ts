import { BillingJobsService } from '../../src/billing/billing-jobs.service';
import { startSandbox, SandboxHandle } from '../../src/sandbox';
import { bearer, createTenant, startTestApp, TestApp } from '../support/app';
import { waitFor } from '../support/wait';
import { Receiver } from '../webhooks/receiver';

const DAY = 86_400_000;

/**
 * balance.low and balance.expiring (API.md "Webhook events"): recorded by billing in the transaction that
 * changes the balance (low) or by the scheduled notice job (expiring), delivered to a real receiver.
 */
describe('balance notices', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;
  let receiver: Receiver;
  let admin: Record<string, string>;

  beforeAll(async () => {
    sandbox = await startSandbox({ knobs: { latencyMs: [0, 0] } });
    receiver = await new Receiver().start();
    t = await startTestApp({ WEBHOOK_ALLOW_PRIVATE: 'true', WEBHOOK_POLL_MS: '20' });
    admin = bearer(t.adminToken);
  });
  afterAll(async () => {
    await t.close();
    await sandbox.close();
    await receiver.stop();
  });
  afterEach(() => t.clock.reset());

  /** A tenant with a sandbox account, a webhook endpoint at the receiver, and its secret. */
  async function tenantWithHook(opts: { balance: number; lowBalanceThreshold?: number }) {
    const tenant = await createTenant(t, { baseUrl: sandbox.url, balance: opts.balance, pricePerSegment: 100 });
    sandbox.addAccount({
      username: tenant.providerAccount.username,
      password: 'provider-secret-pw',
      balance: '100000',
    });
    if (opts.lowBalanceThreshold !== undefined) {
      const patch = await t.http
        .patch(`/v1/admin/tenants/${tenant.tenantId}`)
        .set(admin)
        .send({ lowBalanceThreshold: opts.lowBalanceThreshold });
      expect(patch.status).toBe(200);
    }
    const put = await t.http.put('/v1/webhook').set(bearer(tenant.apiKey)).send({ url: receiver.url });
    expect(put.status).toBe(201);
    return { ...tenant, secret: put.body.secret as string };
  }
  /** Deliveries recorded for the tenant (the queue is the record; the receiver sees them shortly after). */
  async function deliveries(apiKey: string, type: string) {
    const res = await t.http.get('/v1/webhook/deliveries').query({ type, limit: 500 }).set(bearer(apiKey));
    expect(res.status).toBe(200);
    return res.body.data as { id: string; payload: { id: string; type: string; data: Record<string, unknown> } }[];
  }
  const send = (apiKey: string) =>
    t.http.post('/v1/messages').set(bearer(apiKey)).send({ to: '081234567890', text: 'hello' });
  const topUp = (tenantId: string, amount: number) =>
    t.http.post(`/v1/admin/tenants/${tenantId}/topups`).set(admin).send({ amount });

  it('balance.low once per crossing below the threshold, again only after the balance went back above it', async () => {
    const tenant = await tenantWithHook({ balance: 1_000, lowBalanceThreshold: 500 });
    // 1,000 → 900 … 600: above the threshold, no notice.
    for (let i = 0; i < 4; i++) expect((await send(tenant.apiKey)).status).toBe(202);
    expect(await deliveries(tenant.apiKey, 'balance.low')).toHaveLength(0);
    // 600 → 500 → 400: 500 is not below 500; 400 is. One notice, in the debit's transaction.
    expect((await send(tenant.apiKey)).status).toBe(202);
    expect(await deliveries(tenant.apiKey, 'balance.low')).toHaveLength(0);
    expect((await send(tenant.apiKey)).status).toBe(202);
    const first = await deliveries(tenant.apiKey, 'balance.low');
    expect(first).toHaveLength(1);
    expect(first[0].payload.data).toEqual({ balance: 400, threshold: 500 });

    // Further debits (and an adjustment) below the threshold: no further notice.
    expect((await send(tenant.apiKey)).status).toBe(202);
    const adj = await t.http
      .post(`/v1/admin/tenants/${tenant.tenantId}/adjustments`)
      .set(admin)
      .send({ amount: -50, reason: 'fee' });
    expect(adj.status).toBe(201);
    expect(await deliveries(tenant.apiKey, 'balance.low')).toHaveLength(1);

    // Topped up above the threshold (250 + 1,000), then below again: a second notice.
    expect((await topUp(tenant.tenantId, 1_000)).status).toBe(201);
    expect(await deliveries(tenant.apiKey, 'balance.low')).toHaveLength(1);
    for (let i = 0; i < 8; i++) expect((await send(tenant.apiKey)).status).toBe(202); // 1,250 → 450
    const second = await deliveries(tenant.apiKey, 'balance.low');
    expect(second).toHaveLength(2);
    expect(second.map((d) => d.payload.data)).toEqual([
      { balance: 450, threshold: 500 },
      { balance: 400, threshold: 500 },
    ]);

    // Both reach the tenant's receiver, signed.
    const ids = new Set(second.map((d) => d.payload.id));
    const hooks = await waitFor(
      'two balance.low at the receiver',
      () => receiver.received.filter((h) => h.body.type === 'balance.low' && ids.has(h.body.id)),
      (x) => x.length >= 2,
    );
    for (const h of hooks) expect(Receiver.verify(h, tenant.secret)).toMatchObject({ type: 'balance.low' });
  });

  it('a tenant without a threshold (0) never gets balance.low', async () => {
    const tenant = await tenantWithHook({ balance: 200 });
    expect((await send(tenant.apiKey)).status).toBe(202);
    expect((await send(tenant.apiKey)).status).toBe(202);
    expect(await deliveries(tenant.apiKey, 'balance.low')).toHaveLength(0);
  });

  it('balance.expiring 7 days and 1 day before validUntil, once each per validity period, even with jobs racing', async () => {
    const jobs = t.app.get(BillingJobsService);
    t.clock.set(new Date('2033-01-10T05:00:00Z'));
    const tenant = await tenantWithHook({ balance: 5_000 });
    const balance = await t.http.get('/v1/balance').set(bearer(tenant.apiKey));
    const validUntil = new Date(balance.body.validUntil as string);
    const graceUntil = balance.body.graceUntil as string;
    const expiring = () => deliveries(tenant.apiKey, 'balance.expiring');
    const at = (ms: number) => t.clock.set(new Date(validUntil.getTime() - ms));
    /** Two gateway processes' jobs at the same moment. */
    const race = () => Promise.all([jobs.runOnce(), jobs.runOnce(), jobs.runOnce()]);

    at(7 * DAY + 60_000);
    await race();
    expect(await expiring()).toHaveLength(0);

    at(7 * DAY);
    await race();
    await race();
    const first = await expiring();
    expect(first).toHaveLength(1);
    expect(first[0].payload.data).toEqual({ balance: 5_000, validUntil: validUntil.toISOString(), graceUntil });

    at(3 * DAY);
    await race();
    expect(await expiring()).toHaveLength(1);

    at(DAY - 1000);
    await race();
    at(3600_000);
    await race();
    const both = await expiring();
    expect(both).toHaveLength(2);
    expect(new Set(both.map((d) => d.payload.id)).size).toBe(2);

    // At validUntil the balance is in grace: no more notices of this period.
    t.clock.set(validUntil);
    await race();
    expect(await expiring()).toHaveLength(2);

    // Both reach the receiver, signed.
    const ids = new Set(both.map((d) => d.payload.id));
    const hooks = await waitFor(
      'two balance.expiring at the receiver',
      () => receiver.received.filter((h) => h.body.type === 'balance.expiring' && ids.has(h.body.id)),
      (x) => x.length >= 2,
    );
    for (const h of hooks) expect(Receiver.verify(h, tenant.secret)).toMatchObject({ type: 'balance.expiring' });
  });

  it('a top-up starts a new validity period with its own two notices; a tenant with nothing left gets none', async () => {
    const jobs = t.app.get(BillingJobsService);
    t.clock.set(new Date('2034-03-01T05:00:00Z'));
    const tenant = await tenantWithHook({ balance: 1_000 });
    const empty = await tenantWithHook({ balance: 100 });
    expect((await send(empty.apiKey)).status).toBe(202); // 100 → 0
    const firstValidity = new Date((await t.http.get('/v1/balance').set(bearer(tenant.apiKey))).body.validUntil);

    t.clock.set(new Date(firstValidity.getTime() - 2 * DAY));
    await jobs.runOnce();
    expect(await deliveries(tenant.apiKey, 'balance.expiring')).toHaveLength(1);
    expect(await deliveries(empty.apiKey, 'balance.expiring')).toHaveLength(0);

    expect((await topUp(tenant.tenantId, 500)).status).toBe(201); // validity: now + 3 months
    const secondValidity = new Date((await t.http.get('/v1/balance').set(bearer(tenant.apiKey))).body.validUntil);
    expect(secondValidity.getTime()).toBeGreaterThan(firstValidity.getTime());
    await jobs.runOnce();
    expect(await deliveries(tenant.apiKey, 'balance.expiring')).toHaveLength(1);

    t.clock.set(new Date(secondValidity.getTime() - 7 * DAY));
    await jobs.runOnce();
    t.clock.set(new Date(secondValidity.getTime() - DAY));
    await jobs.runOnce();
    const all = await deliveries(tenant.apiKey, 'balance.expiring');
    expect(all).toHaveLength(3);
    expect(all.map((d) => d.payload.data.validUntil)).toEqual([
      secondValidity.toISOString(),
      secondValidity.toISOString(),
      firstValidity.toISOString(),
    ]);
    expect(await deliveries(empty.apiKey, 'balance.expiring')).toHaveLength(0);
  });
});

import { startSandbox, SandboxHandle } from '../../src/sandbox';
import { bearer, createTenant, startTestApp, TestApp } from '../support/app';
import { waitFor } from '../support/wait';
import { Receiver } from '../webhooks/receiver';

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
});

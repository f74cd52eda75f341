import { LookupAddress } from 'node:dns';
import { WebhookResolver } from '../../src/webhooks/url-guard';
import { WebhooksService } from '../../src/webhooks/webhooks.service';
import { bearer, createTenant, expectProblem, startTestApp, TestApp, uuidOf } from '../support/app';
import { Receiver, waitFor } from './receiver';

/** The SSRF guard with WEBHOOK_ALLOW_PRIVATE unset (false): at registration and at connection time. */
describe('webhook URLs and SSRF', () => {
  let t: TestApp;
  let receiver: Receiver;
  let resolver: WebhookResolver;
  /** The test's DNS: hostname → answers; other names go to the real resolver. */
  const dns = new Map<string, LookupAddress[]>();

  beforeAll(async () => {
    t = await startTestApp({ WEBHOOK_POLL_MS: '20' });
    receiver = await new Receiver().start();
    resolver = t.app.get(WebhookResolver);
    const real = resolver.lookup.bind(resolver);
    // DNS is the one outside dependency replaced here (a test cannot own a public zone); the
    // guard, the sender and the sockets are the real ones.
    resolver.lookup = async (hostname: string) => dns.get(hostname) ?? real(hostname);
  });
  afterAll(async () => {
    await t.close();
    await receiver.stop();
  });

  it.each([
    ['cloud metadata', 'http://169.254.169.254/latest/meta-data/'],
    ['a private address', 'http://10.0.0.1/hook'],
    ['IPv6 loopback', 'http://[::1]:8080/hook'],
    ['IPv4-mapped IPv6 loopback', 'http://[::ffff:127.0.0.1]/hook'],
    ['loopback', 'https://127.0.0.1/hook'],
    ['loopback written as one number', 'http://2130706433/hook'],
    ['loopback written in hex', 'http://0x7f.0.0.1/hook'],
    ['broadcast', 'http://255.255.255.255/'],
    ['IPv6 link-local', 'http://[fe80::1]/'],
    ['IPv6 unique local', 'http://[fd00::1]/'],
    ['CGNAT', 'http://100.64.1.2/'],
    ['the unspecified address', 'http://0.0.0.0:80/'],
    ['a name that resolves to loopback', 'http://localhost:4000/hook'],
    ['not http(s)', 'file:///etc/passwd'],
    ['credentials in the URL', 'https://user:pw@example.com/hook'],
  ])('refuses %s at registration (400 validation_failed on url)', async (_what, url) => {
    const tenant = await createTenant(t);
    const res = await t.http.put('/v1/webhook').set(bearer(tenant.apiKey)).send({ url });
    expectProblem(res, 400, 'validation_failed');
    expect(res.body.errors).toEqual([expect.objectContaining({ field: 'url' })]);
    expect(await t.db.query(`SELECT 1 FROM webhook_endpoints WHERE tenant_id = $1`, [uuidOf(tenant.tenantId)])).toEqual(
      [],
    );
  });

  it('refuses a name with any private answer among its addresses', async () => {
    dns.set('mixed.hooks.test', [
      { address: '93.184.216.34', family: 4 },
      { address: '10.1.2.3', family: 4 },
    ]);
    const tenant = await createTenant(t);
    const res = await t.http.put('/v1/webhook').set(bearer(tenant.apiKey)).send({ url: 'https://mixed.hooks.test/' });
    expectProblem(res, 400, 'validation_failed');
    expect(res.body.detail).toContain('10.1.2.3');
  });

  it('checks again at connection time: a DNS answer that changes to loopback after registration is never connected to', async () => {
    const host = 'rebind.hooks.test';
    dns.set(host, [{ address: '93.184.216.34', family: 4 }]); // public at registration
    const tenant = await createTenant(t);
    const put = await t.http
      .put('/v1/webhook')
      .set(bearer(tenant.apiKey))
      .send({ url: `http://${host}:${receiver.port}/hooks` });
    expect(put.status).toBe(201);

    dns.set(host, [{ address: '127.0.0.1', family: 4 }]); // now points at our receiver on loopback
    const webhooks = t.app.get(WebhooksService);
    await t.db.transaction((m) =>
      webhooks.enqueue(m, [{ tenantId: uuidOf(tenant.tenantId), type: 'balance.low', data: { balance: 1 } }]),
    );
    const res = await waitFor(
      () => t.http.get('/v1/webhook/deliveries').set(bearer(tenant.apiKey)),
      (r) => r.body.data?.[0]?.attempts?.length === 1,
    );
    expect(res.body.data[0]).toMatchObject({ status: 'pending', attempts: [{ outcome: 'blocked', statusCode: null }] });
    expect(res.body.data[0].attempts[0].error).toContain('127.0.0.1');
    expect(receiver.received).toHaveLength(0);
  });

  it('accepts a public address', async () => {
    dns.set('public.hooks.test', [{ address: '2606:4700::1111', family: 6 }]);
    const tenant = await createTenant(t);
    const res = await t.http.put('/v1/webhook').set(bearer(tenant.apiKey)).send({ url: 'https://public.hooks.test/x' });
    expect(res.status).toBe(201);
  });
});

import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { bearer, createTenant, startTestApp, TestApp } from '../support/app';
import { waitFor } from '../support/wait';

/**
 * Provider answers whose text PostgreSQL cannot store (a NUL byte: a PHP page, a binary error body) against the
 * real app and real PostgreSQL: the outcome they carry is recorded all the same. A real HTTP server stands in for
 * the provider and answers every script with `body`.
 */
describe('provider bodies holding a NUL byte', () => {
  let t: TestApp;
  let provider: Server;
  let body = '';

  beforeAll(async () => {
    provider = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/html; charset=UTF-8' });
        res.end(body);
      });
    });
    await new Promise<void>((resolve) => provider.listen(0, '127.0.0.1', resolve));
    t = await startTestApp({ DISPATCH_POLL_MS: '50', PROVIDER_SEND_RATE_PER_SECOND: '0' });
  });
  afterAll(async () => {
    await t.close();
    await new Promise((resolve) => provider.close(resolve));
  });

  const baseUrl = () => `http://127.0.0.1:${(provider.address() as AddressInfo).port}/masking`;

  it('a send rejected with a NUL in its body fails and is refunded (not left to the lease janitor)', async () => {
    body = 'Saldo\u0000 tidak cukup';
    const { apiKey } = await createTenant(t, { balance: 1000, pricePerSegment: 100, baseUrl: baseUrl() });
    const auth = bearer(apiKey);
    const sent = await t.http.post('/v1/messages').set(auth).send({ to: '6281234567890', text: 'Halo' });
    expect(sent.status).toBe(202);
    const done = await waitFor(
      'the rejected message to be final',
      () =>
        t.http
          .get(`/v1/messages/${sent.body.id}`)
          .set(auth)
          .then((r) => r.body as { status: string }),
      (b) => b.status !== 'queued' && b.status !== 'submitting',
      15_000,
    );
    expect(done).toMatchObject({ status: 'failed', refunded: true });
    expect((await t.http.get('/v1/balance').set(auth)).body.balance).toBe(1000);
  });

  it('a balance page with a NUL is a readable error to the admin, recorded in the history, not a 500', async () => {
    body = '<b>Warning</b>: \u0000 mysqli_connect() failed';
    const { providerAccountId } = await createTenant(t, { baseUrl: baseUrl() });
    const res = await t.http.get(`/v1/admin/provider-accounts/${providerAccountId}/balance`).set(bearer(t.adminToken));
    expect({ status: res.status, live: res.body.live }).toEqual({ status: 200, live: null });
    expect(res.body.error).toContain('mysqli_connect() failed');
    expect(res.body.error).not.toContain('\u0000');
  });
});

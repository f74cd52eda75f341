import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import * as net from 'node:net';
import { WebhookVerificationError } from 'standardwebhooks';
import { WebhooksService } from '../../src/webhooks/webhooks.service';
import { WebhookWorkerService } from '../../src/webhooks/webhook-worker.service';
import { WebhookEvent } from '../../src/webhooks/webhook-events';
import { bearer, createTenant, expectProblem, startTestApp, TestApp, uuidOf } from '../support/app';
import { Receiver, waitFor } from './receiver';

/**
 * Tenant webhooks end to end: real PostgreSQL, the real app and real HTTP receivers on 127.0.0.1
 * (WEBHOOK_ALLOW_PRIVATE=true). Retries are driven by moving the app's Clock, not by sleeping.
 */
describe('tenant webhooks', () => {
  let t: TestApp;
  const receivers: Receiver[] = [];

  beforeAll(async () => {
    t = await startTestApp({
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_POLL_MS: '20',
      WEBHOOK_TIMEOUT_MS: '2000',
      WEBHOOK_ENDPOINT_CONCURRENCY: '16', // small enough for the hanging-endpoint test to fill (default 64)
    });
  });
  afterAll(async () => {
    await t.close();
    for (const r of receivers) await r.stop().catch(() => undefined);
  });

  async function receiver(): Promise<Receiver> {
    const r = await new Receiver().start();
    receivers.push(r);
    return r;
  }

  async function tenantWithWebhook(url: string) {
    const tenant = await createTenant(t);
    const put = await t.http.put('/v1/webhook').set(bearer(tenant.apiKey)).send({ url });
    expect(put.status).toBe(201);
    return { ...tenant, secret: put.body.secret as string, uuid: uuidOf(tenant.tenantId) };
  }

  /** Queues events the way another module does: inside its own transaction. */
  async function enqueue(events: WebhookEvent[]): Promise<number> {
    const webhooks = t.app.get(WebhooksService);
    return t.db.transaction((m) => webhooks.enqueue(m, events));
  }
  const lowBalance = (tenantUuid: string, balance = 10): WebhookEvent => ({
    tenantId: tenantUuid,
    type: 'balance.low',
    data: { balance, threshold: 100 },
  });

  async function deliveries(apiKey: string, query = '') {
    const res = await t.http.get(`/v1/webhook/deliveries${query}`).set(bearer(apiKey));
    expect(res.status).toBe(200);
    return res.body.data as {
      id: string;
      status: string;
      attempts: { outcome: string; statusCode: number | null; responseExcerpt: string | null; durationMs: number }[];
      nextAttemptAt: string | null;
      lastError: string | null;
      payload: { data: { balance?: number } };
    }[];
  }

  it('every webhook route needs a tenant API key and is in the OpenAPI document', async () => {
    const routes: [string, string][] = [
      ['put', '/v1/webhook'],
      ['get', '/v1/webhook'],
      ['delete', '/v1/webhook'],
      ['post', '/v1/webhook/rotate-secret'],
      ['get', '/v1/webhook/deliveries'],
      ['post', '/v1/webhook/deliveries/whd_00000000000000000000000000000000/retry'],
    ];
    for (const [method, path] of routes) {
      const req = (t.http as unknown as Record<string, (p: string) => import('supertest').Test>)[method](path);
      expectProblem(await req, 401, 'unauthorized');
      const asAdmin = (t.http as unknown as Record<string, (p: string) => import('supertest').Test>)[method](path);
      expect((await asAdmin.set(bearer(t.adminToken))).status).toBe(401);
    }
    const doc = (await t.http.get('/docs-json')).body;
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining([
        '/v1/webhook',
        '/v1/webhook/rotate-secret',
        '/v1/webhook/deliveries',
        '/v1/webhook/deliveries/{id}/retry',
      ]),
    );
    expect(Object.keys(doc.paths['/v1/webhook'])).toEqual(expect.arrayContaining(['put', 'get', 'delete']));
  });

  it('registers, reads, updates and deletes the endpoint; the secret is shown on creation and rotation only', async () => {
    const tenant = await createTenant(t);
    const auth = bearer(tenant.apiKey);
    expectProblem(await t.http.get('/v1/webhook').set(auth), 404, 'not_found');
    expectProblem(await t.http.post('/v1/webhook/rotate-secret').set(auth), 404, 'not_found');

    const created = await t.http.put('/v1/webhook').set(auth).send({ url: 'http://127.0.0.1:9/a' });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ url: 'http://127.0.0.1:9/a', enabled: true, events: expect.any(Array) });
    expect(created.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const stored = await t.db.query(`SELECT secret_enc FROM webhook_endpoints WHERE tenant_id = $1`, [
      uuidOf(tenant.tenantId),
    ]);
    expect(stored[0].secret_enc).not.toContain(created.body.secret.slice(6)); // encrypted at rest

    const read = await t.http.get('/v1/webhook').set(auth);
    expect(read.status).toBe(200);
    expect(read.body).not.toHaveProperty('secret');

    const updated = await t.http
      .put('/v1/webhook')
      .set(auth)
      .send({ url: 'https://127.0.0.1:9/b', events: ['message.status'] });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ url: 'https://127.0.0.1:9/b', events: ['message.status'] });
    expect(updated.body).not.toHaveProperty('secret');

    const rotated = await t.http.post('/v1/webhook/rotate-secret').set(auth);
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).toMatch(/^whsec_/);
    expect(rotated.body.secret).not.toBe(created.body.secret);
    expect(new Date(rotated.body.previousSecretExpiresAt).getTime() - t.clock.now().getTime()).toBeGreaterThan(
      23.9 * 3600_000,
    );

    expectProblem(
      await t.http.put('/v1/webhook').set(auth).send({ url: 'ftp://example.com/x' }),
      400,
      'validation_failed',
    );
    expectProblem(
      await t.http
        .put('/v1/webhook')
        .set(auth)
        .send({ url: 'https://e.com', events: ['nope'] }),
      400,
      'validation_failed',
    );

    expect((await t.http.delete('/v1/webhook').set(auth)).status).toBe(204);
    expectProblem(await t.http.get('/v1/webhook').set(auth), 404, 'not_found');
    expectProblem(await t.http.delete('/v1/webhook').set(auth), 404, 'not_found');
  });

  it('a URL the guard accepts in another spelling (upper-case scheme, no slashes, surrounding spaces) is stored as the URL it is sent to, not a 500', async () => {
    const r = await receiver();
    const spellings: [string, string][] = [
      [r.url.replace('http://', 'HTTP://'), r.url],
      [r.url.replace('http://', 'http:'), r.url],
      [`  ${r.url}\n`, r.url],
    ];
    for (const [given, stored] of spellings) {
      const tenant = await createTenant(t);
      const put = await t.http.put('/v1/webhook').set(bearer(tenant.apiKey)).send({ url: given });
      expect({ given, status: put.status, url: put.body.url }).toEqual({ given, status: 201, url: stored });
      const got = await t.http.get('/v1/webhook').set(bearer(tenant.apiKey));
      expect(got.body.url).toBe(stored);
    }
    // and it is delivered there
    const tenant = await createTenant(t);
    expect((await t.http.put('/v1/webhook').set(bearer(tenant.apiKey)).send({ url: spellings[0][0] })).status).toBe(
      201,
    );
    await enqueue([lowBalance(uuidOf(tenant.tenantId), 5)]);
    await waitFor(
      () => r.received,
      (x) => x.length === 1,
    );
  });

  it('delivers a signed event the receiver verifies with the standardwebhooks package; no endpoint, no delivery', async () => {
    const r = await receiver();
    const a = await tenantWithWebhook(r.url);
    const none = await createTenant(t);
    expect(await enqueue([lowBalance(a.uuid), lowBalance(uuidOf(none.tenantId))])).toBe(1);

    const [hook] = await waitFor(
      () => r.received,
      (x) => x.length === 1,
    );
    expect(Receiver.verify(hook, a.secret)).toMatchObject({
      type: 'balance.low',
      data: { balance: 10, threshold: 100 },
    });
    expect(hook.body.id).toMatch(/^evt_[0-9a-f]{32}$/);
    expect(hook.headers['webhook-id']).toBe(hook.body.id);
    expect(hook.headers['webhook-signature']).toMatch(/^v1,[A-Za-z0-9+/]+=*$/);
    expect(() => Receiver.verify(hook, `whsec_${Buffer.alloc(32, 1).toString('base64')}`)).toThrow(
      WebhookVerificationError,
    );
    // the body was not changed in flight: one flipped byte fails verification
    const tampered = hook.raw.replace(/"balance": ?10/, '"balance": 11');
    expect(tampered).not.toBe(hook.raw);
    expect(() => Receiver.verify({ ...hook, raw: tampered }, a.secret)).toThrow(WebhookVerificationError);

    const list = await waitFor(
      () => deliveries(a.apiKey),
      (d) => d[0]?.status === 'succeeded',
    );
    expect(list).toHaveLength(1);
    expect(list[0].attempts).toEqual([
      expect.objectContaining({ outcome: 'delivered', statusCode: 200, responseExcerpt: 'ok' }),
    ]);
    expect(await deliveries(none.apiKey)).toEqual([]);
  });

  it("enqueue joins the caller's transaction (rolled back: nothing) and dedupes by event id", async () => {
    const r = await receiver();
    const a = await tenantWithWebhook(r.url);
    const webhooks = t.app.get(WebhooksService);
    await expect(
      t.db.transaction(async (m) => {
        expect(await webhooks.enqueue(m, [lowBalance(a.uuid, 1)])).toBe(1);
        throw new Error('the caller fails after enqueueing');
      }),
    ).rejects.toThrow('the caller fails');
    const eventId = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
    expect(await enqueue([{ ...lowBalance(a.uuid, 2), eventId }])).toBe(1);
    expect(await enqueue([{ ...lowBalance(a.uuid, 2), eventId }])).toBe(0);
    await waitFor(
      () => deliveries(a.apiKey),
      (d) => d.length === 1 && d[0].status === 'succeeded',
    );
    await new Promise((res) => setTimeout(res, 100));
    expect(r.received.map((h) => h.body.data)).toEqual([{ balance: 2, threshold: 100 }]);
    expect(r.received[0].body.id).toBe('evt_0190a1b2c3d47e5f8a9b0c1d2e3f4a5b');
    await expect(
      t.db.transaction((m) => webhooks.enqueue(m, [{ ...lowBalance(a.uuid), tenantId: '' }])),
    ).rejects.toThrow('TenantScope');
  });

  it('signs with both secrets for 24 h after a rotation, then with the new one only', async () => {
    const r = await receiver();
    const a = await tenantWithWebhook(r.url);
    const rotated = await t.http.post('/v1/webhook/rotate-secret').set(bearer(a.apiKey));
    const newSecret = rotated.body.secret as string;

    await enqueue([lowBalance(a.uuid, 1)]);
    const [during] = await waitFor(
      () => r.received,
      (x) => x.length === 1,
    );
    expect(String(during.headers['webhook-signature']).split(' ')).toHaveLength(2);
    expect(Receiver.verify(during, a.secret)).toBeTruthy(); // a receiver not yet switched
    expect(Receiver.verify(during, newSecret)).toBeTruthy(); // a receiver already switched

    t.clock.advance(24 * 3600_000 + 60_000);
    try {
      await enqueue([lowBalance(a.uuid, 2)]);
      const after = (
        await waitFor(
          () => r.received,
          (x) => x.length === 2,
        )
      )[1];
      expect(String(after.headers['webhook-signature']).split(' ')).toHaveLength(1);
      expect(Receiver.verify(after, newSecret)).toBeTruthy();
      expect(() => Receiver.verify(after, a.secret)).toThrow(WebhookVerificationError);
    } finally {
      t.clock.reset();
    }
  });

  it('shows previousSecretExpiresAt during the rotation overlap only: null once it has passed', async () => {
    const r = await receiver();
    const a = await tenantWithWebhook(r.url);
    const rotated = await t.http.post('/v1/webhook/rotate-secret').set(bearer(a.apiKey));
    const until = rotated.body.previousSecretExpiresAt as string;
    expect(new Date(until).getTime() - t.clock.now().getTime()).toBeGreaterThan(23 * 3600_000);
    expect((await t.http.get('/v1/webhook').set(bearer(a.apiKey))).body.previousSecretExpiresAt).toBe(until);

    t.clock.advance(24 * 3600_000 + 60_000);
    try {
      expect((await t.http.get('/v1/webhook').set(bearer(a.apiKey))).body).toMatchObject({
        previousSecretExpiresAt: null,
        secretRotatedAt: rotated.body.secretRotatedAt,
      });
      const put = await t.http.put('/v1/webhook').set(bearer(a.apiKey)).send({ url: r.url });
      expect(put.body.previousSecretExpiresAt).toBeNull();
    } finally {
      t.clock.reset();
    }
  });

  it('retries a receiver that is down (connection refused, then 503) until it is up, logging every attempt', async () => {
    const r = await receiver();
    const a = await tenantWithWebhook(r.url);
    const port = r.port;
    await r.stop(); // down: nothing listens
    const warn = jest.spyOn(Logger.prototype, 'warn');
    try {
      await enqueue([lowBalance(a.uuid)]);
      let list = await waitFor(
        () => deliveries(a.apiKey),
        (d) => d[0]?.attempts.length === 1,
      );
      expect(list[0]).toMatchObject({ status: 'pending', attempts: [{ outcome: 'unreachable', statusCode: null }] });
      const wait1 = new Date(list[0].nextAttemptAt!).getTime() - t.clock.now().getTime();
      expect(wait1).toBeGreaterThan(4_000); // about 5 s (±10 %)
      expect(wait1).toBeLessThanOrEqual(5_500);

      await r.start(port); // up, but answering 503 for now
      r.answer = () => ({ status: 503, body: 'down for maintenance ' + 'x'.repeat(3000) });
      t.clock.advance(6_000);
      list = await waitFor(
        () => deliveries(a.apiKey),
        (d) => d[0]?.attempts.length === 2,
      );
      expect(list[0].attempts[1]).toMatchObject({ outcome: 'rejected', statusCode: 503 });
      expect(list[0].attempts[1].responseExcerpt!.startsWith('down for maintenance')).toBe(true);
      expect(Buffer.byteLength(list[0].attempts[1].responseExcerpt!)).toBe(1024); // capped
      const wait2 = new Date(list[0].nextAttemptAt!).getTime() - t.clock.now().getTime();
      expect(wait2).toBeGreaterThan(4.4 * 60_000); // about 5 min

      // Not due yet: nothing happens before the next attempt time.
      t.clock.advance(60_000);
      await new Promise((res) => setTimeout(res, 200));
      expect(r.received).toHaveLength(1);

      r.answer = () => ({ status: 204 });
      t.clock.advance(5 * 60_000);
      list = await waitFor(
        () => deliveries(a.apiKey),
        (d) => d[0]?.status === 'succeeded',
      );
      expect(list[0].attempts.map((x) => x.outcome)).toEqual(['unreachable', 'rejected', 'delivered']);
      expect(list[0].nextAttemptAt).toBeNull();
      // Each failed attempt is also in the log (tenant, delivery, attempt, outcome), without the URL.
      const logged = warn.mock.calls
        .map(([fields]) => fields as Record<string, unknown>)
        .filter((f) => f?.delivery === uuidOf(list[0].id));
      expect(logged).toEqual([
        expect.objectContaining({ attempt: 1, outcome: 'unreachable', statusCode: null }),
        expect.objectContaining({ attempt: 2, outcome: 'rejected', statusCode: 503, err: 'HTTP 503' }),
      ]);
      expect(JSON.stringify(logged)).not.toContain(r.url); // the address may show (as in the attempt), the URL not
      expect(r.received).toHaveLength(2);
      expect(r.received[0].headers['webhook-id']).toBe(r.received[1].headers['webhook-id']); // same event id on retry
      for (const h of r.received) expect(Receiver.verify(h, a.secret)).toBeTruthy();
    } finally {
      warn.mockRestore();
      t.clock.reset();
    }
  });

  it('gives up after the last scheduled attempt (failed), and a manual retry makes one more attempt', async () => {
    const r = await receiver();
    const a = await tenantWithWebhook(r.url);
    r.answer = () => ({ status: 500, body: 'boom' });
    await enqueue([lowBalance(a.uuid)]);
    try {
      for (let n = 1; n <= 10; n++) {
        await waitFor(
          () => deliveries(a.apiKey),
          (d) => d[0]?.attempts.length === n,
        );
        t.clock.advance(26.5 * 3600_000); // past any delay of the schedule
      }
      const [failed] = await deliveries(a.apiKey);
      expect(failed).toMatchObject({ status: 'failed', nextAttemptAt: null });
      expect(failed.attempts).toHaveLength(10);

      r.answer = () => ({ status: 200, body: 'ok' });
      const retried = await t.http.post(`/v1/webhook/deliveries/${failed.id}/retry`).set(bearer(a.apiKey));
      expect(retried.status).toBe(202);
      expect(retried.body).toMatchObject({ id: failed.id, status: 'pending' });
      const [done] = await waitFor(
        () => deliveries(a.apiKey),
        (d) => d[0]?.status === 'succeeded',
      );
      expect(done.attempts).toHaveLength(11);

      // another tenant cannot see or retry it
      const other = await createTenant(t);
      expectProblem(
        await t.http.post(`/v1/webhook/deliveries/${failed.id}/retry`).set(bearer(other.apiKey)),
        404,
        'not_found',
      );
      expectProblem(await t.http.post(`/v1/webhook/deliveries/whd_nope/retry`).set(bearer(a.apiKey)), 404, 'not_found');
      // without an endpoint there is nowhere to send it
      expect((await t.http.delete('/v1/webhook').set(bearer(a.apiKey))).status).toBe(204);
      expectProblem(
        await t.http.post(`/v1/webhook/deliveries/${failed.id}/retry`).set(bearer(a.apiKey)),
        409,
        'conflict',
      );
    } finally {
      t.clock.reset();
    }
  });

  it('a delivery leased by a process that died is released when its lease expires, then delivered', async () => {
    const r = await receiver();
    const a = await tenantWithWebhook(r.url);
    const webhooks = t.app.get(WebhooksService);
    await t.db.transaction(async (m) => {
      await webhooks.enqueue(m, [lowBalance(a.uuid, 7)]);
      // what a claim by a process that then crashed leaves behind: leased, lease already over
      await m.query(
        `UPDATE webhook_deliveries SET status = 'delivering', lease_owner = gen_random_uuid(),
                lease_until = now() - interval '1 second' WHERE tenant_id = $1`,
        [a.uuid],
      );
      await m.query(`UPDATE webhook_endpoints SET in_flight = 1 WHERE tenant_id = $1`, [a.uuid]);
    });
    // Claims take only pending rows: without the release (here, or the worker's own sweep every
    // 5 s, whichever comes first) this delivery would stay leased forever.
    await t.app.get(WebhookWorkerService).releaseExpiredLeases();
    const [hook] = await waitFor(
      () => r.received,
      (x) => x.length === 1,
    );
    expect(hook.body.data).toEqual({ balance: 7, threshold: 100 });
    // The released lease gave its slot back (else the endpoint would be one slot short for good).
    await waitFor(
      async () => (await t.db.query(`SELECT in_flight FROM webhook_endpoints WHERE tenant_id = $1`, [a.uuid]))[0],
      (e: { in_flight: number }) => e.in_flight === 0,
    );
    const metrics = await t.http.get('/metrics');
    expect(metrics.text).toMatch(/gerbang_webhook_attempts_total\{outcome="delivered"\} [1-9]/);
    expect(metrics.text).toContain('gerbang_webhook_queue_oldest_due_seconds');
  });

  /** Two tenants: `b`'s endpoint secret cannot be opened (what a changed ENCRYPTION_KEY looks like), `f`'s can. */
  async function unreadableAndFine() {
    const broken = await receiver();
    const fine = await receiver();
    const b = await tenantWithWebhook(broken.url);
    const f = await tenantWithWebhook(fine.url);
    await t.db.query(`UPDATE webhook_endpoints SET secret_enc = 'not-a-ciphertext' WHERE tenant_id = $1`, [b.uuid]);
    return { broken, fine, b, f };
  }

  it('an endpoint whose secret cannot be opened gives its leases back and does not stop another tenant', async () => {
    const { broken, fine, b, f } = await unreadableAndFine();
    await enqueue([lowBalance(b.uuid, 1), lowBalance(f.uuid, 2)]);
    const [hook] = await waitFor(
      () => fine.received,
      (x) => x.length === 1,
    );
    expect(hook.body.data).toEqual({ balance: 2, threshold: 100 });
    const [row] = await waitFor(
      () =>
        t.db.query(
          `SELECT d.status, d.attempts, d.next_attempt_at > now() + interval '30 seconds' AS later, e.in_flight
             FROM webhook_deliveries d JOIN webhook_endpoints e USING (tenant_id) WHERE d.tenant_id = $1`,
          [b.uuid],
        ),
      (rows: { status: string; later: boolean }[]) => rows[0]?.status === 'pending' && rows[0].later,
    );
    // Pending again, due in a minute, no attempt counted, its slot given back; nothing was sent unsigned.
    expect(row).toMatchObject({ status: 'pending', attempts: 0, in_flight: 0 });
    expect(broken.received).toHaveLength(0);
  });

  it("the claimed deliveries of other tenants go out even when giving back an unreadable endpoint's leases fails", async () => {
    const { broken, fine, b, f } = await unreadableAndFine();
    // The statement that gives b's leases back (due again in a minute) fails once, as a lost connection or a
    // deadlock with another process's outcome group would make it; the claim before it has committed.
    await t.db.query(`
      CREATE TABLE test_refuse_release_once (done boolean);
      CREATE OR REPLACE FUNCTION test_refuse_release() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF OLD.status = 'delivering' AND NEW.status = 'pending' AND NEW.tenant_id = '${b.uuid}'
           AND NOT EXISTS (SELECT 1 FROM test_refuse_release_once) THEN
          INSERT INTO test_refuse_release_once VALUES (true);
          RAISE EXCEPTION 'test: the release fails';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_refuse_release BEFORE UPDATE ON webhook_deliveries FOR EACH ROW EXECUTE FUNCTION test_refuse_release();`);
    try {
      // One transaction: the next claim takes both endpoints' deliveries.
      await enqueue([lowBalance(b.uuid, 1), lowBalance(f.uuid, 2)]);
      // f's was claimed with b's: it goes out now, not when its lease expires (2 s + 30 s here).
      const [hook] = await waitFor(
        () => fine.received,
        (x) => x.length === 1,
        5_000,
      );
      expect(hook.body.data).toEqual({ balance: 2, threshold: 100 });
      await waitFor(
        () => deliveries(f.apiKey),
        (d) => d[0]?.status === 'succeeded',
        5_000,
      );
      expect(broken.received).toHaveLength(0);
    } finally {
      await t.db.query(`DROP TRIGGER IF EXISTS test_refuse_release ON webhook_deliveries;
        DROP FUNCTION IF EXISTS test_refuse_release(); DROP TABLE IF EXISTS test_refuse_release_once`);
    }
  });

  it('a kept-alive connection the receiver closes as it is reused is retried at once on a new one (one attempt, delivered)', async () => {
    // What a receiver's keep-alive timer does when it fires just as the next webhook goes out on that
    // socket: the request meets a reset. A minimal HTTP/1.1 server answers the first request of each
    // connection (keep-alive) and resets the connection on its second.
    let requests = 0;
    const server = net.createServer((socket) => {
      let buffered = Buffer.alloc(0);
      let served = 0;
      socket.on('error', () => undefined);
      socket.on('data', (chunk: Buffer) => {
        buffered = Buffer.concat([buffered, chunk]);
        for (;;) {
          const end = buffered.indexOf('\r\n\r\n');
          if (end < 0) return;
          const length = Number(/content-length: *(\d+)/i.exec(buffered.subarray(0, end).toString())?.[1] ?? 0);
          if (buffered.length < end + 4 + length) return;
          buffered = buffered.subarray(end + 4 + length);
          requests++;
          if (served++ > 0) {
            socket.resetAndDestroy();
            return;
          }
          socket.write('HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: keep-alive\r\n\r\n');
        }
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const a = await tenantWithWebhook(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}/hooks`);
      await enqueue([lowBalance(a.uuid, 1)]);
      await waitFor(
        () => deliveries(a.apiKey),
        (d) => d[0]?.status === 'succeeded',
      );
      // The second webhook goes out on the kept-alive connection of the first, which is reset.
      await enqueue([lowBalance(a.uuid, 2)]);
      const list = await waitFor(
        () => deliveries(a.apiKey),
        (d) => d.length === 2 && d.every((x) => x.attempts.length > 0),
      );
      expect(list.map((d) => ({ status: d.status, outcomes: d.attempts.map((x) => x.outcome) }))).toEqual([
        { status: 'succeeded', outcomes: ['delivered'] },
        { status: 'succeeded', outcomes: ['delivered'] },
      ]);
      expect(requests).toBe(3); // the first; the second, reset; the second again, on a new connection
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a receiver that answers its headers and then stalls mid-body times out at the total timeout (2 s here)', async () => {
    const r = await receiver();
    const a = await tenantWithWebhook(r.url);
    r.answer = () => 'stall';
    await enqueue([lowBalance(a.uuid)]);
    const [d] = await waitFor(
      () => deliveries(a.apiKey),
      (x) => x[0]?.attempts.length === 1,
    );
    expect(d).toMatchObject({ status: 'pending', attempts: [{ outcome: 'timeout', statusCode: null }] });
    expect(d.attempts[0].durationMs).toBeGreaterThanOrEqual(1_900);
    expect(d.attempts[0].durationMs).toBeLessThan(3_000);
  });

  it('does not follow redirects: a 3xx is a failed attempt and the target is never called', async () => {
    const r = await receiver();
    const target = await receiver();
    const a = await tenantWithWebhook(r.url);
    r.answer = () => ({ status: 307, headers: { location: target.url } });
    await enqueue([lowBalance(a.uuid)]);
    const [d] = await waitFor(
      () => deliveries(a.apiKey),
      (x) => x[0]?.attempts.length === 1,
    );
    expect(d).toMatchObject({ status: 'pending', attempts: [{ outcome: 'rejected', statusCode: 307 }] });
    expect(target.received).toHaveLength(0);
  });

  /** A tenant whose receiver answered its one delivery 410: the delivery failed, the endpoint disabled. */
  async function disabledBy410() {
    const r = await receiver();
    const a = await tenantWithWebhook(r.url);
    r.answer = () => ({ status: 410, body: 'gone' });
    await enqueue([lowBalance(a.uuid)]);
    const [d] = await waitFor(
      () => deliveries(a.apiKey),
      (x) => x[0]?.status === 'failed',
    );
    return { r, a, d };
  }

  it('a 410 answer disables the endpoint; new events are not queued until a PUT enables it again', async () => {
    const { r, a, d } = await disabledBy410();
    expect(d.attempts).toEqual([expect.objectContaining({ outcome: 'gone', statusCode: 410 })]);
    const ep = await t.http.get('/v1/webhook').set(bearer(a.apiKey));
    expect(ep.body).toMatchObject({ enabled: false, disabledReason: 'gone' });
    expect(await enqueue([lowBalance(a.uuid)])).toBe(0);

    r.answer = () => ({ status: 200 });
    const again = await t.http.put('/v1/webhook').set(bearer(a.apiKey)).send({ url: r.url });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ enabled: true, disabledReason: null });
    expect(await enqueue([lowBalance(a.uuid)])).toBe(1);
    await waitFor(
      () => r.received,
      (x) => x.length === 2,
    );
  });

  it('a 410 answering a request sent before the PUT that re-enabled the endpoint leaves it enabled; a 410 to one sent after the PUT disables it', async () => {
    const r = await receiver();
    const a = await tenantWithWebhook(r.url);
    const endpoint = async () => (await t.http.get('/v1/webhook').set(bearer(a.apiKey))).body;
    // Two deliveries in flight: one answered 410 at once (the endpoint is disabled), the other held.
    r.answer = (h) => ({ status: 410, body: 'gone', delayMs: h.body.data.balance === 1 ? 1_200 : 0 });
    await enqueue([lowBalance(a.uuid, 1), lowBalance(a.uuid, 2)]);
    await waitFor(endpoint, (e) => e.enabled === false);
    expect(r.inFlight).toBe(1); // the held request was sent before the PUT
    // The tenant re-enables it (same URL: the same row and generation) while that request is still held.
    r.answer = () => ({ status: 200 });
    expect((await t.http.put('/v1/webhook').set(bearer(a.apiKey)).send({ url: r.url })).status).toBe(200);
    const list = await waitFor(
      () => deliveries(a.apiKey),
      (d) => d.length === 2 && d.every((x) => x.status === 'failed'),
    );
    expect(list.map((x) => x.attempts.map((y) => y.outcome))).toEqual([['gone'], ['gone']]);
    expect(await endpoint()).toMatchObject({ enabled: true, disabledReason: null });
    expect(await enqueue([lowBalance(a.uuid, 3)])).toBe(1);
    await waitFor(
      () => r.received.filter((h) => h.body.data.balance === 3),
      (x) => x.length === 1,
    );

    // A 410 to a request sent after the PUT still disables it.
    r.answer = () => ({ status: 410, body: 'gone' });
    await enqueue([lowBalance(a.uuid, 4)]);
    expect(await waitFor(endpoint, (e) => e.enabled === false)).toMatchObject({ disabledReason: 'gone' });
  });

  it('a manual retry while the endpoint is disabled (after a 410) is refused (409), the delivery unchanged; after a PUT it is sent', async () => {
    const { r, a, d } = await disabledBy410();
    expect((await t.http.get('/v1/webhook').set(bearer(a.apiKey))).body).toMatchObject({ enabled: false });

    r.answer = () => ({ status: 200 });
    const refused = await t.http.post(`/v1/webhook/deliveries/${d.id}/retry`).set(bearer(a.apiKey));
    expectProblem(refused, 409, 'conflict');
    expect(refused.body.detail).toContain('PUT /v1/webhook');
    const [after] = await deliveries(a.apiKey);
    expect(after).toEqual(d); // not made pending, no attempt
    expect(r.received).toHaveLength(1);

    expect((await t.http.put('/v1/webhook').set(bearer(a.apiKey)).send({ url: r.url })).status).toBe(200);
    expect((await t.http.post(`/v1/webhook/deliveries/${d.id}/retry`).set(bearer(a.apiKey))).status).toBe(202);
    const [done] = await waitFor(
      () => deliveries(a.apiKey),
      (x) => x[0]?.status === 'succeeded',
    );
    expect(done.attempts.map((x) => x.outcome)).toEqual(['gone', 'delivered']);
  });

  it("a deleted endpoint's deliveries never go to one registered after it (in flight at the DELETE, or queued by a transaction that saw it); its leases do not count against the new one", async () => {
    const old = await receiver();
    const next = await receiver();
    const a = await tenantWithWebhook(old.url);
    const worker = t.app.get(WebhookWorkerService);
    const inFlight = async () =>
      Number(
        (await t.db.query(`SELECT in_flight FROM webhook_endpoints WHERE tenant_id = $1`, [a.uuid]))[0]?.in_flight,
      );
    // The old endpoint answers slowly, and with a failure: its attempt is still in flight at the DELETE.
    old.answer = () => ({ status: 500, body: 'boom', delayMs: 1_200 });
    await enqueue([lowBalance(a.uuid, 1)]);
    await waitFor(
      () => old.received.length,
      (n) => n === 1,
    );
    const [first] = await deliveries(a.apiKey);
    // A transaction that read the endpoint before the DELETE and commits after the new PUT (the relay, a notice).
    const racing = t.db.createQueryRunner();
    await racing.connect();
    await racing.startTransaction();
    try {
      expect(await t.app.get(WebhooksService).enqueue(racing.manager, [lowBalance(a.uuid, 2)])).toBe(1);
      expect((await t.http.delete('/v1/webhook').set(bearer(a.apiKey))).status).toBe(204);
      const put = await t.http.put('/v1/webhook').set(bearer(a.apiKey)).send({ url: next.url });
      expect(put.status).toBe(201);
      await racing.commitTransaction();
    } finally {
      await racing.release();
    }
    try {
      // The new endpoint takes one delivery of its own and holds it (until the client's 2 s timeout).
      next.answer = () => 'hang';
      await enqueue([lowBalance(a.uuid, 3)]);
      await waitFor(
        () => next.received.length,
        (n) => n === 1,
      );
      expect(old.inFlight).toBe(1); // the old attempt has not ended yet
      expect(await inFlight()).toBe(1);
      // The old attempt fails: not retried (its endpoint is gone), and it frees no slot of the new endpoint.
      const ended = await waitFor(
        () => deliveries(a.apiKey),
        (d) => d.find((x) => x.id === first.id)?.status !== 'delivering',
      );
      expect(ended.find((x) => x.id === first.id)).toMatchObject({ status: 'failed', lastError: 'endpoint deleted' });
      expect(next.inFlight).toBe(1);
      expect(await inFlight()).toBe(1);

      // The racing delivery is failed by the workers' sweep (every 5 s); the new endpoint's own delivery times
      // out and is retried to it.
      next.answer = () => ({ status: 204 });
      await waitFor(
        () => deliveries(a.apiKey),
        (d) => d.find((x) => x.payload.data.balance === 3)?.attempts.length === 1,
      );
      t.clock.advance(6_000);
      await worker.failOrphaned();
      const list = await waitFor(
        () => deliveries(a.apiKey),
        (d) => d.length === 3 && d.every((x) => x.status !== 'pending' && x.status !== 'delivering'),
      );
      expect(list.map((x) => [x.payload.data.balance, x.status, x.lastError])).toEqual([
        [3, 'succeeded', null],
        [2, 'failed', 'endpoint deleted'],
        [1, 'failed', 'endpoint deleted'],
      ]);
      expect(next.received.map((h) => h.body.data.balance)).toEqual([3, 3]);
      expect(old.received).toHaveLength(1);
      await waitFor(inFlight, (n) => n === 0);
    } finally {
      t.clock.reset();
    }
  });

  it('a delivery queued without a generation (a process of the previous version) goes to the endpoint the tenant has, and frees its slot', async () => {
    const r = await receiver();
    const a = await tenantWithWebhook(r.url);
    await t.db.transaction(async (m) => {
      await t.app.get(WebhooksService).enqueue(m, [lowBalance(a.uuid, 4)]);
      await m.query(`UPDATE webhook_deliveries SET endpoint_generation = NULL WHERE tenant_id = $1`, [a.uuid]);
    });
    const [hook] = await waitFor(
      () => r.received,
      (x) => x.length === 1,
    );
    expect(hook.body.data).toEqual({ balance: 4, threshold: 100 });
    const [row] = await waitFor(
      () =>
        t.db.query<{ status: string; stamped: boolean; in_flight: number }[]>(
          `SELECT d.status, d.endpoint_generation = e.generation AS stamped, e.in_flight
             FROM webhook_deliveries d JOIN webhook_endpoints e USING (tenant_id) WHERE d.tenant_id = $1`,
          [a.uuid],
        ),
      (x) => x[0]?.status === 'succeeded',
    );
    expect(row).toEqual({ status: 'succeeded', stamped: true, in_flight: 0 });
  });

  it("one tenant's hanging endpoint holds only its own slots: another tenant's webhooks keep flowing", async () => {
    const slow = await receiver();
    slow.answer = () => 'hang';
    const fast = await receiver();
    const s = await tenantWithWebhook(slow.url);
    const f = await tenantWithWebhook(fast.url);

    await enqueue(Array.from({ length: 20 }, () => lowBalance(s.uuid)));
    await waitFor(
      () => slow.received,
      (x) => x.length >= 16,
    );
    const started = Date.now();
    await enqueue(Array.from({ length: 30 }, (_, i) => lowBalance(f.uuid, i)));
    await waitFor(
      () => fast.received,
      (x) => x.length === 30,
      5_000,
    );
    // All 30 arrived while the slow endpoint was still hanging (its timeout is 2 s).
    expect(Date.now() - started).toBeLessThan(2_000);
    // 20 queued, 16 in flight: this app's WEBHOOK_ENDPOINT_CONCURRENCY, reached and not exceeded.
    expect(slow.maxInFlight).toBe(16);
    const [slowEndpoint] = await t.db.query(`SELECT in_flight FROM webhook_endpoints WHERE tenant_id = $1`, [s.uuid]);
    expect(slowEndpoint.in_flight).toBe(16);
    const attemptsOfSlow = await waitFor(
      () => deliveries(s.apiKey, '?limit=500'),
      (d) => d.filter((x) => x.attempts.length > 0).length >= 16,
    );
    expect(attemptsOfSlow.flatMap((x) => x.attempts).every((x) => x.outcome === 'timeout')).toBe(true);
  });
  it('tenants whose URLs share one host do not share its connections: a hanging path does not hold up another', async () => {
    // One receiver (one origin) with two tenants' paths on it, as when tenants receive through one webhook service.
    const r = await receiver();
    const hanging = 999;
    r.answer = (h) => (h.body.data.balance === hanging ? 'hang' : { status: 200, body: 'ok' });
    const s = await tenantWithWebhook(`${r.url}/slow-tenant`);
    const f = await tenantWithWebhook(`${r.url}/fast-tenant`);

    await enqueue(Array.from({ length: 20 }, () => lowBalance(s.uuid, hanging)));
    await waitFor(
      () => r.received.filter((h) => h.body.data.balance === hanging),
      (x) => x.length >= 16,
    );
    const started = Date.now();
    await enqueue(Array.from({ length: 30 }, (_, i) => lowBalance(f.uuid, i)));
    await waitFor(
      () => r.received.filter((h) => h.body.data.balance !== hanging),
      (x) => x.length === 30,
      5_000,
    );
    // All 30 arrived well before the other tenant's 16 hanging requests to the same host timed out (2 s):
    // queued behind them, they would have gone out only as those gave up, ~2 s later.
    expect(Date.now() - started).toBeLessThan(1_000);
    // Each at its first attempt (none of them waited out a timeout behind the other tenant's requests).
    const fast = await waitFor(
      () => deliveries(f.apiKey, '?limit=500'),
      (ds) => ds.length === 30 && ds.every((d) => d.status === 'succeeded'),
    );
    expect(fast.flatMap((d) => d.attempts.map((a) => a.outcome))).toEqual(Array(30).fill('delivered'));
  });

  it('after a rotation, a previous secret that cannot be opened is left out: signed with the new one, not held back', async () => {
    const r = await receiver();
    const tn = await tenantWithWebhook(r.url);
    // The current secret became unreadable (ENCRYPTION_KEY changed); the tenant recovers by rotating.
    await t.db.query(`UPDATE webhook_endpoints SET secret_enc = 'not-a-ciphertext' WHERE tenant_id = $1`, [tn.uuid]);
    const rotated = await t.http.post('/v1/webhook/rotate-secret').set(bearer(tn.apiKey));
    const newSecret = rotated.body.secret as string;
    expect(newSecret).toMatch(/^whsec_/);

    await enqueue([lowBalance(tn.uuid, 7)]);
    const [hook] = await waitFor(
      () => r.received,
      (x) => x.length === 1,
      5_000,
    );
    expect(String(hook.headers['webhook-signature']).split(' ')).toHaveLength(1);
    expect(Receiver.verify(hook, newSecret)).toMatchObject({ type: 'balance.low' });
  });

  it('an attempt cut short by the gateway stopping is logged but not counted: the last scheduled attempt survives a deploy', async () => {
    const worker = t.app.get(WebhookWorkerService);
    const r = await receiver();
    r.answer = () => 'hang';
    const tn = await tenantWithWebhook(r.url);
    await worker.stop();
    try {
      await enqueue([lowBalance(tn.uuid, 3)]);
      // Nine attempts already failed: the next one is its last.
      await t.db.query(`UPDATE webhook_deliveries SET attempts = 9 WHERE tenant_id = $1`, [tn.uuid]);
      worker.start();
      await waitFor(
        () => r.received,
        (x) => x.length === 1,
      );
      await worker.stop(); // a deploy: the request in flight is aborted
      const [d] = await t.db.query(
        `SELECT status, attempts, next_attempt_at <= now() + interval '1 second' AS due_now,
                (SELECT count(*)::int FROM webhook_attempts a WHERE a.delivery_id = d.id) AS logged
           FROM webhook_deliveries d WHERE tenant_id = $1`,
        [tn.uuid],
      );
      expect(d).toEqual({ status: 'pending', attempts: 9, due_now: true, logged: 1 });
      const [ep] = await t.db.query(`SELECT in_flight FROM webhook_endpoints WHERE tenant_id = $1`, [tn.uuid]);
      expect(ep.in_flight).toBe(0);
    } finally {
      r.answer = () => ({ status: 200, body: 'ok' });
      worker.start();
    }
    // The next process delivers it.
    await waitFor(
      () => deliveries(tn.apiKey),
      (ds) => ds[0]?.status === 'succeeded',
    );
  });

  it('an endpoint that got no slot in a claim keeps its place in the round-robin (a busy tenant cannot starve it)', async () => {
    const worker = t.app.get(WebhookWorkerService);
    const ra = await receiver();
    const rb = await receiver();
    const a = await tenantWithWebhook(ra.url);
    const b = await tenantWithWebhook(rb.url);
    await worker.stop(); // claims below are made by hand; what they lease is given back unsent (stopping)
    try {
      // a was served before b: a is ahead in the round-robin.
      await t.db.query(
        `UPDATE webhook_endpoints SET claimed_at = now() - CASE WHEN tenant_id = $1 THEN interval '2 minutes' ELSE interval '1 minute' END
          WHERE tenant_id = ANY ($2::uuid[])`,
        [a.uuid, [a.uuid, b.uuid]],
      );
      await enqueue(Array.from({ length: 20 }, () => lowBalance(a.uuid)));
      await enqueue([lowBalance(b.uuid)]);
      const claimedAt = async () =>
        Object.fromEntries(
          (
            await t.db.query(`SELECT tenant_id, claimed_at FROM webhook_endpoints WHERE tenant_id = ANY ($1::uuid[])`, [
              [a.uuid, b.uuid],
            ])
          ).map((r: { tenant_id: string; claimed_at: Date }) => [r.tenant_id, r.claimed_at.getTime()]),
        );
      const before = await claimedAt();
      // Four free slots: a (first) takes all four, b gets none and must stay where it was.
      await worker.claimAndStart(4);
      const after = await claimedAt();
      expect(after[a.uuid]).toBeGreaterThan(before[a.uuid]);
      expect(after[b.uuid]).toBe(before[b.uuid]);
      // So the next claim serves b first.
      await worker.claimAndStart(4);
      expect((await claimedAt())[b.uuid]).toBeGreaterThan(before[b.uuid]);
    } finally {
      worker.start();
    }
    await waitFor(
      () => [ra.received.length, rb.received.length],
      ([x, y]) => x === 20 && y === 1,
    );
  });

  it('an outcome that cannot be recorded does not take the others of its group down (they are not resent)', async () => {
    const r = await receiver();
    r.answer = () => ({ status: 200, delayMs: 150 }); // the ten requests finish together: one recording group
    const tn = await tenantWithWebhook(r.url);
    // Recording the attempt of the event with balance 13 fails, every time.
    await t.db.query(`
      CREATE OR REPLACE FUNCTION test_refuse_attempt() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF (SELECT payload->'data'->>'balance' FROM webhook_deliveries WHERE id = NEW.delivery_id) = '13' THEN
          RAISE EXCEPTION 'test: this attempt cannot be recorded';
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER test_refuse_attempt BEFORE INSERT ON webhook_attempts FOR EACH ROW EXECUTE FUNCTION test_refuse_attempt();`);
    try {
      await enqueue(Array.from({ length: 10 }, (_, i) => lowBalance(tn.uuid, 10 + i)));
      await waitFor(
        () => r.received.length,
        (n) => n >= 10,
      );
      // The nine others are recorded at once (before: the whole group failed with the one, and all ten stayed
      // `delivering` until their leases expired and were then sent again).
      const list = await waitFor(
        () => deliveries(tn.apiKey, '?limit=50'),
        (d) => d.filter((x) => x.status === 'succeeded').length === 9,
        5_000,
      );
      expect(list).toHaveLength(10);
      expect(r.received).toHaveLength(10); // nothing resent
    } finally {
      await t.db.query(
        `DROP TRIGGER IF EXISTS test_refuse_attempt ON webhook_attempts; DROP FUNCTION IF EXISTS test_refuse_attempt()`,
      );
    }
  });
});

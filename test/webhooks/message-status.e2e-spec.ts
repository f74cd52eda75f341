import { startSandbox, SandboxHandle } from '../../src/sandbox';
import { GAP_GRACE_MS, MessageStatusRelay } from '../../src/webhooks/message-status.relay';
import { WebhooksService } from '../../src/webhooks/webhooks.service';
import { bearer, createTenantOnSandbox, startTestApp, TestApp, uuidOf } from '../support/app';
import { Receiver, waitFor } from './receiver';

/**
 * message.status: every status change of a real send through the sandbox provider reaches the
 * tenant's receiver, relayed from message_events (the messaging code does not call the webhook
 * module). Also: the relay's handling of out-of-order commits, and two gateway processes sharing
 * the delivery queue.
 */
const ENCRYPTION_KEY = Buffer.alloc(32, 7).toString('base64');
const JWT_SECRET = 'webhooks-test-jwt-secret-0123456789abcdef';

describe('message.status webhooks', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;
  const receivers: Receiver[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({ knobs: { dlrDelayMs: [5, 20], latencyMs: [0, 0] } });
    t = await startTestApp({
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_POLL_MS: '20',
      DISPATCH_POLL_MS: '50',
      PROVIDER_SEND_RATE_PER_SECOND: '0',
      WEBHOOK_ENDPOINT_CONCURRENCY: '16', // the cap the two-process test below exercises (default 64)
      // shared with the second process below: both must open the webhook secrets, and passport's
      // strategies are process-global (the last app's JWT secret verifies both apps' tokens)
      ENCRYPTION_KEY,
      JWT_SECRET,
    });
    await t.app.listen(0, '127.0.0.1');
  });
  afterAll(async () => {
    await t.close();
    await sandbox.close();
    for (const r of receivers) await r.stop();
  });

  async function receiver(): Promise<Receiver> {
    const r = await new Receiver().start();
    receivers.push(r);
    return r;
  }

  async function tenantOnSandbox(webhookUrl: string, events?: string[]) {
    const tenant = await createTenantOnSandbox(t, sandbox);
    const put = await t.http.put('/v1/webhook').set(bearer(tenant.apiKey)).send({ url: webhookUrl, events });
    expect(put.status).toBe(201);
    return { ...tenant, secret: put.body.secret as string, uuid: uuidOf(tenant.tenantId) };
  }

  it('delivers every status change of a real send, signed and ordered by sequence', async () => {
    const r = await receiver();
    const a = await tenantOnSandbox(r.url);
    const sent = await t.http
      .post('/v1/messages')
      .set(bearer(a.apiKey))
      .send({ to: '081234567890', text: 'Halo hook' });
    expect(sent.status).toBe(202);

    const hooks = await waitFor(
      () => r.received.filter((h) => h.body.data.id === sent.body.id),
      (x) => x.some((h) => h.body.data.status === 'delivered'),
    );
    for (const h of hooks) expect(Receiver.verify(h, a.secret)).toMatchObject({ type: 'message.status' });
    // Requests to one endpoint run concurrently (up to its cap), so arrival order is not event order:
    // the receiver orders by `sequence`.
    const ordered = [...hooks].sort((x, y) => x.body.sequence! - y.body.sequence!);
    const statuses = ordered.map((h) => h.body.data.status);
    // Changes only: the creation (`queued`, already in the 202) is not an event.
    expect(statuses[0]).toBe('submitted');
    expect(statuses[statuses.length - 1]).toBe('delivered');
    expect(statuses).not.toContain('queued');
    expect(new Set(ordered.map((h) => h.body.sequence)).size).toBe(ordered.length);
    for (let i = 1; i < ordered.length; i++)
      expect(Date.parse(ordered[i].body.createdAt)).toBeGreaterThanOrEqual(Date.parse(ordered[i - 1].body.createdAt));
    expect(ordered[ordered.length - 1].body.data).toMatchObject({
      id: sent.body.id,
      to: '6281234567890',
      text: 'Halo hook',
      status: 'delivered',
      providerStatusCode: 22,
    });
    // each event exactly once, and listed with its message
    expect(new Set(hooks.map((h) => h.body.id)).size).toBe(hooks.length);
    const list = await t.http.get('/v1/webhook/deliveries?type=message.status').set(bearer(a.apiKey));
    expect(list.body.data.map((d: { messageId: string }) => d.messageId)).toEqual(
      Array(hooks.length).fill(sent.body.id),
    );
  });

  it('a scheduled message: no event for its creation, `queued` when its time comes, then the rest', async () => {
    const r = await receiver();
    const a = await tenantOnSandbox(r.url);
    const sendAt = new Date(t.clock.now().getTime() + 60_000);
    const sent = await t.http
      .post('/v1/messages')
      .set(bearer(a.apiKey))
      .send({ to: '081234567890', text: 'later hook', sendAt: sendAt.toISOString() });
    expect(sent.status).toBe(202);
    expect(sent.body.status).toBe('scheduled');
    await t.app.get(MessageStatusRelay).tick(); // whatever was committed has been relayed
    expect(r.received.filter((h) => h.body.data.id === sent.body.id)).toEqual([]);

    t.clock.advance(61_000);
    const hooks = await waitFor(
      () => r.received.filter((h) => h.body.data.id === sent.body.id),
      (x) => x.some((h) => h.body.data.status === 'delivered'),
    );
    const statuses = [...hooks].sort((x, y) => x.body.sequence! - y.body.sequence!).map((h) => h.body.data.status);
    expect(statuses[0]).toBe('queued');
    expect(statuses).toContain('submitted');
    expect(statuses).not.toContain('scheduled');
    expect(statuses[statuses.length - 1]).toBe('delivered');
  });

  it('a tenant not subscribed to message.status gets none', async () => {
    const r = await receiver();
    const a = await tenantOnSandbox(r.url, ['balance.low']);
    const sent = await t.http.post('/v1/messages').set(bearer(a.apiKey)).send({ to: '081234567890', text: 'quiet' });
    await waitFor(
      () => t.http.get(`/v1/messages/${sent.body.id}`).set(bearer(a.apiKey)),
      (res) => res.body.status === 'delivered',
    );
    await t.app.get(MessageStatusRelay).tick(); // whatever was committed has been relayed
    expect(r.received).toHaveLength(0);
    expect((await t.http.get('/v1/webhook/deliveries').set(bearer(a.apiKey))).body.data).toEqual([]);
  });

  it('relays an event whose transaction commits after a later one (a sequence gap), once', async () => {
    const r = await receiver();
    const a = await tenantOnSandbox(r.url);
    const sent = await t.http.post('/v1/messages').set(bearer(a.apiKey)).send({ to: '081234567890', text: 'gap' });
    const messageId = uuidOf(sent.body.id);
    await waitFor(
      () => r.received.filter((h) => h.body.data.id === sent.body.id),
      (x) => x.some((h) => h.body.data.status === 'delivered'),
    );
    const before = r.received.length;

    // Stands in for a slow messaging transaction: its row takes a sequence number first and
    // commits last. (Test-only writes to message_events.)
    const slow = t.db.createQueryRunner();
    await slow.connect();
    await slow.startTransaction();
    const [early] = await slow.query(
      `INSERT INTO message_events (message_id, tenant_id, status, created_at) VALUES ($1, $2, 'delivered', now()) RETURNING seq`,
      [messageId, a.uuid],
    );
    const [late] = await t.db.query(
      `INSERT INTO message_events (message_id, tenant_id, status, created_at) VALUES ($1, $2, 'delivered', now()) RETURNING seq`,
      [messageId, a.uuid],
    );
    expect(Number(late.seq)).toBeGreaterThan(Number(early.seq));
    await waitFor(
      () => r.received.filter((h) => h.body.sequence === Number(late.seq)),
      (x) => x.length === 1,
    );
    // the durable cursor waits before the gap, so a restart would re-read it
    const [cursor] = await t.db.query(`SELECT last_seq FROM webhook_relay_cursors WHERE name = 'message_status'`);
    expect(Number(cursor.last_seq)).toBeLessThan(Number(early.seq));

    await slow.commitTransaction();
    await slow.release();
    await waitFor(
      () => r.received.filter((h) => h.body.sequence === Number(early.seq)),
      (x) => x.length === 1,
    );
    // Any other gap (a rolled-back or retried transaction of this app elsewhere) holds the durable
    // cursor for GAP_GRACE_MS; move the clock past it instead of waiting a minute.
    t.clock.advance(GAP_GRACE_MS + 1_000);
    await waitFor(
      () => t.db.query(`SELECT last_seq FROM webhook_relay_cursors WHERE name = 'message_status'`),
      (rows: { last_seq: string }[]) => Number(rows[0].last_seq) >= Number(late.seq),
    );
    expect(r.received.length).toBe(before + 2);
  });

  it('relays 5,000 events committed concurrently, each exactly once (measured)', async () => {
    const r = await receiver();
    const a = await tenantOnSandbox(r.url);
    const sent = await t.http.post('/v1/messages').set(bearer(a.apiKey)).send({ to: '081234567890', text: 'many' });
    const messageId = uuidOf(sent.body.id);
    await waitFor(
      () => r.received.filter((h) => h.body.data.id === sent.body.id),
      (x) => x.some((h) => h.body.data.status === 'delivered'),
    );
    const [{ n: base }] = await t.db.query(`SELECT count(*)::int AS n FROM webhook_deliveries WHERE tenant_id = $1`, [
      a.uuid,
    ]);
    const started = Date.now();
    await Promise.all(
      Array.from({ length: 10 }, () =>
        t.db.query(
          `INSERT INTO message_events (message_id, tenant_id, status, created_at)
           SELECT $1, $2, 'delivered', now() FROM generate_series(1, 500)`,
          [messageId, a.uuid],
        ),
      ),
    );
    const inserted = Date.now();
    await waitFor(
      () => t.db.query(`SELECT count(*)::int AS n FROM webhook_deliveries WHERE tenant_id = $1`, [a.uuid]),
      (rows: { n: number }[]) => rows[0].n === base + 5000,
      60_000,
    );
    const relayed = Date.now();
    // POSTing 5,000 to one endpoint (16 in flight) is not the point here; sample its rate for 5 s,
    // then delete the endpoint (its pending deliveries fail) so the rest of the suite is not slowed.
    const sampleFrom = r.received.length;
    await new Promise((res) => setTimeout(res, 5000));
    const posted = r.received.length - sampleFrom;
    expect((await t.http.delete('/v1/webhook').set(bearer(a.apiKey))).status).toBe(204);
    const [dupes] = await t.db.query(
      `SELECT count(*)::int AS n FROM (SELECT sequence FROM webhook_deliveries WHERE tenant_id = $1
         GROUP BY sequence HAVING count(*) > 1) d`,
      [a.uuid],
    );
    expect(dupes.n).toBe(0);
    expect(posted).toBeGreaterThan(0);
    expect(new Set(r.received.map((h) => h.body.id)).size).toBe(r.received.length);
    console.log(
      `relay: 5000 message_events (10 concurrent tx, inserts took ${inserted - started} ms) → deliveries ` +
        `${relayed - inserted} ms after commit; POSTs to one endpoint (16 in flight): ${posted / 5}/s`,
    );
  }, 120_000);

  it('two gateway processes share the queue: each event delivered once, the per-endpoint cap holds', async () => {
    const second = await startTestApp({
      WEBHOOK_ALLOW_PRIVATE: 'true',
      WEBHOOK_POLL_MS: '20',
      DISPATCHER: 'false',
      WEBHOOK_ENDPOINT_CONCURRENCY: '16',
      ENCRYPTION_KEY,
      JWT_SECRET,
    });
    try {
      const rs = await Promise.all([receiver(), receiver(), receiver()]);
      // each answer takes 20 ms, so requests overlap and the cap is exercised
      for (const r of rs) r.answer = () => ({ status: 200, delayMs: 20 });
      const tenants = await Promise.all(rs.map((r) => tenantOnSandbox(r.url, ['balance.low'])));
      const webhooks = t.app.get(WebhooksService);
      await t.db.transaction((m) =>
        webhooks.enqueue(
          m,
          tenants.flatMap((tn) =>
            Array.from({ length: 100 }, (_, i) => ({ tenantId: tn.uuid, type: 'balance.low' as const, data: { i } })),
          ),
        ),
      );
      for (const r of rs)
        await waitFor(
          () => r.received.length,
          (n) => n >= 100,
        );
      await new Promise((res) => setTimeout(res, 200));
      for (const r of rs) {
        expect(r.received).toHaveLength(100);
        expect(new Set(r.received.map((h) => h.body.id)).size).toBe(100);
        expect(r.maxInFlight).toBeLessThanOrEqual(16); // WEBHOOK_ENDPOINT_CONCURRENCY of both processes
      }
      const [byProcess] = await t.db.query(
        `SELECT count(DISTINCT d.id)::int AS n FROM webhook_deliveries d WHERE d.tenant_id = ANY ($1::uuid[]) AND d.attempts = 1 AND d.status = 'succeeded'`,
        [tenants.map((tn) => tn.uuid)],
      );
      expect(byProcess.n).toBe(300);
      // Every lease taken was given back: the endpoints' slot counters are at 0 (the claim trusts them).
      const counters = await t.db.query(`SELECT in_flight FROM webhook_endpoints WHERE tenant_id = ANY ($1::uuid[])`, [
        tenants.map((tn) => tn.uuid),
      ]);
      expect(counters.map((c: { in_flight: number }) => c.in_flight)).toEqual([0, 0, 0]);
    } finally {
      await second.close();
    }
  });
});

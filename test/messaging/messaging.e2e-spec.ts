import { startSandbox, SandboxHandle } from '../../src/sandbox';
import { DispatcherService } from '../../src/messaging/dispatcher.service';
import { IdempotencyService } from '../../src/idempotency/idempotency.service';
import { AcceptService } from '../../src/messaging/accept.service';
import { createTenant, jakartaDay, startTestApp, TestApp, reachableCallbackUrl } from '../support/app';
import { waitFor } from '../support/wait';

describe('messaging against the sandbox provider', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;

  beforeAll(async () => {
    sandbox = await startSandbox({ knobs: { dlrDelayMs: [5, 20], latencyMs: [0, 0] } });
    t = await startTestApp({ DISPATCH_POLL_MS: '50', PROVIDER_SEND_RATE_PER_SECOND: '0' });
    const port = (t.app.getHttpServer().address() as { port: number } | null)?.port;
    if (!port) await t.app.listen(0, '127.0.0.1');
  });
  afterAll(async () => {
    await t.close();
    await sandbox.close();
  });

  async function tenantOnSandbox(balance: number, price = 100) {
    const tenant = await createTenant(t, { balance, pricePerSegment: price, baseUrl: sandbox.url });
    const port = (t.app.getHttpServer().address() as { port: number }).port;
    const callback = reachableCallbackUrl(tenant.providerAccount.dlrCallbackUrl, port);
    sandbox.addAccount({
      username: tenant.providerAccount.username,
      password: 'provider-secret-pw',
      balance: '1000000',
      callbackUrl: callback,
    });
    return tenant;
  }

  it('accepts, charges, submits and delivers a message (happy path)', async () => {
    const { apiKey } = await tenantOnSandbox(1000);
    const auth = { Authorization: `Bearer ${apiKey}` };
    const sent = await t.http
      .post('/v1/messages')
      .set(auth)
      .send({ to: '+62 812-3456-7890', text: 'Halo', reference: 'r1' });
    expect(sent.status).toBe(202);
    expect(sent.body).toMatchObject({
      to: '6281234567890',
      status: 'queued',
      segments: 1,
      encoding: 'GSM-7',
      price: 100,
      reference: 'r1',
    });
    expect(sent.headers['ratelimit-limit']).toBe('100');
    const done = await waitFor(
      'the message to be final',
      () =>
        t.http
          .get(`/v1/messages/${sent.body.id}`)
          .set(auth)
          .then((r) => r.body),
      (b) => b.status === 'delivered',
    );
    expect(done).toMatchObject({ status: 'delivered', providerStatusCode: 22, refunded: false });
    expect(done.providerMessageId).toMatch(/^\d+$/);
    const bal = await t.http.get('/v1/balance').set(auth);
    expect(bal.body.balance).toBe(900);
    const ledger = await t.http.get('/v1/ledger').set(auth);
    expect(ledger.body.data[0]).toMatchObject({
      kind: 'debit',
      amount: -100,
      balanceAfter: 900,
      messageId: sent.body.id,
    });
    expect(sandbox.sent().filter((s) => s.text === 'Halo' && s.msisdn === '6281234567890')).toHaveLength(1);
  });

  it('refunds exactly once when the provider reports 52 (invalid number)', async () => {
    const { apiKey } = await tenantOnSandbox(1000);
    const auth = { Authorization: `Bearer ${apiKey}` };
    const sent = await t.http.post('/v1/messages').set(auth).send({ to: '6289912345678', text: 'bad number' });
    expect(sent.status).toBe(202);
    const done = await waitFor(
      'the message to be final',
      () =>
        t.http
          .get(`/v1/messages/${sent.body.id}`)
          .set(auth)
          .then((r) => r.body),
      (b) => b.status === 'failed',
    );
    expect(done).toMatchObject({
      status: 'failed',
      failureReason: 'invalid_number',
      refunded: true,
      providerStatusCode: 52,
    });
    expect((await t.http.get('/v1/balance').set(auth)).body.balance).toBe(1000);
    const kinds = (await t.http.get('/v1/ledger').set(auth)).body.data.map((e: { kind: string }) => e.kind);
    expect(kinds.filter((k: string) => k === 'refund')).toHaveLength(1);
  });

  it('120 concurrent sends against a balance for exactly 50: exactly 50 accepted, balance 0', async () => {
    const { apiKey, tenantId } = await tenantOnSandbox(5000, 100);
    const auth = { Authorization: `Bearer ${apiKey}` };
    await t.http
      .patch(`/v1/admin/tenants/${tenantId}`)
      .set('Authorization', `Bearer ${t.adminToken}`)
      .send({ rateLimitPerSecond: 1000 });
    t.clock.advance(1100); // past the tenant settings cache (1 s of the app's Clock)
    const results = await Promise.all(
      Array.from({ length: 120 }, (_, i) =>
        t.http
          .post('/v1/messages')
          .set(auth)
          .send({ to: '081234567890', text: `race ${i}` }),
      ),
    );
    const codes = results.map((r) => r.status);
    expect(codes.filter((c) => c === 202)).toHaveLength(50);
    expect(codes.filter((c) => c === 402)).toHaveLength(70);
    expect(results.find((r) => r.status === 402)!.body.code).toBe('insufficient_balance');
    const [row] = await t.db.query(
      `SELECT t.balance, (SELECT sum(amount) FROM ledger_entries WHERE tenant_id = t.id) AS total,
              (SELECT count(*) FROM messages WHERE tenant_id = t.id) AS messages
         FROM tenants t WHERE t.id = (SELECT tenant_id FROM api_keys WHERE prefix = $1)`,
      [apiKey.slice(0, 12)],
    );
    expect(Number(row.balance)).toBe(0);
    expect(Number(row.total)).toBe(0);
    expect(Number(row.messages)).toBe(50);
  });

  it('Idempotency-Key: same body replays one charge, different body 422, concurrent duplicates charge once', async () => {
    const { apiKey } = await tenantOnSandbox(10_000);
    const auth = { Authorization: `Bearer ${apiKey}` };
    const body = { to: '081234567890', text: 'once' };
    const first = await t.http.post('/v1/messages').set(auth).set('Idempotency-Key', 'k-1').send(body);
    const again = await t.http.post('/v1/messages').set(auth).set('Idempotency-Key', 'k-1').send(body);
    expect(first.status).toBe(202);
    expect(again.status).toBe(202);
    expect(again.body.id).toBe(first.body.id);
    expect(again.headers['idempotent-replayed']).toBe('true');
    const other = await t.http
      .post('/v1/messages')
      .set(auth)
      .set('Idempotency-Key', 'k-1')
      .send({ ...body, text: 'other' });
    expect(other.status).toBe(422);
    expect(other.body.code).toBe('idempotency_conflict');

    const racers = await Promise.all(
      Array.from({ length: 20 }, () =>
        t.http.post('/v1/messages').set(auth).set('Idempotency-Key', 'k-race').send(body),
      ),
    );
    const ok = racers.filter((r) => r.status === 202);
    const inProgress = racers.filter((r) => r.status === 409);
    expect(ok.length + inProgress.length).toBe(20);
    expect(new Set(ok.map((r) => r.body.id)).size).toBe(1);
    inProgress.forEach((r) => expect(r.body.code).toBe('idempotency_in_progress'));
    expect((await t.http.get('/v1/balance').set(auth)).body.balance).toBe(10_000 - 200);
  });

  it('Idempotency-Key: kept 24 h at least, purged after 48 h; bad key shape is a 400', async () => {
    const { apiKey } = await tenantOnSandbox(10_000);
    const auth = { Authorization: `Bearer ${apiKey}` };
    const body = { to: '081234567890', text: 'keep me' };
    const first = await t.http.post('/v1/messages').set(auth).set('Idempotency-Key', 'keep-1').send(body);
    const svc = t.app.get(IdempotencyService);
    t.clock.advance(25 * 3600_000);
    try {
      await svc.purgeExpired();
      const replay = await t.http.post('/v1/messages').set(auth).set('Idempotency-Key', 'keep-1').send(body);
      expect(replay.body.id).toBe(first.body.id);
      t.clock.advance(24 * 3600_000);
      expect(await svc.purgeExpired()).toBeGreaterThanOrEqual(1);
      const fresh = await t.http.post('/v1/messages').set(auth).set('Idempotency-Key', 'keep-1').send(body);
      expect(fresh.status).toBe(202);
      expect(fresh.body.id).not.toBe(first.body.id);
    } finally {
      t.clock.reset();
    }
    const bad = await t.http.post('/v1/messages').set(auth).set('Idempotency-Key', 'x'.repeat(300)).send(body);
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('validation_failed');
  });

  it('batch: charged in order while the balance lasts, invalid items rejected by index', async () => {
    const { apiKey } = await tenantOnSandbox(300, 100);
    const auth = { Authorization: `Bearer ${apiKey}` };
    const r = await t.http
      .post('/v1/messages/batch')
      .set(auth)
      .send({
        messages: [
          { to: '081234567890', text: 'a' },
          { to: 'abc', text: 'b' },
          { to: '081234567891', text: 'c' },
          { to: '081234567892', text: 'd' },
          { to: '081234567893', text: 'e' },
        ],
      });
    expect(r.status).toBe(202);
    expect(r.body.accepted.map((m: { text: string }) => m.text)).toEqual(['a', 'c', 'd']);
    expect(r.body.rejected).toEqual([
      { index: 1, code: 'invalid_msisdn', detail: expect.any(String) },
      { index: 4, code: 'insufficient_balance', detail: expect.any(String) },
    ]);
    expect((await t.http.get('/v1/balance').set(auth)).body.balance).toBe(0);
  });

  it('batch: a text over 1,600 characters is rejected by its index like any text too long, the other items are charged', async () => {
    const { apiKey } = await tenantOnSandbox(1000, 100);
    const auth = { Authorization: `Bearer ${apiKey}` };
    const r = await t.http
      .post('/v1/messages/batch')
      .set(auth)
      .send({
        messages: [
          { to: '081234567890', text: 'first' },
          { to: '081234567890', text: 'ж'.repeat(700) }, // 11 segments: too long
          { to: '081234567890', text: 'a'.repeat(1601) }, // over 1,600 characters: too long as well
          { to: '081234567890', text: 'last' },
        ],
      });
    expect(r.status).toBe(202);
    expect(r.body.accepted.map((m: { text: string }) => m.text)).toEqual(['first', 'last']);
    expect(r.body.rejected).toEqual([
      { index: 1, code: 'validation_failed', detail: expect.any(String) },
      { index: 2, code: 'validation_failed', detail: expect.stringMatching(/1,?600/) },
    ]);
    expect((await t.http.get('/v1/balance').set(auth)).body.balance).toBe(800);
    // A single send of such a text is still a 400 naming the field.
    const single = await t.http
      .post('/v1/messages')
      .set(auth)
      .send({ to: '081234567890', text: 'a'.repeat(1601) });
    expect(single.status).toBe(400);
    expect(single.body).toMatchObject({ code: 'validation_failed', errors: [{ field: 'text' }] });
  });

  it('sendAt: null is no schedule (like reference: null, like an absent sendAt): queued and charged now', async () => {
    const { apiKey } = await tenantOnSandbox(1000, 100);
    const auth = { Authorization: `Bearer ${apiKey}` };
    const r = await t.http
      .post('/v1/messages')
      .set(auth)
      .send({ to: '081234567890', text: 'now, explicitly', reference: null, sendAt: null });
    expect(`${r.status} ${r.body.code ?? ''}`).toBe('202 ');
    expect(r.body).toMatchObject({ status: 'queued', sendAt: null, reference: null });
    expect((await t.http.get('/v1/balance').set(auth)).body.balance).toBe(900);
  });

  it('preview with to: null is a preview without a number (as an absent to), not invalid_msisdn', async () => {
    const { apiKey } = await tenantOnSandbox(1000, 100);
    const r = await t.http
      .post('/v1/messages/preview')
      .set({ Authorization: `Bearer ${apiKey}` })
      .send({ text: 'Halo', to: null });
    expect(`${r.status} ${r.body.code ?? ''}`).toBe('200 ');
    expect(r.body).toEqual({ encoding: 'GSM-7', segments: 1, price: 100, characters: 4, nonGsmCharacters: [] });
  });

  it('preview, scheduling, cancel with refund, list filters and pagination', async () => {
    const { apiKey } = await tenantOnSandbox(10_000, 100);
    const auth = { Authorization: `Bearer ${apiKey}` };
    const pv = await t.http.post('/v1/messages/preview').set(auth).send({ text: 'Привет €' });
    expect(pv.status).toBe(200);
    expect(pv.body).toMatchObject({ encoding: 'UCS-2', segments: 1, price: 100, characters: 8 });
    expect(pv.body.nonGsmCharacters).toContain('П');

    const past = await t.http
      .post('/v1/messages')
      .set(auth)
      .send({ to: '081234567890', text: 'x', sendAt: new Date(Date.now() - 1000).toISOString() });
    expect(past.status).toBe(400);
    const far = await t.http
      .post('/v1/messages')
      .set(auth)
      .send({ to: '081234567890', text: 'x', sendAt: new Date(Date.now() + 36 * 86400_000).toISOString() });
    expect(far.status).toBe(400);

    const sched = await t.http
      .post('/v1/messages')
      .set(auth)
      .send({ to: '081234567890', text: 'later', sendAt: new Date(Date.now() + 3600_000).toISOString() });
    expect(sched.status).toBe(202);
    expect(sched.body.status).toBe('scheduled');
    expect((await t.http.get('/v1/balance').set(auth)).body.balance).toBe(9900);
    const canceled = await t.http.delete(`/v1/messages/${sched.body.id}`).set(auth);
    expect(canceled.status).toBe(200);
    expect(canceled.body).toMatchObject({ status: 'canceled', refunded: true });
    expect((await t.http.get('/v1/balance').set(auth)).body.balance).toBe(10_000);
    const again = await t.http.delete(`/v1/messages/${sched.body.id}`).set(auth);
    expect(again.status).toBe(409);

    for (let i = 0; i < 5; i++)
      await t.http
        .post('/v1/messages')
        .set(auth)
        .send({ to: '081234567890', text: `p${i}`, reference: 'page' });
    const p1 = await t.http.get('/v1/messages?reference=page&limit=2').set(auth);
    expect(p1.body.data.map((m: { text: string }) => m.text)).toEqual(['p4', 'p3']);
    const p2 = await t.http.get(`/v1/messages?reference=page&limit=2&cursor=${p1.body.nextCursor}`).set(auth);
    expect(p2.body.data.map((m: { text: string }) => m.text)).toEqual(['p2', 'p1']);
    const p3 = await t.http.get(`/v1/messages?reference=page&limit=2&cursor=${p2.body.nextCursor}`).set(auth);
    expect(p3.body.data.map((m: { text: string }) => m.text)).toEqual(['p0']);
    expect(p3.body.nextCursor).toBeNull();
    const canceledList = await t.http.get('/v1/messages?status=canceled').set(auth);
    expect(canceledList.body.data).toHaveLength(1);
  });

  it('bad input on send: 4xx problem+json and nothing charged', async () => {
    const { apiKey } = await tenantOnSandbox(10_000, 100);
    const auth = { Authorization: `Bearer ${apiKey}` };
    const cases: [unknown, number, string][] = [
      [{ to: '081234567890', text: '' }, 400, 'validation_failed'],
      [{ text: 'hi' }, 400, 'validation_failed'],
      [{ to: 'abc', text: 'hi' }, 400, 'invalid_msisdn'],
      [{ to: '+6591234567', text: 'hi' }, 400, 'invalid_msisdn'],
      [{ to: '081234567890', text: 'a'.repeat(10_000) }, 400, 'validation_failed'],
      [{ to: '081234567890', text: 'a'.repeat(1600) }, 400, 'validation_failed'],
      [{ to: '081234567890', text: 'nul\u0000byte' }, 400, 'validation_failed'],
      [{ to: '081234567890', text: 'x', extra: 1 }, 400, 'validation_failed'],
      [{ to: 81234567890, text: 'x' }, 400, 'validation_failed'],
      [[{ to: '081234567890', text: 'x' }], 400, 'validation_failed'],
    ];
    for (const [body, status, code] of cases) {
      const r = await t.http
        .post('/v1/messages')
        .set(auth)
        .send(body as object);
      expect({ body, status: r.status, code: r.body.code }).toEqual({ body, status, code });
      expect(r.headers['content-type']).toMatch(/problem\+json/);
    }
    const big = await t.http
      .post('/v1/messages')
      .set(auth)
      .set('Content-Type', 'application/json')
      .send(`{"to":"081234567890","text":"${'a'.repeat(20 * 1024 * 1024)}"}`);
    expect(big.status).toBe(413);
    expect(big.body.code).toBe('payload_too_large');
    const tooMany = await t.http
      .post('/v1/messages/batch')
      .set(auth)
      .send({ messages: Array.from({ length: 1001 }, () => ({ to: '081234567890', text: 'x' })) });
    expect(tooMany.status).toBe(400);
    const empty = await t.http.post('/v1/messages/batch').set(auth).send({ messages: [] });
    expect(empty.status).toBe(400);
    expect((await t.http.get('/v1/balance').set(auth)).body.balance).toBe(10_000);
    expect((await t.http.get('/v1/messages').set(auth)).body.data).toHaveLength(0);
  });

  it('suspended tenant: 403 tenant_suspended; reads keep working', async () => {
    const { apiKey, tenantId } = await tenantOnSandbox(1000);
    await t.http
      .patch(`/v1/admin/tenants/${tenantId}`)
      .set('Authorization', `Bearer ${t.adminToken}`)
      .send({ status: 'suspended' });
    const r = await t.http
      .post('/v1/messages')
      .set('Authorization', `Bearer ${apiKey}`)
      .send({ to: '081234567890', text: 'x' });
    expect(r.status).toBe(403);
    expect(r.body.code).toBe('tenant_suspended');
    expect((await t.http.get('/v1/balance').set('Authorization', `Bearer ${apiKey}`)).body.balance).toBe(1000);
  });

  it('balance_expired during grace: balance kept, sends refused', async () => {
    const { apiKey } = await tenantOnSandbox(1000);
    const auth = { Authorization: `Bearer ${apiKey}` };
    t.clock.advance(100 * 86400_000);
    try {
      const r = await t.http.post('/v1/messages').set(auth).send({ to: '081234567890', text: 'x' });
      expect(r.status).toBe(402);
      expect(r.body.code).toBe('balance_expired');
      expect((await t.http.get('/v1/balance').set(auth)).body).toMatchObject({ balance: 1000, state: 'grace' });
    } finally {
      t.clock.reset();
    }
  });

  it('admin: live provider balance and the provider report reconciled against our messages', async () => {
    const { apiKey, providerAccountId } = await tenantOnSandbox(1000);
    const admin = { Authorization: `Bearer ${t.adminToken}` };
    const bal = await t.http.get(`/v1/admin/provider-accounts/${providerAccountId}/balance`).set(admin);
    expect(bal.status).toBe(200);
    expect(bal.body.live.balance).toBe('1000000');
    expect(bal.body.lastBalance).toBe('1000000');
    expect(JSON.stringify(bal.body)).not.toContain('provider-secret-pw');

    const sent = await t.http
      .post('/v1/messages')
      .set('Authorization', `Bearer ${apiKey}`)
      .send({ to: '081234567890', text: 'report me' });
    const done = await waitFor(
      'the message to be final',
      () =>
        t.http
          .get(`/v1/messages/${sent.body.id}`)
          .set('Authorization', `Bearer ${apiKey}`)
          .then((r) => r.body),
      (b) => b.status === 'delivered',
    );
    // The report is kept and queried by Asia/Jakarta day (the provider's calendar), not the UTC date.
    const day = jakartaDay(t.clock.now());
    const rep = await t.http
      .get(`/v1/admin/provider-accounts/${providerAccountId}/report?start=${day}&end=${day}`)
      .set(admin);
    expect(rep.status).toBe(200);
    expect(rep.body.providerRows).toBeGreaterThanOrEqual(1);
    expect(rep.body.counts.listed - rep.body.counts.unknown).toBeGreaterThanOrEqual(1);
    expect(rep.body.missing.map((m: { messageId: string }) => m.messageId)).not.toContain(done.id);
    const bad = await t.http
      .get(`/v1/admin/provider-accounts/${providerAccountId}/report?start=2026-13-01&end=x`)
      .set(admin);
    expect(bad.status).toBe(400);
  });

  it('a scheduled message is released at sendAt (clock moved) and then submitted', async () => {
    const { apiKey } = await tenantOnSandbox(1000);
    const auth = { Authorization: `Bearer ${apiKey}` };
    const sched = await t.http
      .post('/v1/messages')
      .set(auth)
      .send({ to: '081234567890', text: 'at ten', sendAt: new Date(Date.now() + 600_000).toISOString() });
    expect(sched.body.status).toBe('scheduled');
    await new Promise((r) => setTimeout(r, 300));
    expect((await t.http.get(`/v1/messages/${sched.body.id}`).set(auth)).body.status).toBe('scheduled');
    t.clock.advance(601_000);
    try {
      const done = await waitFor(
        'the scheduled message to be delivered',
        () =>
          t.http
            .get(`/v1/messages/${sched.body.id}`)
            .set(auth)
            .then((r) => r.body),
        (b) => b.status === 'delivered',
      );
      expect(done.status).toBe('delivered');
    } finally {
      t.clock.reset();
    }
  });

  it('per-tenant rate limit: 429 rate_limited with Retry-After and RateLimit headers', async () => {
    const { apiKey, tenantId } = await tenantOnSandbox(100_000, 1);
    await t.http
      .patch(`/v1/admin/tenants/${tenantId}`)
      .set('Authorization', `Bearer ${t.adminToken}`)
      .send({ rateLimitPerSecond: 3 });
    t.clock.advance(1100); // past the tenant settings cache (1 s of the app's Clock)
    const sends = [];
    for (let i = 0; i < 6; i++)
      sends.push(
        await t.http
          .post('/v1/messages')
          .set('Authorization', `Bearer ${apiKey}`)
          .send({ to: '081234567890', text: `rl ${i}` }),
      );
    const limited = sends.filter((r) => r.status === 429);
    expect(limited.length).toBeGreaterThanOrEqual(2);
    expect(limited[0].body.code).toBe('rate_limited');
    expect(Number(limited[0].headers['retry-after'])).toBeGreaterThanOrEqual(1);
    expect(limited[0].headers['ratelimit-limit']).toBe('3');
    expect(limited[0].headers['ratelimit-remaining']).toBe('0');
  });

  it('backpressure: while the tenant row is locked, at most 20,000 items wait; more get 429 and nothing is lost', async () => {
    const { apiKey, tenantId, providerAccountId } = await tenantOnSandbox(100_000, 1);
    const auth = { Authorization: `Bearer ${apiKey}` };
    // Charging is what is tested: keep its 20,000+ messages out of the dispatcher (and out of later test files' way).
    await t.http
      .patch(`/v1/admin/provider-accounts/${providerAccountId}`)
      .set('Authorization', `Bearer ${t.adminToken}`)
      .send({ status: 'disabled' });
    await t.http
      .patch(`/v1/admin/tenants/${tenantId}`)
      .set('Authorization', `Bearer ${t.adminToken}`)
      .send({ rateLimitPerSecond: 1000 });
    t.clock.advance(1100); // past the tenant settings cache (1 s of the app's Clock)
    const tenantUuid = tenantId.slice(4).replace(/(.{8})(.{4})(.{4})(.{4})(.{12})/, '$1-$2-$3-$4-$5');
    const batch = { messages: Array.from({ length: 1000 }, (_, i) => ({ to: '081234567890', text: `bp ${i}` })) };
    const blocker = t.db.createQueryRunner();
    await blocker.connect();
    await blocker.startTransaction();
    await blocker.query(`SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE`, [tenantUuid]);
    let results: { status: number; body: { accepted?: unknown[]; code?: string }; headers: Record<string, string> }[];
    try {
      let answered = 0;
      const pending = Array.from({ length: 23 }, () =>
        t.http
          .post('/v1/messages/batch')
          .set(auth)
          .send(batch)
          .then((r) => {
            answered++;
            return r;
          }),
      );
      // While the row is locked nothing can be charged: one batch is in its (blocked) transaction,
      // 20 batches (20,000 items) wait behind it, and the other two are refused as soon as they
      // arrive. Wait for those two answers, not for a fixed time (parsing 23,000 items takes longer
      // on a busy machine).
      const deadline = Date.now() + 20_000;
      while (answered < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      await blocker.commitTransaction();
      results = await Promise.all(pending);
    } finally {
      if (blocker.isTransactionActive) await blocker.rollbackTransaction();
      await blocker.release();
    }
    const accepted = results.filter((r) => r.status === 202);
    const refused = results.filter((r) => r.status === 429);
    expect(accepted.length + refused.length).toBe(23);
    expect(refused.length).toBe(2);
    expect(refused[0].body.code).toBe('rate_limited');
    expect(refused[0].headers['retry-after']).toBe('1');
    const charged = accepted.reduce((n, r) => n + (r.body.accepted?.length ?? 0), 0);
    expect(charged).toBe(accepted.length * 1000);
    expect((await t.http.get('/v1/balance').set(auth)).body.balance).toBe(100_000 - charged);
  });

  it('Idempotency-Key taken over from a slow holder: the slow one rolls back, one charge', async () => {
    const { apiKey, tenantId } = await tenantOnSandbox(1000, 100);
    const tenantUuid = tenantId.slice(4).replace(/(.{8})(.{4})(.{4})(.{4})(.{12})/, '$1-$2-$3-$4-$5');
    const idem = t.app.get(IdempotencyService);
    const accept = t.app.get(AcceptService);
    const item = {
      msisdn: '6281234567890',
      text: 'slow',
      reference: null,
      segments: 1,
      encoding: 'GSM-7' as const,
      sendAt: null,
    };
    const respond = () => ({ status: 202, body: { ok: true } });
    const a = await idem.begin(tenantUuid, 'slow-key', 'h');
    expect(a.kind).toBe('new');
    t.clock.advance(61_000);
    try {
      const b = await idem.begin(tenantUuid, 'slow-key', 'h');
      expect(b.kind).toBe('new');
      if (a.kind !== 'new' || b.kind !== 'new') throw new Error('unreachable');
      await expect(
        accept.accept(tenantUuid, [item], { key: 'slow-key', owner: a.owner, respond }),
      ).rejects.toMatchObject({ code: 'idempotency_in_progress' });
      expect((await t.http.get('/v1/balance').set('Authorization', `Bearer ${apiKey}`)).body.balance).toBe(1000);
      const [ok] = await accept.accept(tenantUuid, [item], { key: 'slow-key', owner: b.owner, respond });
      expect(ok.ok).toBe(true);
      expect((await t.http.get('/v1/balance').set('Authorization', `Bearer ${apiKey}`)).body.balance).toBe(900);
      await idem.abandon(tenantUuid, 'slow-key', a.owner);
      expect(await idem.begin(tenantUuid, 'slow-key', 'h')).toEqual({
        kind: 'replay',
        status: 202,
        body: { ok: true },
      });
    } finally {
      t.clock.reset();
    }
  });

  it('NUL bytes: a 400 in queries, stripped from provider reports (never a 500)', async () => {
    const { apiKey, providerAccount } = await tenantOnSandbox(1000);
    const r = await t.http.get('/v1/messages?reference=a%00b').set('Authorization', `Bearer ${apiKey}`);
    expect(r.status).toBe(400);
    expect(r.body.code).toBe('validation_failed');
    const path = new URL(providerAccount.dlrCallbackUrl).pathname;
    const dlr = await t.http.get(
      `${path}?session_id=99999999&error_code=22&error_message=Deli%00vered&msisdn=62812%00`,
    );
    expect(dlr.status).toBe(200);
    const [row] = await t.db.query(
      `SELECT text, msisdn FROM delivery_reports WHERE provider_message_id = '99999999' ORDER BY seq DESC LIMIT 1`,
    );
    expect(row).toEqual({ text: 'Delivered', msisdn: '62812' });
  });

  it('dispatcher exists and drains', () => {
    expect(t.app.get(DispatcherService).options.loops).toBeGreaterThan(0);
  });
});

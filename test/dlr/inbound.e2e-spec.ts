import { startSandbox, SandboxHandle } from '../../src/sandbox';
import { INBOUND_EVENTS, InboundEventsEmitter, InboundReceivedEvent } from '../../src/dlr/inbound-events';
import { InboxPollerService, InboxPollOutcome } from '../../src/dlr/inbox-poller.service';
import {
  bearer,
  createAdminUser,
  createTenant,
  expectProblem,
  startTestApp,
  TestApp,
  unique,
  uuidOf,
} from '../support/app';
import { waitFor as waitForCondition } from '../support/wait';

const INTERVAL_MS = 60_000;
const DAY_MS = 86_400_000;

/** The one `waitFor` (test/support/wait.ts): it throws on timeout (this copy used to return the last value silently). */
const waitFor = <T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 10_000): Promise<T> =>
  waitForCondition('the condition', fn, ok, ms);

describe('inbound SMS read from inbox.php (sandbox provider)', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;
  let poller: InboxPollerService;
  let events: InboundReceivedEvent[];

  beforeAll(async () => {
    sandbox = await startSandbox({ knobs: { dlrDelayMs: [5, 20], latencyMs: [0, 0] } });
    t = await startTestApp({ PROVIDER_SEND_RATE_PER_SECOND: '0', DISPATCH_POLL_MS: '50' });
    poller = t.app.get(InboxPollerService);
    events = [];
    t.app.get<InboundEventsEmitter>(INBOUND_EVENTS).on('received', (e: InboundReceivedEvent) => events.push(e));
  });
  afterAll(async () => {
    await t.close();
    await sandbox.close();
  });

  /** A tenant on a new provider account that the sandbox knows (same username and password). */
  async function tenantOnSandbox(balance = 0) {
    const tenant = await createTenant(t, { balance, baseUrl: sandbox.url });
    sandbox.addAccount({
      username: tenant.providerAccount.username,
      password: 'provider-secret-pw',
      balance: '1000000',
    });
    return { ...tenant, username: tenant.providerAccount.username as string };
  }

  /** Another tenant on an existing provider account. */
  async function tenantOnAccount(providerAccountId: string, balance: number) {
    const admin = bearer(t.adminToken);
    const ten = await t.http
      .post('/v1/admin/tenants')
      .set(admin)
      .send({ name: unique('tenant'), providerAccountId, pricePerSegment: 100 });
    expect(ten.status).toBe(201);
    expect(
      (await t.http.post(`/v1/admin/tenants/${ten.body.id}/topups`).set(admin).send({ amount: balance })).status,
    ).toBe(201);
    const key = await t.http.post(`/v1/admin/tenants/${ten.body.id}/api-keys`).set(admin).send({ name: 'k' });
    return { tenantId: ten.body.id as string, apiKey: key.body.key as string };
  }

  const outcomeOf = (outcomes: InboxPollOutcome[], providerAccountId: string) =>
    outcomes.filter((o) => o.providerAccountId === uuidOf(providerAccountId));

  const inboundOf = async (apiKey: string) => {
    const res = await t.http.get('/v1/inbound-messages').set(bearer(apiKey));
    expect(res.status).toBe(200);
    return res.body.data as Array<Record<string, unknown>>;
  };

  async function send(apiKey: string, to: string, text: string) {
    const res = await t.http.post('/v1/messages').set(bearer(apiKey)).send({ to, text });
    expect(res.status).toBe(202);
    // Let the dispatcher submit it before the clock moves (its leases read the same clock).
    await waitFor(
      () =>
        t.http
          .get(`/v1/messages/${res.body.id}`)
          .set(bearer(apiKey))
          .then((r) => r.body.status as string),
      (s) => s !== 'queued',
    );
    return res.body.id as string;
  }

  it('delivers an inbound SMS to the only tenant on the account, and to nobody else', async () => {
    const tenant = await tenantOnSandbox();
    const other = await tenantOnSandbox();
    const receivedAt = new Date(Math.floor(t.clock.now().getTime() / 1000) * 1000 - 5000);
    sandbox.addInbox(tenant.username, '6281234567890', 'YA, saya mau', receivedAt);
    const before = events.length;

    const outcomes = await poller.pollDue();
    expect(outcomeOf(outcomes, tenant.providerAccountId)).toEqual([
      { kind: 'polled', providerAccountId: uuidOf(tenant.providerAccountId), stored: 1, duplicates: 0, unrouted: 0 },
    ]);
    expect(outcomeOf(outcomes, other.providerAccountId)).toMatchObject([{ kind: 'polled', stored: 0 }]);

    const [inbound, ...rest] = await inboundOf(tenant.apiKey);
    expect(rest).toEqual([]);
    expect(inbound).toEqual({
      id: expect.stringMatching(/^inb_[0-9a-f]{32}$/),
      from: '6281234567890',
      text: 'YA, saya mau',
      receivedAt: receivedAt.toISOString(),
      providerAccountId: tenant.providerAccountId,
    });
    expect(await inboundOf(other.apiKey)).toEqual([]);

    // The webhook seam saw exactly this row, for this tenant, with the list's shape.
    const announced = events.slice(before);
    expect(announced).toHaveLength(1);
    expect(announced[0].tenantId).toBe(uuidOf(tenant.tenantId));
    expect(announced[0].inboundMessageId).toBe(uuidOf(inbound.id as string));
    expect(JSON.parse(JSON.stringify(announced[0].message))).toEqual(inbound);

    const [row] = await t.db.query(`SELECT raw, route, dedupe_key FROM inbound_messages WHERE id = $1`, [
      uuidOf(inbound.id as string),
    ]);
    expect(row.route).toBe('account');
    expect(row.raw).toMatchObject({ msisdn: '6281234567890', message: 'YA, saya mau' });
    expect(row.dedupe_key).toMatch(/^v1:[0-9a-f]{64}:1$/);

    const metrics = await t.http.get('/metrics');
    expect(metrics.text).toMatch(/^gerbang_inbound_stored_total [1-9]/m);
    expect(metrics.text).toMatch(/^gerbang_inbound_polls_total\{outcome="polled"\} [1-9]/m);
  });

  it('stores an inbox row seen on two polls once, and reads each account only every INBOX_POLL_SECONDS', async () => {
    const tenant = await tenantOnSandbox();
    sandbox.addInbox(tenant.username, '6281299990001', 'STOP');
    const before = events.length;
    expect(outcomeOf(await poller.pollDue(), tenant.providerAccountId)).toMatchObject([{ stored: 1, duplicates: 0 }]);

    // Not due yet: the account is not read again.
    expect(outcomeOf(await poller.pollDue(), tenant.providerAccountId)).toEqual([]);

    t.clock.advance(INTERVAL_MS);
    sandbox.addInbox(tenant.username, '6281299990001', 'STOP'); // the same text again: a second SMS
    sandbox.addInbox(tenant.username, '6281299990002', 'INFO');
    expect(outcomeOf(await poller.pollDue(), tenant.providerAccountId)).toMatchObject([
      { kind: 'polled', stored: 2, duplicates: 1, unrouted: 0 },
    ]);
    t.clock.advance(INTERVAL_MS);
    expect(outcomeOf(await poller.pollDue(), tenant.providerAccountId)).toMatchObject([
      { kind: 'polled', stored: 0, duplicates: 3 },
    ]);

    const texts = (await inboundOf(tenant.apiKey)).map((m) => `${m.from as string} ${m.text as string}`).sort();
    expect(texts).toEqual(['6281299990001 STOP', '6281299990001 STOP', '6281299990002 INFO']);
    expect(events.length - before).toBe(3);
    expect((await t.http.get('/metrics')).text).toMatch(/^gerbang_inbound_duplicates_total [1-9]/m);
  });

  it('stores a row with a NUL character (without it) instead of failing the inbox on every poll', async () => {
    const tenant = await tenantOnSandbox();
    sandbox.addInbox(tenant.username, '6281255550001', 'ya\u0000tidak');
    expect(outcomeOf(await poller.pollDue(), tenant.providerAccountId)).toMatchObject([{ kind: 'polled', stored: 1 }]);
    t.clock.advance(INTERVAL_MS);
    expect(outcomeOf(await poller.pollDue(), tenant.providerAccountId)).toMatchObject([{ stored: 0, duplicates: 1 }]);
    expect((await inboundOf(tenant.apiKey)).map((m) => m.text)).toEqual(['yatidak']);
  });

  it('reads a one-message-per-line inbox whose first SMS holds more semicolons or tabs than the line has commas, instead of failing it on every poll', async () => {
    // A provider that lists `msisdn,received_at,message` lines (the sandbox's `lines` format).
    const lines = await startSandbox({ knobs: { latencyMs: [0, 0], inboxFormat: 'lines' } });
    try {
      const tenant = await createTenant(t, { baseUrl: lines.url });
      const username = tenant.providerAccount.username as string;
      lines.addAccount({ username, password: 'provider-secret-pw', balance: '1000000' });
      // Keyword SMS ("REG;name;city;age") are common; so is text pasted with tabs.
      lines.addInbox(username, '6281266660001', 'REG;BUDI;JAKARTA;30');
      lines.addInbox(username, '6281266660002', 'YA');
      lines.addInbox(username, '6281266660003', 'nama\tumur\tkota');
      expect(outcomeOf(await poller.pollDue(), tenant.providerAccountId)).toMatchObject([
        { kind: 'polled', stored: 3, duplicates: 0 },
      ]);
      expect((await inboundOf(tenant.apiKey)).map((m) => `${m.from as string} ${m.text as string}`).sort()).toEqual([
        '6281266660001 REG;BUDI;JAKARTA;30',
        '6281266660002 YA',
        '6281266660003 nama\tumur\tkota',
      ]);
      // Read the same way on the next poll: stored once.
      t.clock.advance(INTERVAL_MS);
      expect(outcomeOf(await poller.pollDue(), tenant.providerAccountId)).toMatchObject([
        { kind: 'polled', stored: 0, duplicates: 3 },
      ]);
    } finally {
      await lines.close();
    }
  });

  it('stores a routed row and its event together: a failing event hook leaves nothing, the next poll stores both', async () => {
    const tenant = await tenantOnSandbox();
    sandbox.addInbox(tenant.username, '6281266660001', 'first try fails');
    const emitter = t.app.get<InboundEventsEmitter>(INBOUND_EVENTS);
    const failing = () => {
      throw new Error('webhook outbox unavailable');
    };
    emitter.on('received', failing);
    const before = events.length;
    try {
      expect(outcomeOf(await poller.pollDue(), tenant.providerAccountId)).toMatchObject([
        { kind: 'failed', failures: 1, reason: 'webhook outbox unavailable' },
      ]);
    } finally {
      emitter.off('received', failing);
    }
    expect(await inboundOf(tenant.apiKey)).toEqual([]);
    expect(
      (
        await t.db.query(`SELECT count(*)::int AS n FROM inbound_messages WHERE provider_account_id = $1`, [
          uuidOf(tenant.providerAccountId),
        ])
      )[0].n,
    ).toBe(0);

    t.clock.advance(2 * INTERVAL_MS); // the backoff after one failure
    expect(outcomeOf(await poller.pollDue(), tenant.providerAccountId)).toMatchObject([{ kind: 'polled', stored: 1 }]);
    expect((await inboundOf(tenant.apiKey)).map((m) => m.text)).toEqual(['first try fails']);
    const announced = events.slice(before).filter((e) => e.tenantId === uuidOf(tenant.tenantId));
    expect(announced.map((e) => e.message.text)).toEqual(['first try fails', 'first try fails']); // the rolled-back one, then the stored one
  });

  it('with several tenants on one account: routes to the last sender to that number within 7 days, else unrouted', async () => {
    const a = await tenantOnSandbox(10_000);
    const b = await tenantOnAccount(a.providerAccountId, 10_000);
    await send(a.apiKey, '081211110001', 'from A');
    t.clock.advance(60_000);
    await send(b.apiKey, '0812-1111-0001', 'from B, later');
    await send(a.apiKey, '081211110002', 'from A to another number');

    sandbox.addInbox(a.username, '6281211110001', 'reply to B', t.clock.now());
    sandbox.addInbox(a.username, '+6281211110002', 'reply to A', t.clock.now());
    sandbox.addInbox(a.username, '6281211110003', 'nobody wrote to me', t.clock.now());
    expect(outcomeOf(await poller.pollDue(), a.providerAccountId)).toMatchObject([
      { kind: 'polled', stored: 3, duplicates: 0, unrouted: 1 },
    ]);
    expect((await inboundOf(b.apiKey)).map((m) => [m.from, m.text])).toEqual([['6281211110001', 'reply to B']]);
    expect((await inboundOf(a.apiKey)).map((m) => [m.from, m.text])).toEqual([['6281211110002', 'reply to A']]);

    // Six days after B's message the number writes again: still B's.
    t.clock.advance(6 * DAY_MS);
    sandbox.addInbox(a.username, '6281211110001', 'six days later', t.clock.now());
    expect(outcomeOf(await poller.pollDue(), a.providerAccountId)).toMatchObject([{ stored: 1, unrouted: 0 }]);
    // Eight days after it: B's message is out of the window, and nobody else wrote to the number since.
    t.clock.advance(2 * DAY_MS);
    sandbox.addInbox(a.username, '6281211110001', 'late reply', t.clock.now());
    expect(outcomeOf(await poller.pollDue(), a.providerAccountId)).toMatchObject([{ stored: 1, unrouted: 1 }]);
    expect((await inboundOf(b.apiKey)).map((m) => m.text)).toEqual(['six days later', 'reply to B']);

    const admin = bearer(t.adminToken);
    const unrouted = await t.http.get('/v1/admin/inbound-messages?unrouted=true&limit=500').set(admin);
    expect(unrouted.status).toBe(200);
    const mine = (unrouted.body.data as Array<Record<string, unknown>>).filter(
      (m) => m.providerAccountId === a.providerAccountId,
    );
    expect(mine.map((m) => [m.text, m.tenantId, m.route])).toEqual([
      ['late reply', null, 'unrouted'],
      ['nobody wrote to me', null, 'unrouted'],
    ]);
    expect(mine[0].raw).toMatchObject({ msisdn: '6281211110001', message: 'late reply' });

    const routed = await t.http.get('/v1/admin/inbound-messages?unrouted=false&limit=500').set(admin);
    const routedHere = (routed.body.data as Array<Record<string, unknown>>)
      .filter((m) => m.providerAccountId === a.providerAccountId)
      .map((m) => [m.text, m.tenantId, m.route]);
    expect(routedHere.sort()).toEqual([
      ['reply to A', a.tenantId, 'last_sender'],
      ['reply to B', b.tenantId, 'last_sender'],
      ['six days later', b.tenantId, 'last_sender'],
    ]);
    const all = await t.http.get('/v1/admin/inbound-messages?limit=500').set(admin);
    expect((all.body.data as unknown[]).length).toBe(unrouted.body.data.length + routed.body.data.length);

    expectProblem(await t.http.get('/v1/admin/inbound-messages?unrouted=yes').set(admin), 400, 'validation_failed');
    expectProblem(await t.http.get('/v1/admin/inbound-messages').set(bearer(a.apiKey)), 403, 'forbidden');
    const billing = await createAdminUser(t, 'billing');
    expectProblem(await t.http.get('/v1/admin/inbound-messages').set(bearer(billing.token)), 403, 'forbidden');
    expectProblem(await t.http.get('/v1/inbound-messages'), 401, 'unauthorized');
  });

  it('routes a reply to the tenant that wrote before it arrived, not to one that wrote after it (a late poll)', async () => {
    const a = await tenantOnSandbox(10_000);
    const b = await tenantOnAccount(a.providerAccountId, 10_000);
    await send(a.apiKey, '081211120001', 'from A');
    t.clock.advance(60_000);
    const repliedAt = t.clock.now();
    t.clock.advance(10 * 60_000);
    await send(b.apiKey, '081211120001', 'from B, ten minutes after the reply');
    sandbox.addInbox(a.username, '6281211120001', 'reply to A', repliedAt);
    expect(outcomeOf(await poller.pollDue(), a.providerAccountId)).toMatchObject([{ stored: 1, unrouted: 0 }]);
    expect((await inboundOf(a.apiKey)).map((m) => m.text)).toEqual(['reply to A']);
    expect(await inboundOf(b.apiKey)).toEqual([]);

    // The provider's clock may run a little behind ours: a reply stamped shortly before the only send to
    // that number (within 5 minutes) is still that sender's.
    const c = await tenantOnSandbox(10_000);
    const d = await tenantOnAccount(c.providerAccountId, 10_000);
    const stamped = new Date(t.clock.now().getTime() - 2 * 60_000);
    await send(d.apiKey, '081211120002', 'from D');
    sandbox.addInbox(c.username, '6281211120002', 'reply to D, stamped by a slow clock', stamped);
    expect(outcomeOf(await poller.pollDue(), c.providerAccountId)).toMatchObject([{ stored: 1, unrouted: 0 }]);
    expect((await inboundOf(d.apiKey)).map((m) => m.text)).toEqual(['reply to D, stamped by a slow clock']);
  });

  it('a failing account backs off without stopping the others', async () => {
    const unreachable = await createTenant(t, { baseUrl: 'http://127.0.0.1:9/masking' });
    const wrongPassword = await createTenant(t, { baseUrl: sandbox.url });
    sandbox.addAccount({ username: wrongPassword.providerAccount.username, password: 'not-the-one', balance: '1' });
    const healthy = await tenantOnSandbox();
    sandbox.addInbox(healthy.username, '6281277770001', 'still here');

    const first = await poller.pollDue();
    expect(outcomeOf(first, unreachable.providerAccountId)).toMatchObject([
      { kind: 'failed', failures: 1, reason: expect.stringMatching(/^unreachable/) },
    ]);
    expect(outcomeOf(first, wrongPassword.providerAccountId)).toMatchObject([
      { kind: 'failed', failures: 1, reason: expect.stringMatching(/^inbox\.php/) },
    ]);
    expect(outcomeOf(first, healthy.providerAccountId)).toMatchObject([{ kind: 'polled', stored: 1 }]);
    expect((await inboundOf(healthy.apiKey)).map((m) => m.text)).toEqual(['still here']);

    const [state] = await t.db.query(
      `SELECT failures, last_error, next_poll_at, last_polled_at, claim_id FROM inbox_polls WHERE provider_account_id = $1`,
      [uuidOf(wrongPassword.providerAccountId)],
    );
    expect(state).toMatchObject({ failures: 1, claim_id: null });
    expect(state.last_error).toMatch(/Username atau Password salah/);
    expect(state.last_error).not.toMatch(/provider-secret-pw/);
    // Backoff: twice the interval after the first failure.
    expect(state.next_poll_at.getTime() - state.last_polled_at.getTime()).toBeGreaterThanOrEqual(2 * INTERVAL_MS);

    // One interval later the healthy account is read again, the failing ones are still waiting.
    t.clock.advance(INTERVAL_MS);
    sandbox.addInbox(healthy.username, '6281277770001', 'and again');
    const second = await poller.pollDue();
    expect(outcomeOf(second, healthy.providerAccountId)).toMatchObject([{ kind: 'polled', stored: 1 }]);
    expect(outcomeOf(second, unreachable.providerAccountId)).toEqual([]);
    expect(outcomeOf(second, wrongPassword.providerAccountId)).toEqual([]);

    // The password is fixed on the provider's side; the next due read succeeds and the backoff resets.
    sandbox.addAccount({
      username: wrongPassword.providerAccount.username,
      password: 'provider-secret-pw',
      balance: '1',
    });
    sandbox.addInbox(wrongPassword.providerAccount.username, '6281277770002', 'finally');
    t.clock.advance(INTERVAL_MS);
    const third = await poller.pollDue();
    expect(outcomeOf(third, wrongPassword.providerAccountId)).toMatchObject([{ kind: 'polled', stored: 1 }]);
    expect(outcomeOf(third, unreachable.providerAccountId)).toMatchObject([{ kind: 'failed', failures: 2 }]);
    const [fixed] = await t.db.query(`SELECT failures, last_error FROM inbox_polls WHERE provider_account_id = $1`, [
      uuidOf(wrongPassword.providerAccountId),
    ]);
    expect(fixed).toEqual({ failures: 0, last_error: null });
  });

  it('concurrent pollers (as several gateway processes) never read the same inbox in one round', async () => {
    const tenants = await Promise.all([tenantOnSandbox(), tenantOnSandbox(), tenantOnSandbox()]);
    for (const [i, tenant] of tenants.entries()) sandbox.addInbox(tenant.username, `628127777100${i}`, `hello ${i}`);
    t.clock.advance(30 * DAY_MS); // everything is due, failing accounts included
    const rounds = await Promise.all([poller.pollDue(), poller.pollDue(), poller.pollDue()]);
    const claimed = rounds.flat().map((o) => o.providerAccountId);
    expect(new Set(claimed).size).toBe(claimed.length);
    for (const tenant of tenants) {
      expect(claimed.filter((id) => id === uuidOf(tenant.providerAccountId))).toHaveLength(1);
      expect(await inboundOf(tenant.apiKey)).toHaveLength(1);
    }
  });

  it('the scheduler reads inboxes on its own and stops on shutdown', async () => {
    const tenant = await tenantOnSandbox();
    sandbox.addInbox(tenant.username, '6281288880001', 'via the scheduler');
    poller.start(50);
    try {
      const list = await waitFor(
        () => inboundOf(tenant.apiKey),
        (l) => l.length === 1,
      );
      expect(list.map((m) => m.text)).toEqual(['via the scheduler']);
    } finally {
      await poller.stop();
    }
    // Stopped: a new row is not read any more, however much time passes.
    sandbox.addInbox(tenant.username, '6281288880001', 'after stop');
    t.clock.advance(DAY_MS);
    await new Promise((r) => setTimeout(r, 300));
    expect(await inboundOf(tenant.apiKey)).toHaveLength(1);
  });
});

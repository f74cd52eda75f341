import { Logger } from '@nestjs/common';
import { DateTime } from 'luxon';
import { register } from 'prom-client';
import { startSandbox, SandboxHandle } from '../../src/sandbox';
import { HttpProviderClient } from '../../src/provider/client/http-provider-client';
import { ProviderClients } from '../../src/provider/provider-clients.service';
import { ProviderWalletService } from '../../src/provider/provider-wallet.service';
import { bearer, expectProblem, startTestApp, TestApp, unique, uuidOf, reachableCallbackUrl } from '../support/app';
import { waitFor as waitForCondition } from '../support/wait';

/**
 * The provider's wallet watch and per-account send settings, end to end: the real app on real
 * PostgreSQL, the sandbox provider over HTTP (its balance, expiry and top-ups are the provider's).
 * Time moves with the injected Clock; waits are on conditions.
 */

/** The one `waitFor` (test/support/wait.ts), with this suite's longer default for a loaded machine. */
const waitFor = <T>(what: string, probe: () => T | Promise<T>, done: (v: T) => boolean, ms = 20_000): Promise<T> =>
  waitForCondition(what, probe, done, ms);

async function metricValue(name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = register.getSingleMetric(name);
  if (!metric) return undefined;
  const { values } = await metric.get();
  return values.find((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
}

describe('provider wallet watch and per-account send settings (sandbox)', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;
  let wallet: ProviderWalletService;
  let admin: Record<string, string>;

  beforeAll(async () => {
    sandbox = await startSandbox({ knobs: { dlrDelayMs: [5, 20], latencyMs: [0, 0] } });
    t = await startTestApp({ DISPATCH_POLL_MS: '50', PROVIDER_SEND_RATE_PER_SECOND: '0' });
    await t.app.listen(0, '127.0.0.1');
    wallet = t.app.get(ProviderWalletService);
    admin = bearer(t.adminToken);
  });
  afterAll(async () => {
    t.clock.reset();
    await t.close();
    await sandbox.close();
  });
  afterEach(() => {
    t.clock.reset();
    sandbox.setKnobs({ dropDlrRate: 0 });
  });

  /**
   * A sandbox provider user first (so no poll ever sees wrong credentials), then the gateway's provider
   * account for it, a tenant on it with credit, and an API key.
   */
  async function setup(
    sandboxAccount: { balance: string; expiresAt?: Date; pricePerSms?: string },
    accountFields: Record<string, unknown> = {},
  ) {
    const username = unique('w');
    sandbox.addAccount({ username, password: 'provider-secret-pw', ...sandboxAccount });
    const pac = await t.http
      .post('/v1/admin/provider-accounts')
      .set(admin)
      .send({ name: unique('pac'), baseUrl: sandbox.url, username, password: 'provider-secret-pw', ...accountFields });
    expect(pac.status).toBe(201);
    const port = (t.app.getHttpServer().address() as { port: number }).port;
    sandbox.setCallbackUrl(username, reachableCallbackUrl(pac.body.dlrCallbackUrl, port));
    const ten = await t.http
      .post('/v1/admin/tenants')
      .set(admin)
      .send({ name: unique('tenant'), providerAccountId: pac.body.id, pricePerSegment: 100 });
    expect(ten.status).toBe(201);
    expect(
      (await t.http.post(`/v1/admin/tenants/${ten.body.id}/topups`).set(admin).send({ amount: 100_000 })).status,
    ).toBe(201);
    const key = await t.http.post(`/v1/admin/tenants/${ten.body.id}/api-keys`).set(admin).send({ name: 'k' });
    return { username, pac: pac.body.id as string, pacUuid: uuidOf(pac.body.id), apiKey: key.body.key as string };
  }

  const account = async (pac: string) => (await t.http.get(`/v1/admin/provider-accounts/${pac}`).set(admin)).body;
  const checks = (pacUuid: string) =>
    t.db.query<{ source: string; outcome: string; balance: string | null; effect: string | null }[]>(
      `SELECT source, outcome, balance, effect FROM provider_balance_checks WHERE provider_account_id = $1 ORDER BY id`,
      [pacUuid],
    );
  const messages = (pacUuid: string) =>
    t.db.query<
      { status: string; attempts: number; failure_reason: string | null; provider_status_code: number | null }[]
    >(`SELECT status, attempts, failure_reason, provider_status_code FROM messages WHERE provider_account_id = $1`, [
      pacUuid,
    ]);
  const send = async (apiKey: string, text: string) => {
    const r = await t.http.post('/v1/messages').set(bearer(apiKey)).send({ to: '081234567890', text });
    expect(r.status).toBe(202);
    return r.body.id as string;
  };

  /** Waits until the message has its provider id (it was submitted); returns the id. */
  const submittedPid = async (id: string) =>
    (
      await waitFor(
        'submitted',
        () =>
          t.db.query<{ provider_message_id: string | null }[]>(
            `SELECT provider_message_id FROM messages WHERE id = $1`,
            [uuidOf(id)],
          ),
        (ms) => ms[0]?.provider_message_id !== null,
      )
    )[0].provider_message_id!;

  /**
   * Proof that the dispatcher has run claims since `held` messages were queued, without a fixed sleep:
   * a message queued after them on a healthy account goes all the way to delivered.
   */
  async function dispatcherHasMovedOn() {
    const control = await setup({ balance: '1000000' });
    const id = await send(control.apiKey, unique('control'));
    await waitFor(
      'the control message',
      () =>
        t.http
          .get(`/v1/messages/${id}`)
          .set(bearer(control.apiKey))
          .then((r) => r.body.status as string),
      (s) => s === 'delivered',
    );
  }

  it('low balance: alert flag, reasons and metric; raised once, kept in history; a PATCHed threshold shows at once', async () => {
    // Read before the account exists: the scheduler may poll it as soon as it does.
    const before = (await metricValue('gerbang_provider_balance_alerts_total', { reason: 'low_balance' })) ?? 0;
    // The warn lines the wallet writes (recorded, then passed on to the real logger).
    const logger = (wallet as unknown as { logger: Logger }).logger;
    const warnLines: unknown[][] = [];
    const realWarn = logger.warn.bind(logger);
    logger.warn = (...args: unknown[]) => (warnLines.push(args), realWarn(...(args as [unknown])));
    const a = await setup({ balance: '1000' }, { lowBalanceThreshold: 5000 });
    expect(await wallet.check(a.pacUuid, 'poll')).toMatchObject({
      kind: 'balance',
      reasons: ['low_balance'],
      effect: null,
    });
    await wallet.check(a.pacUuid, 'poll');
    expect(await account(a.pac)).toMatchObject({
      lastBalance: '1000',
      lowBalanceThreshold: 5000,
      alert: true,
      alertReasons: ['low_balance'],
      heldUntil: null,
    });
    expect(await metricValue('gerbang_provider_balance_alert', { account: a.pacUuid })).toBe(1);
    expect(await metricValue('gerbang_provider_balance', { account: a.pacUuid })).toBe(1000);
    // Both polls kept; the alert counted once (when it appeared), not on every poll.
    expect(await metricValue('gerbang_provider_balance_alerts_total', { reason: 'low_balance' })).toBe(before + 1);
    logger.warn = realWarn;
    const alertLines = warnLines.filter(
      ([fields, msg]) => msg === 'provider balance alert' && (fields as { accountId: string }).accountId === a.pacUuid,
    );
    expect(alertLines).toEqual([
      [expect.objectContaining({ reasons: ['low_balance'], balance: '1000' }), 'provider balance alert'],
    ]);
    // (The scheduler may have made a first poll of its own before ours.)
    const polls = (await checks(a.pacUuid)).filter((c) => c.source === 'poll');
    expect(polls.length).toBeGreaterThanOrEqual(2);
    for (const poll of polls)
      expect(poll).toEqual({ source: 'poll', outcome: 'balance', balance: '1000', effect: null });

    const patched = await t.http
      .patch(`/v1/admin/provider-accounts/${a.pac}`)
      .set(admin)
      .send({ lowBalanceThreshold: 500 });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ lowBalanceThreshold: 500, alert: false, alertReasons: [] });

    // The live read answers from balance.php and shows the last value and the alert too.
    sandbox.topUp(a.username, '100');
    const live = await t.http.get(`/v1/admin/provider-accounts/${a.pac}/balance`).set(admin);
    expect(live.status).toBe(200);
    expect(live.body).toMatchObject({ live: { balance: '1100' }, lastBalance: '1100', alert: false, heldUntil: null });
    expect((await checks(a.pacUuid)).at(-1)).toMatchObject({ source: 'live', balance: '1100' });
  });

  it('expiring within 14 days: alert, not held', async () => {
    const a = await setup({ balance: '1000000', expiresAt: new Date(Date.now() + 10 * 86_400_000) });
    await wallet.check(a.pacUuid, 'poll');
    expect(await account(a.pac)).toMatchObject({ alert: true, alertReasons: ['expiring'], heldUntil: null });
  });

  it('empty wallet: the account is held, its messages stay queued (none failed 50); a top-up and the next poll release and deliver them', async () => {
    const a = await setup({ balance: '0' });
    // Whichever poll came first (ours or the scheduler's) held it; the history shows which.
    expect(await wallet.check(a.pacUuid, 'poll')).toMatchObject({ reasons: ['empty'] });
    const held = await account(a.pac);
    expect(held).toMatchObject({
      alert: true,
      alertReasons: ['empty'],
      heldReason: expect.stringMatching(/^balance\.php: /),
    });
    expect(Date.parse(held.heldUntil)).toBeGreaterThan(t.clock.now().getTime());
    expect(await metricValue('gerbang_provider_account_held', { account: a.pacUuid })).toBe(1);

    const ids = [await send(a.apiKey, unique('held')), await send(a.apiKey, unique('held'))];
    await dispatcherHasMovedOn();
    expect(await messages(a.pacUuid)).toEqual([
      { status: 'queued', attempts: 0, failure_reason: null, provider_status_code: null },
      { status: 'queued', attempts: 0, failure_reason: null, provider_status_code: null },
    ]);
    expect(sandbox.sent().filter((s) => s.username === a.username)).toEqual([]);

    // Still empty at the next re-check: the hold is renewed, nothing changes.
    t.clock.advance(wallet.recheckMs + 1000);
    await wallet.pollDue();
    await wallet.idle();
    expect((await messages(a.pacUuid)).map((m) => m.status)).toEqual(['queued', 'queued']);

    sandbox.topUp(a.username, '500000');
    t.clock.advance(wallet.recheckMs + 1000);
    await wallet.pollDue();
    const done = await waitFor(
      'the held messages to be delivered',
      () => messages(a.pacUuid),
      (ms) => ms.length === 2 && ms.every((m) => m.status === 'delivered'),
    );
    expect(done.every((m) => m.attempts === 1 && m.failure_reason === null)).toBe(true);
    expect(sandbox.sent().filter((s) => s.username === a.username)).toHaveLength(ids.length);
    expect(await account(a.pac)).toMatchObject({
      heldUntil: null,
      heldReason: null,
      alert: false,
      lastBalance: '500000',
    });
    expect(await metricValue('gerbang_provider_account_held', { account: a.pacUuid })).toBe(0);
    // The whole story is in the history.
    const effects = (await checks(a.pacUuid)).map((c) => [c.balance, c.effect]);
    expect(effects[0]).toEqual(['0', 'held']);
    expect(effects.at(-1)).toEqual(['500000', 'released']);
    expect(effects.filter(([, e]) => e === 'held')).toHaveLength(1);
  });

  it('lapsed validity (balance kept): held, no 51 failures; a top-up renews the validity and releases', async () => {
    const a = await setup({ balance: '1000000', expiresAt: new Date(Date.now() - 60_000) });
    expect(await wallet.check(a.pacUuid, 'poll')).toMatchObject({ reasons: ['expired'] });
    expect(await account(a.pac)).toMatchObject({
      alertReasons: ['expired'],
      heldReason: expect.stringContaining('validity expired'),
    });
    await send(a.apiKey, unique('lapsed'));
    await dispatcherHasMovedOn();
    expect(await messages(a.pacUuid)).toEqual([
      { status: 'queued', attempts: 0, failure_reason: null, provider_status_code: null },
    ]);
    sandbox.topUp(a.username, '1000');
    expect(await wallet.check(a.pacUuid, 'poll')).toMatchObject({ reasons: [] });
    await waitFor(
      'delivery',
      () => messages(a.pacUuid),
      (ms) => ms[0]?.status === 'delivered',
    );
    expect((await checks(a.pacUuid)).map((c) => c.effect).filter(Boolean)).toEqual(['held', 'released']);
  });

  it("a 50 report's hold: re-read soon, not lifted by a positive balance too small to send; an empty reading takes it over", async () => {
    // 100 on the provider, 300 per SMS: balance.php says "credit", the send comes back 50.
    const a = await setup({ balance: '100', pricePerSms: '300' });
    await wallet.check(a.pacUuid, 'poll');
    expect((await account(a.pac)).heldUntil).toBeNull();
    await send(a.apiKey, unique('fifty'));
    await waitFor(
      'the 50',
      () => messages(a.pacUuid),
      (ms) => ms[0]?.provider_status_code === 50,
    );
    const dlrHeld = await account(a.pac);
    expect(dlrHeld.heldReason).toBe('provider balance empty (50)');

    // Held with its next turn far away: due at once (the scheduler or this call re-reads it), once.
    const before = (await checks(a.pacUuid)).length;
    await wallet.pollDue();
    await waitFor(
      'the re-read',
      () => checks(a.pacUuid),
      (cs) => cs.length === before + 1,
    );
    await wallet.idle();
    await wallet.pollDue();
    expect(await checks(a.pacUuid)).toHaveLength(before + 1);
    // A positive balance does not lift a 50/51 hold: it lapses by itself.
    expect(await account(a.pac)).toMatchObject({
      heldReason: 'provider balance empty (50)',
      heldUntil: dlrHeld.heldUntil,
    });

    sandbox.addAccount({ username: a.username, password: 'provider-secret-pw', balance: '0' });
    t.clock.advance(wallet.recheckMs + 1000);
    await wallet.pollDue();
    const taken = await waitFor(
      'the wallet hold',
      () => account(a.pac),
      (acc) => String(acc.heldReason).startsWith('balance.php: '),
    );
    expect(Date.parse(taken.heldUntil)).toBeGreaterThan(Date.parse(dlrHeld.heldUntil));
  });

  it('a late 50 report on an account the wallet watch already holds neither shortens that hold nor takes it over', async () => {
    const a = await setup({ balance: '1000000' });
    sandbox.setKnobs({ dropDlrRate: 1 }); // its own report is the 50 below
    const id = await send(a.apiKey, unique('before'));
    const pid = await submittedPid(id);
    // The wallet empties: the watch holds the account for its lease (2 × the poll interval).
    sandbox.addAccount({ username: a.username, password: 'provider-secret-pw', balance: '0' });
    await wallet.check(a.pacUuid, 'poll');
    const held = await account(a.pac);
    expect(String(held.heldReason)).toMatch(/^balance\.php: /);
    // Then the message's own report says 50 (balance empty): its 5-minute hold is shorter than the wallet's.
    const port = (t.app.getHttpServer().address() as { port: number }).port;
    const callback = reachableCallbackUrl((await account(a.pac)).dlrCallbackUrl, port);
    const res = await fetch(`${callback}?session_id=${pid}&error_code=50&error_message=Saldo%20Habis`);
    expect(res.status).toBe(200);
    await waitFor(
      'the 50 applied',
      () => messages(a.pacUuid),
      (ms) => ms[0]?.provider_status_code === 50,
    );
    expect(await account(a.pac)).toMatchObject({ heldReason: held.heldReason, heldUntil: held.heldUntil });
  });

  it("a 50 learned from the provider's report download (yesterday's codes, or on demand) fails and refunds its message but holds nothing now", async () => {
    // 100 on the provider, 300 per SMS: the provider takes the send and reports 50; the callback is lost.
    const a = await setup({ balance: '100', pricePerSms: '300' });
    sandbox.setKnobs({ dropDlrRate: 1 });
    const id = await send(a.apiKey, unique('fifty-in-report'));
    const pid = await submittedPid(id);
    await waitFor(
      'the provider lists it as 50',
      () => fetch(`${sandbox.url}/report.php?rpt=${pid}`).then((r) => r.text()),
      (body) => body.startsWith('50'),
    );
    const day = DateTime.now().setZone('Asia/Jakarta').toISODate()!;
    const res = await t.http.get(`/v1/admin/provider-accounts/${a.pac}/report?start=${day}&end=${day}`).set(admin);
    expect(res.status).toBe(200);
    expect(res.body.counts).toMatchObject({ applied: 1 });
    expect(await messages(a.pacUuid)).toEqual([
      expect.objectContaining({ status: 'failed', failure_reason: 'provider_balance_empty', provider_status_code: 50 }),
    ]);
    // When the code was reported says nothing about the wallet now: the watch (balance.php) decides that.
    expect(await account(a.pac)).toMatchObject({ heldUntil: null, heldReason: null });
  });

  it('the scheduler polls a new account by itself; each turn is polled once even with concurrent pollers', async () => {
    const a = await setup({ balance: '777' });
    await waitFor(
      'the first scheduled poll',
      () => checks(a.pacUuid),
      (cs) => cs.length >= 1,
    );
    await wallet.idle();
    // Not due again before its time.
    await Promise.all([wallet.pollDue(), wallet.pollDue(), wallet.pollDue()]);
    expect(await checks(a.pacUuid)).toHaveLength(1);
    const next = (await t.db.query(`SELECT next_balance_poll_at FROM provider_accounts WHERE id = $1`, [a.pacUuid]))[0]
      .next_balance_poll_at as Date;
    expect(next.getTime() - t.clock.now().getTime()).toBeGreaterThan(wallet.pollMs - 60_000);

    // Its turn: several pollers at once (as several gateway processes would), one read of balance.php.
    t.clock.advance(wallet.pollMs + 1000);
    await Promise.all([wallet.pollDue(), wallet.pollDue(), wallet.pollDue(), wallet.pollDue()]);
    await wallet.idle();
    expect((await checks(a.pacUuid)).map((c) => [c.source, c.balance])).toEqual([
      ['poll', '777'],
      ['poll', '777'],
    ]);
    expect((await account(a.pac)).lastBalance).toBe('777');
  });

  it('per-account send rate: a PATCH rebuilds the send gate (no restart) and spaces the submits; null puts back the default', async () => {
    const a = await setup({ balance: '1000000' });
    const clients = t.app.get(ProviderClients);
    const limits = async () => ((await clients.forAccount(a.pacUuid))!.client as HttpProviderClient).sendLimits;
    expect(await account(a.pac)).toMatchObject({ sendRatePerSecond: 0, maxInFlight: 50 });
    expect(await limits()).toEqual({ sendRatePerSecond: 0, maxInFlight: 50 });

    const patched = await t.http
      .patch(`/v1/admin/provider-accounts/${a.pac}`)
      .set(admin)
      .send({ sendRatePerSecond: 2, maxInFlight: 3 });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({ sendRatePerSecond: 2, maxInFlight: 3 });
    await waitFor('the rebuilt gate', limits, (l) => l.sendRatePerSecond === 2 && l.maxInFlight === 3, 5_000);

    // 2/s with a burst of 2: six submits take at least 2 s (bound kept generous for a loaded machine).
    for (let i = 0; i < 6; i++) await send(a.apiKey, unique('rate'));
    await waitFor(
      'six submits',
      () => sandbox.sent().filter((s) => s.username === a.username),
      (s) => s.length === 6,
      30_000,
    );
    const at = sandbox
      .sent()
      .filter((s) => s.username === a.username)
      .map((s) => s.at.getTime());
    expect(Math.max(...at) - Math.min(...at)).toBeGreaterThanOrEqual(1500);

    const reset = await t.http
      .patch(`/v1/admin/provider-accounts/${a.pac}`)
      .set(admin)
      .send({ sendRatePerSecond: null, maxInFlight: null });
    expect(reset.body).toMatchObject({ sendRatePerSecond: 0, maxInFlight: 50 });
    await waitFor('the default gate', limits, (l) => l.sendRatePerSecond === 0 && l.maxInFlight === 50, 5_000);
  });

  it('validation: settings out of range or of the wrong type are 400 validation_failed', async () => {
    const base = { name: unique('pac'), baseUrl: sandbox.url, username: unique('u'), password: 'pw' };
    for (const bad of [
      { sendRatePerSecond: -1 },
      { sendRatePerSecond: 1.5 },
      { sendRatePerSecond: '5' },
      { sendRatePerSecond: 1_000_001 },
      { maxInFlight: 0 },
      { maxInFlight: 10_001 },
      { lowBalanceThreshold: -1 },
      { lowBalanceThreshold: 0.5 },
    ]) {
      const created = await t.http
        .post('/v1/admin/provider-accounts')
        .set(admin)
        .send({ ...base, ...bad });
      expectProblem(created, 400, 'validation_failed');
      expect([...new Set(created.body.errors.map((e: { field: string }) => e.field))]).toEqual([Object.keys(bad)[0]]);
    }
    const ok = await t.http
      .post('/v1/admin/provider-accounts')
      .set(admin)
      .send({ ...base, sendRatePerSecond: 5 });
    expect(ok.status).toBe(201);
    for (const bad of [
      { maxInFlight: -3 },
      { sendRatePerSecond: 'fast' },
      { lowBalanceThreshold: 2 ** 60 },
      { alert: true },
    ]) {
      const patched = await t.http.patch(`/v1/admin/provider-accounts/${ok.body.id}`).set(admin).send(bad);
      expectProblem(patched, 400, 'validation_failed');
    }
    expect((await account(ok.body.id)).sendRatePerSecond).toBe(5);
  });
});

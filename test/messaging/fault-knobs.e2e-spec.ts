/**
 * Each fault knob of the sandbox provider, end to end through the gateway (issue 4, "Tests"): a
 * message is sent over HTTP, dispatched by the app's own dispatcher, and the outcome is read back
 * from the rows (messages, ledger_entries, message_events, delivery_reports), the API, and the
 * sandbox's own record of what it took (sent()) and which callbacks it made (callbacks()).
 *
 * Outcome classes (src/provider/client/send-classifier.ts): an HTTP 5xx or a request written but
 * never answered is `uncertain` (the provider may have the message: never resent, never refunded,
 * shown as `submitted`); a 2xx without an id is `rejected` (failed submit_rejected + refund); a
 * request that never reached the provider is `notSent` (retried with backoff, then failed
 * submit_failed + refund).
 */
import { SandboxHandle, SandboxKnobs, startSandbox, DEFAULT_KNOBS } from '../../src/sandbox';
import { createTenant, startTestApp, TestApp, unique, uuidOf, reachableCallbackUrl } from '../support/app';
import { closedPort, sleep } from '../support/processes';
import { waitFor } from '../support/wait';

const PROVIDER_PASSWORD = 'provider-secret-pw';
const TOPUP = 1000;
const PRICE = 100;

/** The dispatcher and the provider clients read these from process.env when the app is built. */
const ENV: Record<string, string> = {
  DISPATCHER: 'true',
  DISPATCH_POLL_MS: '50',
  DISPATCH_MAX_ATTEMPTS: '2',
  PROVIDER_SEND_RATE_PER_SECOND: '0',
  PROVIDER_TOTAL_TIMEOUT_MS: '1000',
  PROVIDER_CONNECT_TIMEOUT_MS: '1000',
};

/** No faults, fast reports: the sandbox's defaults with short DLR delays. */
const CLEAN: Partial<SandboxKnobs> = { ...DEFAULT_KNOBS, dlrDelayMs: [5, 20] };

interface Row {
  id: string;
  status: string;
  attempts: number;
  last_error: string | null;
  provider_message_id: string | null;
  provider_status_code: number | null;
  failure_reason: string | null;
  refunded: boolean;
  submitted_at: Date | null;
}

describe('sandbox fault knobs, end to end through the gateway', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;
  let appPort: number;
  const saved: Record<string, string | undefined> = {};

  beforeAll(async () => {
    for (const [k, v] of Object.entries(ENV)) {
      saved[k] = process.env[k];
      process.env[k] = v;
    }
    sandbox = await startSandbox({ knobs: CLEAN });
    t = await startTestApp(ENV);
    await t.app.listen(0, '127.0.0.1');
    appPort = (t.app.getHttpServer().address() as { port: number }).port;
  }, 120_000);

  afterAll(async () => {
    await t?.close();
    await sandbox?.close();
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });

  afterEach(() => {
    sandbox.setKnobs(CLEAN);
  });

  /** A fresh tenant and provider account per test (so one test's breaker state is not another's). */
  async function tenant(opts: { baseUrl?: string } = {}) {
    const x = await createTenant(t, { balance: TOPUP, pricePerSegment: PRICE, baseUrl: opts.baseUrl ?? sandbox.url });
    const callback = reachableCallbackUrl(x.providerAccount.dlrCallbackUrl, appPort);
    sandbox.addAccount({
      username: x.providerAccount.username,
      password: PROVIDER_PASSWORD,
      balance: '1000000',
      callbackUrl: callback,
    });
    return {
      ...x,
      tid: uuidOf(x.tenantId),
      pac: uuidOf(x.providerAccountId),
      username: x.providerAccount.username as string,
      auth: { Authorization: `Bearer ${x.apiKey}` },
    };
  }
  type Tenant = Awaited<ReturnType<typeof tenant>>;

  async function send(ten: Tenant, text: string) {
    const r = await t.http.post('/v1/messages').set(ten.auth).send({ to: '081234567890', text });
    expect(r.status).toBe(202);
    expect(r.body).toMatchObject({ status: 'queued', price: PRICE });
    return { publicId: r.body.id as string, id: uuidOf(r.body.id), text };
  }

  async function row(id: string): Promise<Row> {
    const [r] = await t.db.query(
      `SELECT id, status, attempts, last_error, provider_message_id, provider_status_code, failure_reason, refunded, submitted_at FROM messages WHERE id = $1`,
      [id],
    );
    return r as Row;
  }

  /** Waits until the dispatcher is done with the message (no longer queued or claimed). */
  const settled = (id: string, ms = 10_000) =>
    waitFor(
      `message ${id} to leave the queue`,
      () => row(id),
      (r) => r.status !== 'queued' && r.status !== 'submitting',
      ms,
    );

  const api = async (ten: Tenant, publicId: string) =>
    (await t.http.get(`/v1/messages/${publicId}`).set(ten.auth)).body;

  async function ledgerKinds(id: string): Promise<string[]> {
    const rows: { kind: string }[] = await t.db.query(
      `SELECT kind FROM ledger_entries WHERE message_id = $1 ORDER BY seq`,
      [id],
    );
    return rows.map((r) => r.kind);
  }

  async function events(id: string): Promise<{ status: string; detail: Record<string, unknown> | null }[]> {
    return t.db.query(`SELECT status, detail FROM message_events WHERE message_id = $1 ORDER BY seq`, [id]);
  }

  async function money(ten: Tenant) {
    const [r] = await t.db.query(
      `SELECT t.balance::bigint AS balance, (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE tenant_id = t.id)::bigint AS ledger
         FROM tenants t WHERE t.id = $1`,
      [ten.tid],
    );
    const api = (await t.http.get('/v1/balance').set(ten.auth)).body.balance as number;
    return { balance: Number(r.balance), ledger: Number(r.ledger), api };
  }

  const taken = (ten: Tenant, text: string) =>
    sandbox.sent().filter((s) => s.username === ten.username && s.text === text);
  const callbacksFor = (sessionId: string) => sandbox.callbacks().filter((c) => c.sessionId === sessionId);

  async function reportsFor(ten: Tenant, providerMessageId: string) {
    return t.db.query<{ code: number; message_id: string | null; applied_at: Date | null; received_at: Date }[]>(
      `SELECT code, message_id, applied_at, received_at FROM delivery_reports WHERE provider_account_id = $1 AND provider_message_id = $2 ORDER BY seq`,
      [ten.pac, providerMessageId],
    );
  }

  /** Uncertain: charged, shown as submitted, no provider id, never resent (one attempt after many poll cycles). */
  async function expectUncertainNotResent(
    ten: Tenant,
    m: { id: string; publicId: string; text: string },
    error: RegExp,
    takenCount: number,
  ) {
    const r = await settled(m.id);
    await sleep(750); // 15 poll cycles: a resend would have happened by now
    expect(await row(m.id)).toMatchObject({
      status: 'uncertain',
      attempts: 1,
      provider_message_id: null,
      refunded: false,
      failure_reason: null,
    });
    expect(r.last_error).toMatch(error);
    expect(taken(ten, m.text)).toHaveLength(takenCount);
    expect(await api(ten, m.publicId)).toMatchObject({
      status: 'submitted',
      providerMessageId: null,
      refunded: false,
      failureReason: null,
    });
    expect(await ledgerKinds(m.id)).toEqual(['debit']);
    expect(await money(ten)).toEqual({ balance: TOPUP - PRICE, ledger: TOPUP - PRICE, api: TOPUP - PRICE });
    // The creation writes no event (the message row is its own first status): the changes only.
    expect(await events(m.id)).toEqual([{ status: 'submitted', detail: { uncertain: true } }]);
  }

  /** Rejected: failed submit_rejected, refunded exactly once, nothing at the provider. */
  async function expectRejectedAndRefunded(
    ten: Tenant,
    m: { id: string; publicId: string; text: string },
    error: RegExp,
  ) {
    const r = await settled(m.id);
    expect(r).toMatchObject({
      status: 'failed',
      failure_reason: 'submit_rejected',
      attempts: 1,
      refunded: true,
      provider_message_id: null,
    });
    expect(r.last_error).toMatch(error);
    expect(await api(ten, m.publicId)).toMatchObject({
      status: 'failed',
      failureReason: 'submit_rejected',
      refunded: true,
    });
    expect(taken(ten, m.text)).toHaveLength(0);
    expect(await ledgerKinds(m.id)).toEqual(['debit', 'refund']);
    expect(await money(ten)).toEqual({ balance: TOPUP, ledger: TOPUP, api: TOPUP });
    expect((await events(m.id)).map((e) => e.status)).toEqual(['failed']);
    await sleep(300);
    expect(await ledgerKinds(m.id)).toEqual(['debit', 'refund']);
    return r;
  }

  it('http500Rate: a 500 before the provider takes it is still uncertain (a 5xx proves nothing): charged, shown submitted, never resent', async () => {
    const ten = await tenant();
    sandbox.setKnobs({ http500Rate: 1 });
    const m = await send(ten, unique('k500'));
    // The sandbox did not take it, but the gateway cannot know that: reconciliation will settle it.
    await expectUncertainNotResent(ten, m, /^HTTP 500 from the provider side/, 0);
  });

  it('http500AfterAcceptRate: taken by the provider, answered 500 → uncertain, not refunded, not resent; its report waits for reconciliation', async () => {
    const ten = await tenant();
    sandbox.setKnobs({ http500AfterAcceptRate: 1 });
    const m = await send(ten, unique('k500after'));
    await expectUncertainNotResent(ten, m, /^HTTP 500 from the provider side/, 1);
    // The provider's report (22) came back, but no message carries that id: it is kept raw, unapplied.
    const pid = taken(ten, m.text)[0].id;
    await waitFor(
      'the report callback',
      () => callbacksFor(pid),
      (c) => c.length === 1 && c[0].httpStatus === 200,
      5_000,
    );
    expect(await reportsFor(ten, pid)).toEqual([
      { code: 22, message_id: null, applied_at: null, received_at: expect.any(Date) },
    ]);
    expect((await row(m.id)).status).toBe('uncertain');
  });

  it('htmlGarbageRate: a PHP debug page instead of an id → failed submit_rejected, refunded once, the password it dumps is not stored', async () => {
    const ten = await tenant();
    sandbox.setKnobs({ htmlGarbageRate: 1 });
    const m = await send(ten, unique('khtml'));
    const r = await expectRejectedAndRefunded(ten, m, /html page instead of an id/);
    expect(r.last_error).not.toContain(PROVIDER_PASSWORD);
  });

  it('emptyBodyRate: HTTP 200 with an empty body → failed submit_rejected, refunded once', async () => {
    const ten = await tenant();
    sandbox.setKnobs({ emptyBodyRate: 1 });
    const m = await send(ten, unique('kempty'));
    await expectRejectedAndRefunded(ten, m, /^empty body/);
  });

  it('blackholeRate: taken and never answered → uncertain after the total timeout, not resent, not refunded', async () => {
    const ten = await tenant();
    sandbox.setKnobs({ blackholeRate: 1 });
    const m = await send(ten, unique('khole'));
    await expectUncertainNotResent(ten, m, /^total timeout after the request was written/, 1);
  });

  it('duplicateDlrRate: the final report twice → delivered once, one delivered event, charged once, never refunded', async () => {
    const ten = await tenant();
    sandbox.setKnobs({ duplicateDlrRate: 1 });
    const m = await send(ten, unique('kdup'));
    const r = await waitFor(
      'delivered',
      () => row(m.id),
      (x) => x.status === 'delivered',
    );
    const pid = r.provider_message_id!;
    expect(taken(ten, m.text).map((s) => s.id)).toEqual([pid]);
    const cbs = await waitFor(
      'both callbacks answered',
      () => callbacksFor(pid),
      (c) => c.length === 2 && c.every((x) => x.httpStatus === 200),
      5_000,
    );
    expect(cbs.map((c) => ({ code: c.code, duplicate: c.duplicate }))).toEqual([
      { code: 22, duplicate: false },
      { code: 22, duplicate: true },
    ]);
    // Both reports are kept; only the first changed the message. (A callback's 200 means stored: the
    // second one's apply, a no-op on the message, may still be committing.)
    const reports = await waitFor(
      'both reports applied',
      () => reportsFor(ten, pid),
      (rs) => rs.length === 2 && rs.every((x) => x.applied_at !== null),
    );
    expect(reports.map((x) => ({ code: x.code, message_id: x.message_id, applied: x.applied_at !== null }))).toEqual([
      { code: 22, message_id: m.id, applied: true },
      { code: 22, message_id: m.id, applied: true },
    ]);
    expect(await row(m.id)).toMatchObject({
      status: 'delivered',
      provider_status_code: 22,
      refunded: false,
      attempts: 1,
    });
    expect((await events(m.id)).map((e) => e.status)).toEqual(['submitted', 'delivered']);
    expect(await ledgerKinds(m.id)).toEqual(['debit']);
    expect(await money(ten)).toEqual({ balance: TOPUP - PRICE, ledger: TOPUP - PRICE, api: TOPUP - PRICE });
    expect(await api(ten, m.publicId)).toMatchObject({ status: 'delivered', providerStatusCode: 22, refunded: false });
  });

  it('outOfOrderDlr: 22 first, then a stale 20 → stays delivered, no pending event', async () => {
    const ten = await tenant();
    sandbox.setKnobs({ outOfOrderDlr: 1 });
    const m = await send(ten, unique('kooo'));
    const r = await waitFor(
      'delivered',
      () => row(m.id),
      (x) => x.status === 'delivered',
    );
    const pid = r.provider_message_id!;
    const cbs = await waitFor(
      'both callbacks answered',
      () => callbacksFor(pid),
      (c) => c.length === 2 && c.every((x) => x.httpStatus === 200),
      5_000,
    );
    expect(cbs.map((c) => ({ code: c.code, stale: c.stale }))).toEqual([
      { code: 22, stale: false },
      { code: 20, stale: true },
    ]);
    expect((await reportsFor(ten, pid)).map((x) => x.code)).toEqual([22, 20]);
    expect(await row(m.id)).toMatchObject({ status: 'delivered', provider_status_code: 22 });
    expect((await events(m.id)).map((e) => e.status)).toEqual(['submitted', 'delivered']);
    expect(await api(ten, m.publicId)).toMatchObject({ status: 'delivered', providerStatusCode: 22 });
    expect(await ledgerKinds(m.id)).toEqual(['debit']);
  });

  it('dropDlrRate: no callback at all → stays submitted (only report.php knows)', async () => {
    const ten = await tenant();
    sandbox.setKnobs({ dropDlrRate: 1 });
    const m = await send(ten, unique('kdrop'));
    const r = await settled(m.id);
    expect(r.status).toBe('submitted');
    await sleep(500); // well past dlrDelayMs
    const [s] = taken(ten, m.text);
    expect(s).toMatchObject({ id: r.provider_message_id, codes: [22] });
    expect(callbacksFor(s.id)).toEqual([]);
    expect(await reportsFor(ten, s.id)).toEqual([]);
    expect(await row(m.id)).toMatchObject({ status: 'submitted', provider_status_code: null, refunded: false });
    expect(await api(ten, m.publicId)).toMatchObject({
      status: 'submitted',
      providerMessageId: s.id,
      providerStatusCode: null,
    });
    expect((await events(m.id)).map((e) => e.status)).toEqual(['submitted']);
  });

  it('dlrBeforeSendAnswer: the report arrives before the id is known → kept, then applied when the id is recorded: delivered', async () => {
    const ten = await tenant();
    sandbox.setKnobs({ dlrBeforeSendAnswer: 1 });
    const m = await send(ten, unique('kearly'));
    const r = await waitFor(
      'delivered',
      () => row(m.id),
      (x) => x.status === 'delivered',
    );
    const pid = r.provider_message_id!;
    expect(taken(ten, m.text).map((s) => s.id)).toEqual([pid]);
    expect(callbacksFor(pid).map((c) => ({ code: c.code, httpStatus: c.httpStatus }))).toEqual([
      { code: 22, httpStatus: 200 },
    ]);
    const [report] = await reportsFor(ten, pid);
    expect(report).toMatchObject({ code: 22, message_id: m.id });
    // Received before the send's answer was recorded, applied at the recording.
    expect(report.received_at.getTime()).toBeLessThanOrEqual(r.submitted_at!.getTime());
    expect(report.applied_at!.getTime()).toBeGreaterThanOrEqual(r.submitted_at!.getTime());
    expect((await events(m.id)).map((e) => e.status)).toEqual(['submitted', 'delivered']);
    expect(await api(ten, m.publicId)).toMatchObject({ status: 'delivered', providerStatusCode: 22, refunded: false });
  });

  it('connection refused (baseUrl on a closed port) → retried, then after DISPATCH_MAX_ATTEMPTS failed submit_failed, refunded once', async () => {
    const port = await closedPort();
    const ten = await tenant({ baseUrl: `http://127.0.0.1:${port}/masking` });
    const m = await send(ten, unique('krefused'));
    // Attempt 1, backoff ~1 s, attempt 2 (= DISPATCH_MAX_ATTEMPTS) fails for good.
    const r = await waitFor(
      'failed',
      () => row(m.id),
      (x) => x.status === 'failed',
      10_000,
    );
    expect(r).toMatchObject({
      failure_reason: 'submit_failed',
      attempts: 2,
      refunded: true,
      provider_message_id: null,
    });
    expect(r.last_error).toMatch(/^connection refused before the request was written/);
    expect(await api(ten, m.publicId)).toMatchObject({
      status: 'failed',
      failureReason: 'submit_failed',
      refunded: true,
    });
    expect(await ledgerKinds(m.id)).toEqual(['debit', 'refund']);
    expect(await money(ten)).toEqual({ balance: TOPUP, ledger: TOPUP, api: TOPUP });
    expect((await events(m.id)).map((e) => e.status)).toEqual(['failed']);
    expect(sandbox.sent().filter((s) => s.text === m.text)).toEqual([]);
  });

  it('a held provider account (held_until in the future): its messages wait queued, not failed, and go out once the hold is cleared', async () => {
    const ten = await tenant();
    await t.db.query(
      `UPDATE provider_accounts SET held_until = now() + interval '1 hour', held_reason = 'test hold' WHERE id = $1`,
      [ten.pac],
    );
    const m = await send(ten, unique('kheld'));
    await sleep(1_000); // 20 poll cycles
    expect(await row(m.id)).toMatchObject({ status: 'queued', attempts: 0, refunded: false, last_error: null });
    expect(await api(ten, m.publicId)).toMatchObject({ status: 'queued' });
    expect(taken(ten, m.text)).toHaveLength(0);

    await t.db.query(`UPDATE provider_accounts SET held_until = NULL, held_reason = NULL WHERE id = $1`, [ten.pac]);
    const r = await waitFor(
      'delivered',
      () => row(m.id),
      (x) => x.status === 'delivered',
    );
    expect(r).toMatchObject({ attempts: 1, refunded: false });
    expect(taken(ten, m.text).map((s) => s.id)).toEqual([r.provider_message_id]);
    expect(await money(ten)).toEqual({ balance: TOPUP - PRICE, ledger: TOPUP - PRICE, api: TOPUP - PRICE });
  });
});

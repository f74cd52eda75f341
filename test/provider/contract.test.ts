import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { register } from 'prom-client';
import { HttpProviderClient, type HttpProviderClientOptions } from '../../src/provider/client/http-provider-client';
import { ProviderClientRegistry } from '../../src/provider/client/provider-client-registry';
import type { ProviderAccountConfig, SendOutcome } from '../../src/provider/client/provider-client';
import { ProviderError } from '../../src/provider/client/provider-error';
import { startSandbox, type SandboxHandle } from '../../src/sandbox/sandbox';
import { waitFor } from '../support/wait';
import { closedPort, sleep } from './support';

/**
 * The HttpProviderClient against the sandbox provider over real HTTP on 127.0.0.1: every operation,
 * every fault knob, each asserting the outcome class AND what the provider really took (sandbox.sent()),
 * because the class is a claim about the provider's side.
 */

const PASSWORD = 'pa55-w0rd';
const USER = 'acme';
const NUMBER = '6281234567890';

let sandbox: SandboxHandle;
const clients: HttpProviderClient[] = [];

function account(overrides: Partial<ProviderAccountConfig> = {}): ProviderAccountConfig {
  return {
    accountId: 'pac_contract',
    baseUrl: sandbox.url,
    username: USER,
    password: PASSWORD,
    sendMethod: 'post',
    ...overrides,
  };
}

function client(
  overrides: Partial<ProviderAccountConfig> = {},
  options: HttpProviderClientOptions = {},
): HttpProviderClient {
  const c = new HttpProviderClient(account(overrides), {
    totalTimeoutMs: 2_000,
    connectTimeoutMs: 1_000,
    sendRatePerSecond: Infinity,
    ...options,
  });
  clients.push(c);
  return c;
}

function expectKind<K extends SendOutcome['kind']>(outcome: SendOutcome, kind: K): Extract<SendOutcome, { kind: K }> {
  expect(outcome).toMatchObject({ kind });
  return outcome as Extract<SendOutcome, { kind: K }>;
}

beforeAll(async () => {
  sandbox = await startSandbox({
    seed: 42,
    accounts: [{ username: USER, password: PASSWORD, balance: '100000', pricePerSms: '300' }],
    knobs: { dlrDelayMs: [5, 15] },
  });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  sandbox.reset();
});

afterAll(async () => {
  await sandbox.close();
});

describe('send', () => {
  it.each(['post', 'get'] as const)(
    '%s: accepted with the id the provider issued; text and number arrive exactly',
    async (sendMethod) => {
      const text = 'Halo & selamat = 100% + ü 😀\nbaris dua';
      const outcome = expectKind(await client({ sendMethod }).send(NUMBER, text), 'accepted');
      const sent = sandbox.sent();
      expect(sent).toHaveLength(1);
      expect(sent[0]).toMatchObject({ id: outcome.providerMessageId, username: USER, msisdn: NUMBER, text });
      expect(outcome.providerMessageId).toMatch(/^[0-9]+$/);
      expect(outcome.raw.trim()).toBe(outcome.providerMessageId);
    },
  );

  it('ids increase from one send to the next', async () => {
    const c = client();
    const a = expectKind(await c.send(NUMBER, 'a'), 'accepted');
    const b = expectKind(await c.send(NUMBER, 'b'), 'accepted');
    expect(BigInt(b.providerMessageId)).toBeGreaterThan(BigInt(a.providerMessageId));
  });

  it('wrong credentials: rejected (a free-text answer, not an id), nothing taken', async () => {
    const outcome = expectKind(await client({ password: 'wrong' }).send(NUMBER, 'x'), 'rejected');
    expect(outcome).toMatchObject({ httpStatus: 200, raw: 'Username atau Password salah' });
    expect(sandbox.sent()).toHaveLength(0);
  });

  it('wrong base path (404): rejected with the HTTP status', async () => {
    const outcome = expectKind(
      await client({ baseUrl: sandbox.url.replace('/masking', '/nope') }).send(NUMBER, 'x'),
      'rejected',
    );
    expect(outcome.httpStatus).toBe(404);
  });

  it('refused connection: notSent', async () => {
    const port = await closedPort();
    const outcome = expectKind(
      await client({ baseUrl: `http://127.0.0.1:${port}/masking` }).send(NUMBER, 'x'),
      'notSent',
    );
    expect(outcome.reason).toMatch(/ECONNREFUSED/);
  });

  it('TLS failure before anything was written (https to a plain HTTP server): notSent, nothing taken', async () => {
    const outcome = expectKind(
      await client({ baseUrl: sandbox.url.replace('http:', 'https:') }).send(NUMBER, 'x'),
      'notSent',
    );
    expect(outcome.reason).toMatch(/before the request was written/);
    expect(sandbox.sent()).toHaveLength(0);
  });

  it('connection reset after the request was written: uncertain', async () => {
    const server: NetServer = createNetServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const outcome = expectKind(
        await client({ baseUrl: `http://127.0.0.1:${port}/masking` }).send(NUMBER, 'x'),
        'uncertain',
      );
      expect(outcome.reason).toMatch(/after the request was written/);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('latency within the timeout: accepted', async () => {
    sandbox.setKnobs({ latencyMs: [60, 80] });
    const started = performance.now();
    expectKind(await client().send(NUMBER, 'x'), 'accepted');
    expect(performance.now() - started).toBeGreaterThanOrEqual(55);
  });

  it('latency beyond the total timeout: uncertain — and the provider did take it', async () => {
    sandbox.setKnobs({ latencyMs: [150, 150] });
    expectKind(await client({}, { totalTimeoutMs: 60 }).send(NUMBER, 'x'), 'uncertain');
    await waitFor('the late message to be taken', () => sandbox.sent().length === 1, undefined, 1_000);
  });

  it('blackhole (taken, never answered): uncertain after the total timeout; the message was taken once', async () => {
    sandbox.setKnobs({ blackholeRate: 1 });
    const outcome = expectKind(await client({}, { totalTimeoutMs: 150 }).send(NUMBER, 'x'), 'uncertain');
    expect(outcome.reason).toMatch(/total timeout after the request was written/);
    expect(sandbox.sent()).toHaveLength(1);
  });

  it('a send still queued for a connection when the timeout fires is notSent, and is never written later', async () => {
    // One connection, held for 300 ms by a slow download (its own, longer timeout); the send queued
    // behind it times out at 100 ms without a byte written, and must not be written when the
    // connection frees up.
    sandbox.setKnobs({ latencyMs: [300, 300] });
    const c = client({}, { totalTimeoutMs: 100, downloadTimeoutMs: 2_000, maxConnections: 1 });
    const download = c.downloadReport(new Date(), new Date());
    await sleep(20);
    const outcome = expectKind(await c.send(NUMBER, 'queued'), 'notSent');
    expect(outcome.reason).toMatch(/total timeout before the request was written/);
    expect(await download).toMatchObject({ kind: 'report' });
    await sleep(50);
    expect(sandbox.sent()).toHaveLength(0);
    expectKind(await client().send(NUMBER, 'control'), 'accepted'); // a normal send still goes through
  });

  it('http500Rate (500 before the message is taken): uncertain, by design', async () => {
    sandbox.setKnobs({ http500Rate: 1 });
    const outcome = expectKind(await client().send(NUMBER, 'x'), 'uncertain');
    expect(outcome.reason).toMatch(/HTTP 500/);
    expect(sandbox.sent()).toHaveLength(0);
  });

  it('http500AfterAcceptRate (500 after the message was taken): uncertain — why a 5xx must never be "rejected"', async () => {
    sandbox.setKnobs({ http500AfterAcceptRate: 1 });
    expectKind(await client().send(NUMBER, 'x'), 'uncertain');
    expect(sandbox.sent()).toHaveLength(1);
  });

  it('htmlGarbageRate: rejected, raw body kept, nothing taken', async () => {
    sandbox.setKnobs({ htmlGarbageRate: 1 });
    const outcome = expectKind(await client().send(NUMBER, 'x'), 'rejected');
    expect(outcome).toMatchObject({ httpStatus: 200, reason: expect.stringMatching(/html page/) });
    expect(outcome.raw).toMatch(/<b>Warning<\/b>/);
    expect(sandbox.sent()).toHaveLength(0);
  });

  it('emptyBodyRate: rejected, nothing taken', async () => {
    sandbox.setKnobs({ emptyBodyRate: 1 });
    expect(await client().send(NUMBER, 'x')).toEqual({
      kind: 'rejected',
      reason: 'empty body',
      raw: '',
      httpStatus: 200,
    });
    expect(sandbox.sent()).toHaveLength(0);
  });

  it('fault rates are deterministic for a seed', async () => {
    const run = async () => {
      sandbox.reset();
      sandbox.setKnobs({ http500Rate: 0.3, htmlGarbageRate: 0.3 });
      const c = client();
      const kinds: string[] = [];
      for (let i = 0; i < 12; i++) kinds.push((await c.send(NUMBER, `m${i}`)).kind);
      return kinds;
    };
    const first = await run();
    expect(new Set(first).size).toBeGreaterThan(1);
    expect(await run()).toEqual(first);
  });
});

describe('send limits', () => {
  it('in-flight limit: beyond it (after a short wait) sends are unavailable and never reach the provider', async () => {
    sandbox.setKnobs({ latencyMs: [150, 150] });
    const c = client({}, { maxInFlight: 2, maxAdmissionWaitMs: 20 });
    const outcomes = await Promise.all([c.send(NUMBER, 'a'), c.send(NUMBER, 'b'), c.send(NUMBER, 'c')]);
    expect(outcomes.map((o) => o.kind).sort()).toEqual(['accepted', 'accepted', 'unavailable']);
    const held = outcomes.find((o) => o.kind === 'unavailable') as Extract<SendOutcome, { kind: 'unavailable' }>;
    expect(held.reason).toMatch(/in-flight limit/);
    expect(held.retryAfterMs).toBeGreaterThan(0);
    expect(sandbox.sent()).toHaveLength(2);
  });

  it('a waiter gets the slot a finishing send frees within the wait', async () => {
    sandbox.setKnobs({ latencyMs: [30, 30] });
    const c = client({}, { maxInFlight: 1, maxAdmissionWaitMs: 500 });
    const outcomes = await Promise.all([c.send(NUMBER, 'a'), c.send(NUMBER, 'b')]);
    expect(outcomes.map((o) => o.kind)).toEqual(['accepted', 'accepted']);
  });

  it('rate limit: a burst beyond the bucket is unavailable with a retry hint', async () => {
    const c = client({}, { sendRatePerSecond: 2, sendBurst: 2, maxAdmissionWaitMs: 0 });
    const outcomes = [await c.send(NUMBER, 'a'), await c.send(NUMBER, 'b'), await c.send(NUMBER, 'c')];
    expect(outcomes.map((o) => o.kind)).toEqual(['accepted', 'accepted', 'unavailable']);
    expect(outcomes[2]).toMatchObject({
      reason: expect.stringMatching(/rate limit/),
      retryAfterMs: expect.any(Number),
    });
    expect((outcomes[2] as { retryAfterMs: number }).retryAfterMs).toBeGreaterThan(0);
    expect(sandbox.sent()).toHaveLength(2);
  });
});

describe('circuit breaker', () => {
  const options: HttpProviderClientOptions = { breakerThreshold: 3, breakerHalfOpenAfterMs: 250 };

  async function gauge(): Promise<string> {
    return register.getSingleMetricAsString('gerbang_provider_circuit_open');
  }

  it('opens after consecutive uncertain sends, holds work as unavailable, then recovers through a half-open probe', async () => {
    sandbox.setKnobs({ http500AfterAcceptRate: 1 });
    const c = client({ accountId: 'pac_breaker' }, options);
    for (let i = 0; i < 3; i++) expectKind(await c.send(NUMBER, `fail ${i}`), 'uncertain');
    expect(c.circuitState).toBe('open');
    expect(await gauge()).toMatch(/gerbang_provider_circuit_open\{account="pac_breaker"\} 1/);

    const held = expectKind(await c.send(NUMBER, 'held'), 'unavailable');
    expect(held.reason).toMatch(/circuit open/);
    expect(held.retryAfterMs).toBeGreaterThan(0);
    expect(sandbox.sent()).toHaveLength(3); // the held send never reached the provider

    sandbox.setKnobs({ http500AfterAcceptRate: 0, latencyMs: [80, 80] });
    await sleep(300);
    const probe = c.send(NUMBER, 'probe');
    await sleep(20);
    const during = await c.send(NUMBER, 'during the probe');
    expectKind(during, 'unavailable');
    expect(during.kind === 'unavailable' && during.reason).toMatch(/half-open/);
    expectKind(await probe, 'accepted');
    expect(c.circuitState).toBe('closed');
    expect(await gauge()).toMatch(/gerbang_provider_circuit_open\{account="pac_breaker"\} 0/);
    expectKind(await c.send(NUMBER, 'after'), 'accepted');
    expect(sandbox.sent().map((m) => m.text)).toEqual(['fail 0', 'fail 1', 'fail 2', 'probe', 'after']);
  });

  it('opens on refused connections (notSent) and a failed probe opens it again', async () => {
    const port = await closedPort();
    const c = client({ baseUrl: `http://127.0.0.1:${port}/masking` }, options);
    for (let i = 0; i < 3; i++) expectKind(await c.send(NUMBER, 'x'), 'notSent');
    expectKind(await c.send(NUMBER, 'x'), 'unavailable');
    await sleep(300);
    expectKind(await c.send(NUMBER, 'x'), 'notSent'); // the probe
    expectKind(await c.send(NUMBER, 'x'), 'unavailable');
  });

  it('is not opened by rejections (the provider answered)', async () => {
    const c = client({ password: 'wrong' }, options);
    for (let i = 0; i < 5; i++) expectKind(await c.send(NUMBER, 'x'), 'rejected');
    expect(c.circuitState).toBe('closed');
  });
});

describe('report', () => {
  it('none ("Success Send") before the first DLR, then 22 Delivered', async () => {
    sandbox.setKnobs({ dlrDelayMs: [150, 150] });
    const c = client();
    const { providerMessageId } = expectKind(await c.send(NUMBER, 'x'), 'accepted');
    expect(await c.report(providerMessageId)).toEqual({ kind: 'none', raw: 'Success Send' });
    await sleep(200);
    expect(await c.report(providerMessageId)).toEqual({
      kind: 'report',
      code: 22,
      resolvedCode: 22,
      text: 'Delivered',
      raw: '22, Delivered',
    });
  });

  it.each([
    ['6289912345678', 50, 52, 'No Charge'],
    ['6289812345678', 22, 22, 'Delivered'],
    ['6289712345678', 20, 20, 'Pending'],
  ])('%s ends at poll code %i (meaning %i)', async (msisdn, code, resolvedCode, text) => {
    const c = client();
    const { providerMessageId } = expectKind(await c.send(msisdn, 'x'), 'accepted');
    await sleep(80);
    expect(await c.report(providerMessageId)).toMatchObject({ kind: 'report', code, resolvedCode, text });
  });

  it('empty balance → 50 Saldo Habis; lapsed validity → 50 Periode Habis (51)', async () => {
    sandbox.addAccount({ username: 'poor', password: PASSWORD, balance: '100' });
    sandbox.addAccount({
      username: 'old',
      password: PASSWORD,
      balance: '100000',
      expiresAt: new Date(Date.now() - 86_400_000),
    });
    const poor = client({ username: 'poor' });
    const old = client({ username: 'old' });
    const a = expectKind(await poor.send(NUMBER, 'x'), 'accepted');
    const b = expectKind(await old.send(NUMBER, 'x'), 'accepted');
    await sleep(80);
    expect(await poor.report(a.providerMessageId)).toMatchObject({ code: 50, resolvedCode: 50, text: 'Saldo Habis' });
    expect(await old.report(b.providerMessageId)).toMatchObject({ code: 50, resolvedCode: 51, text: 'Periode Habis' });
  });

  it('unknown id: none; a non-numeric id is refused before any request', async () => {
    const c = client();
    expect(await c.report('999')).toEqual({ kind: 'none', raw: '' });
    await expect(c.report('1&password=x')).rejects.toMatchObject({ code: 'invalid_argument' });
  });
});

describe('balance', () => {
  it('decimal string and Jakarta expiry; it goes down by price × provider SMS count', async () => {
    const expiresAt = new Date('2099-02-25T03:00:00.000Z');
    sandbox.addAccount({ username: 'bal', password: PASSWORD, balance: '1000.50', expiresAt, pricePerSms: '300' });
    const c = client({ username: 'bal' });
    expect(await c.balance()).toEqual({
      kind: 'balance',
      balance: '1000.50',
      expiresAt,
      raw: '1000.50, 2099/02/25-10:00:00',
    });
    expectKind(await c.send(NUMBER, 'a'.repeat(161)), 'accepted'); // 2 SMS by the provider's count
    expect(await c.balance()).toMatchObject({ balance: '400.50' });
  });

  it('wrong credentials: error with the raw text', async () => {
    expect(await client({ password: 'wrong' }).balance()).toMatchObject({
      kind: 'error',
      raw: 'Username atau Password salah',
    });
  });

  it('transport failures throw a typed ProviderError', async () => {
    const port = await closedPort();
    await expect(client({ baseUrl: `http://127.0.0.1:${port}/masking` }).balance()).rejects.toMatchObject({
      name: 'ProviderError',
      code: 'unreachable',
    });
    sandbox.setKnobs({ latencyMs: [200, 200] });
    const err = await client({}, { totalTimeoutMs: 50 })
      .balance()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProviderError);
    expect(err).toMatchObject({ code: 'timeout', operation: 'balance', accountId: 'pac_contract' });
  });
});

describe('downloadReport', () => {
  it('CSV with a header: rows of the range, texts with commas, quotes and newlines intact', async () => {
    const c = client();
    const tricky = 'Halo, "kamu"\r\nbaris dua';
    const a = expectKind(await c.send(NUMBER, tricky), 'accepted');
    const b = expectKind(await c.send('6289912345678', 'plain'), 'accepted');
    await sleep(60);
    const today = new Date();
    const result = await c.downloadReport(new Date(today.getTime() - 86_400_000), today);
    expect(result.kind).toBe('report');
    if (result.kind !== 'report') return;
    expect(result.header).toEqual([
      'id',
      'msisdn',
      'message',
      'sent_at',
      'sms_count',
      'price',
      'status_code',
      'status',
    ]);
    expect(result.rows).toEqual([
      expect.objectContaining({
        id: a.providerMessageId,
        msisdn: NUMBER,
        message: tricky,
        status_code: '22',
        status: 'Delivered',
        price: '300',
      }),
      expect.objectContaining({ id: b.providerMessageId, status_code: '52', status: 'No Charge', price: '0' }),
    ]);
    expect(result.raw.startsWith('id,msisdn,')).toBe(true);
  });

  it('a range without sends is an empty report; wrong credentials an error', async () => {
    const c = client();
    expectKind(await c.send(NUMBER, 'x'), 'accepted');
    const longAgo = new Date('2020-01-01T00:00:00Z');
    expect(await c.downloadReport(longAgo, longAgo)).toMatchObject({ kind: 'report', rows: [] });
    expect(await client({ password: 'wrong' }).downloadReport(longAgo, longAgo)).toMatchObject({ kind: 'error' });
  });
});

describe('inbox', () => {
  it.each(['csv', 'json', 'lines'] as const)('%s format', async (inboxFormat) => {
    sandbox.setKnobs({ inboxFormat });
    const receivedAt = new Date('2026-03-01T03:04:05.000Z');
    sandbox.addInbox(USER, '6281111111111', 'Halo, balas "ya"', receivedAt);
    sandbox.addInbox(USER, '6282222222222', 'Stop', receivedAt);
    const result = await client().inbox();
    expect(result.kind).toBe('inbox');
    if (result.kind !== 'inbox') return;
    expect(result.items.map(({ msisdn, text, receivedAt }) => ({ msisdn, text, receivedAt }))).toEqual([
      { msisdn: '6281111111111', text: 'Halo, balas "ya"', receivedAt },
      { msisdn: '6282222222222', text: 'Stop', receivedAt },
    ]);
  });

  it('empty inbox; wrong credentials an error', async () => {
    expect(await client().inbox()).toMatchObject({ kind: 'inbox', items: [] });
    expect(await client({ password: 'wrong' }).inbox()).toMatchObject({
      kind: 'error',
      raw: 'Username atau Password salah',
    });
  });
});

describe('lifecycle, registry, metrics', () => {
  it('after close(): sends are unavailable (held), other operations throw client_closed', async () => {
    const c = client();
    await c.close();
    expect(await c.send(NUMBER, 'x')).toMatchObject({ kind: 'unavailable', retryAfterMs: 0 });
    await expect(c.balance()).rejects.toMatchObject({ code: 'client_closed' });
    expect(sandbox.sent()).toHaveLength(0);
  });

  it('close() lets a send in flight finish with its real outcome', async () => {
    sandbox.setKnobs({ latencyMs: [80, 80] });
    const c = client();
    const inFlight = c.send(NUMBER, 'x');
    await sleep(20);
    await c.close();
    expectKind(await inFlight, 'accepted');
  });

  it('rejects a base URL with credentials or a query, without echoing it', () => {
    for (const baseUrl of [
      `http://u:${PASSWORD}@127.0.0.1/masking`,
      `http://127.0.0.1/masking?password=${PASSWORD}`,
      'ftp://x',
      'not a url',
    ]) {
      let thrown: unknown;
      try {
        new HttpProviderClient(account({ baseUrl }));
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ProviderError);
      expect(String((thrown as Error).message)).not.toContain(PASSWORD);
    }
  });

  it('registry: one client per account, rebuilt when the config (or version) changes', async () => {
    const registry = new ProviderClientRegistry({ clientOptions: { totalTimeoutMs: 2_000 } });
    const a = registry.get(account());
    expect(registry.get(account())).toBe(a);
    const b = registry.get(account({ password: 'rotated' }));
    expect(b).not.toBe(a);
    expect(await a.send(NUMBER, 'x')).toMatchObject({ kind: 'unavailable' }); // the old one is closed
    expect(registry.get(account({ password: 'rotated' }), 'v2')).not.toBe(b);
    expect(registry.get(account({ password: 'rotated' }), 'v2')).toBe(registry.peek('pac_contract'));
    registry.get(account({ accountId: 'other' }));
    expect(registry.size).toBe(2);
    const last = registry.peek('pac_contract')!;
    await registry.closeAll();
    expect(registry.size).toBe(0);
    expect(await last.send(NUMBER, 'x')).toMatchObject({ kind: 'unavailable' });
    expect(sandbox.sent()).toHaveLength(0);
  });

  it('registry: per-account send limits override the defaults, and a change of them rebuilds the client', async () => {
    const registry = new ProviderClientRegistry({ clientOptions: { sendRatePerSecond: 100, maxInFlight: 50 } });
    const plain = registry.get(account()) as HttpProviderClient;
    expect(plain.sendLimits).toEqual({ sendRatePerSecond: 100, maxInFlight: 50 });
    const limited = registry.get(account(), undefined, { sendRatePerSecond: 2, maxInFlight: 3 }) as HttpProviderClient;
    expect(limited).not.toBe(plain);
    expect(limited.sendLimits).toEqual({ sendRatePerSecond: 2, maxInFlight: 3 });
    expect(registry.get(account(), undefined, { sendRatePerSecond: 2, maxInFlight: 3 })).toBe(limited);
    const unlimited = registry.get(account(), undefined, {
      sendRatePerSecond: 0,
      maxInFlight: 3,
    }) as HttpProviderClient;
    expect(unlimited.sendLimits).toEqual({ sendRatePerSecond: 0, maxInFlight: 3 });
    await registry.closeAll();
  });

  it('counts requests by operation and outcome class, and times them', async () => {
    const before = await register.getSingleMetricAsString('gerbang_provider_requests_total');
    const count = (text: string, labels: string) =>
      Number(new RegExp(`gerbang_provider_requests_total\\{${labels}\\} (\\d+)`).exec(text)?.[1] ?? 0);
    const c = client();
    await c.send(NUMBER, 'x');
    await client({ password: 'wrong' }).send(NUMBER, 'x');
    await c.balance();
    const after = await register.getSingleMetricAsString('gerbang_provider_requests_total');
    expect(
      count(after, 'operation="send",outcome="accepted"') - count(before, 'operation="send",outcome="accepted"'),
    ).toBe(1);
    expect(
      count(after, 'operation="send",outcome="rejected"') - count(before, 'operation="send",outcome="rejected"'),
    ).toBe(1);
    expect(
      count(after, 'operation="balance",outcome="balance"') - count(before, 'operation="balance",outcome="balance"'),
    ).toBe(1);
    expect(await register.getSingleMetricAsString('gerbang_provider_request_duration_seconds')).toMatch(
      /gerbang_provider_request_duration_seconds_count\{operation="send"\} [1-9]/,
    );
  });
});

/**
 * The API's instants (`sendAt`, `createdFrom`, `createdTo`) are UTC unless they carry an offset (OpenAPI
 * descriptions, docs/decisions.md), whatever time zone the gateway's host runs in: an operator in Indonesia
 * may well start it with TZ=Asia/Jakarta. A gateway process is started here with that TZ (the time zone of
 * the jest process cannot be changed from inside a test), on the test database.
 */
import { randomBytes } from 'node:crypto';
import { bearer, createTenant, startTestApp, TEST_DATABASE_URL, TestApp } from '../support/app';
import { GatewayProcess, newEncryptionKey, snapshotDist } from '../support/processes';

const ENCRYPTION_KEY = newEncryptionKey();

describe('instants without an offset are UTC on a gateway running with TZ=Asia/Jakarta', () => {
  let t: TestApp;
  let gateway: GatewayProcess | undefined;
  let build: { main: string; remove: () => void } | undefined;
  const savedDispatcher = process.env.DISPATCHER;

  beforeAll(async () => {
    build = await snapshotDist();
    process.env.DISPATCHER = 'false';
    t = await startTestApp({ DISPATCHER: 'false', ENCRYPTION_KEY });
    gateway = new GatewayProcess(
      'jakarta',
      {
        TZ: 'Asia/Jakarta',
        DATABASE_URL: TEST_DATABASE_URL,
        SANDBOX: 'false',
        PORT: '0',
        HOST: '127.0.0.1',
        NODE_ENV: 'production',
        JWT_SECRET: randomBytes(48).toString('base64url'),
        ENCRYPTION_KEY,
        DISPATCHER: 'false',
        LOG_LEVEL: 'warn',
        DB_POOL_SIZE: '4',
      },
      build.main,
    );
    await gateway.ready(60_000);
  }, 240_000);

  afterAll(async () => {
    await gateway?.stop('SIGKILL', 5_000).catch(() => undefined);
    await t?.close();
    build?.remove();
    if (savedDispatcher === undefined) delete process.env.DISPATCHER;
    else process.env.DISPATCHER = savedDispatcher;
  });

  /** `YYYY-MM-DDTHH:MM:SS` of `ms` in UTC, without any offset. */
  const naive = (ms: number) => new Date(ms).toISOString().slice(0, 19);

  async function call(path: string, apiKey: string, body?: unknown) {
    const res = await fetch(`http://127.0.0.1:${gateway!.port}${path}`, {
      method: body === undefined ? 'GET' : 'POST',
      headers: { ...bearer(apiKey), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  it('sendAt, createdFrom and createdTo without an offset are read as UTC, not as the host time zone', async () => {
    const { apiKey } = await createTenant(t, { balance: 10_000 });
    const sendAt = naive(Date.now() + 2 * 86400_000);
    const sent = await call('/v1/messages', apiKey, { to: '081234567890', text: 'at a UTC time', sendAt });
    expect(sent.status).toBe(202);
    expect(sent.body.sendAt).toBe(`${sendAt}.000Z`);

    // An hour from now (UTC) is after the message was created: nothing from then on, the message up to then
    // (read as Jakarta time, both would be seven hours earlier: the message, and nothing).
    const inAnHour = naive(Date.now() + 3600_000);
    const from = await call(`/v1/messages?createdFrom=${inAnHour}`, apiKey);
    expect(from.status).toBe(200);
    expect(from.body.data).toEqual([]);
    const to = await call(`/v1/messages?createdTo=${inAnHour}`, apiKey);
    expect(to.status).toBe(200);
    expect((to.body.data as { id: string }[]).map((m) => m.id)).toEqual([sent.body.id]);

    // Nothing left scheduled in the shared test database: a later suite whose clock is moved years ahead would
    // send it (and fail and refund it) after a sweep at that clock had forfeited this tenant's period.
    expect((await t.http.delete(`/v1/messages/${sent.body.id as string}`).set(bearer(apiKey))).status).toBe(200);
  });
});

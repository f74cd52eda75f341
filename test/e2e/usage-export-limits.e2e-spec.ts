import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { request as httpRequest, IncomingMessage, ClientRequest } from 'node:http';
import { bearer, createTenant, expectProblem, startTestApp, TestApp } from '../support/app';
import { seedUsage } from '../support/usage-seed';
import { waitFor } from '../support/wait';

/**
 * A usage export whose client stops reading must not pin its transaction and pooled connection
 * (docs/billing.md "Usage", "Streaming"): after USAGE_EXPORT_STALL_SECONDS without a 'drain' the
 * response is destroyed and the cursor's transaction rolled back; and at most USAGE_EXPORT_CONCURRENCY
 * exports run at once per process (beyond: 429 `rate_limited` with Retry-After). Real HTTP on 127.0.0.1,
 * real PostgreSQL; the export is made far larger than the loopback socket buffers (~4 MB here).
 */
describe('usage export limits: stalled clients and concurrent exports', () => {
  const STALL_SECONDS = 2;
  const CONCURRENCY = 2;
  let t: TestApp;
  let port: number;
  const opened: ClientRequest[] = [];

  beforeAll(async () => {
    t = await startTestApp({
      USAGE_EXPORT_STALL_SECONDS: String(STALL_SECONDS),
      USAGE_EXPORT_CONCURRENCY: String(CONCURRENCY),
    });
    await t.app.listen(0, '127.0.0.1');
    port = (t.app.getHttpServer().address() as { port: number }).port;
    // 250 tenants × 400 Jakarta days = 100,000 usage records: ~16 MB of JSON, ~7 MB of CSV.
    const { providerAccountId } = await createTenant(t);
    await seedUsage(t.db, providerAccountId, 250, 400, '2090-01-01');
  }, 120_000);
  afterEach(() => {
    // No request is left open: a paused response keeps a cursor and a pooled connection.
    for (const r of opened.splice(0)) r.destroy();
  });
  afterAll(async () => {
    await t.close();
  });

  /** Opens the whole 100,000-record admin export and never reads its body. */
  function openStalled(): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = httpRequest(
        {
          host: '127.0.0.1',
          port,
          path: '/v1/admin/usage?from=2090-01-01&to=2091-12-31',
          headers: { Authorization: `Bearer ${t.adminToken}` },
        },
        (res) => {
          res.on('error', () => undefined); // the server cuts it: expected
          resolve(res);
        },
      );
      req.on('error', (err) => (req.destroyed ? undefined : reject(err)));
      opened.push(req);
      req.end();
    });
  }

  /** Usage cursors open right now (sessions idle inside an export's transaction). */
  async function openCursors(): Promise<number> {
    const [row] = await t.db.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND state = 'idle in transaction' AND query LIKE 'FETCH%usage_records%'`,
    );
    return Number(row.n);
  }

  it('a client that opens a large export and never reads: after the stall timeout the transaction is gone, a warning logged, other requests still work', async () => {
    const warn = jest.spyOn(Logger.prototype, 'warn');
    try {
      const stalled = await openStalled();
      expect(stalled.statusCode).toBe(200);
      // Precondition: the export is held by backpressure (far more than the socket buffers hold), its
      // transaction open between FETCHes.
      await waitFor('the stalled export to hold its cursor', openCursors, (n) => n === 1, 5000);
      await new Promise((r) => setTimeout(r, 500));
      expect(await openCursors()).toBe(1);
      // Other requests still work meanwhile.
      const tenants = await t.http.get('/v1/admin/tenants').set(bearer(t.adminToken));
      expect(tenants.status).toBe(200);

      // After the stall timeout: the response destroyed, the transaction rolled back, the connection back.
      const started = Date.now();
      await waitFor('the stalled export to be ended', openCursors, (n) => n === 0, (STALL_SECONDS + 5) * 1000);
      expect(Date.now() - started).toBeGreaterThanOrEqual((STALL_SECONDS - 1) * 1000);
      expect(warn.mock.calls.some((c) => JSON.stringify(c).includes('stalled'))).toBe(true);

      // Later requests, an export included, still work.
      const small = await t.http
        .get('/v1/admin/usage')
        .query({ from: '2090-01-01', to: '2090-01-03' })
        .set(bearer(t.adminToken))
        .set('Accept', 'text/csv');
      expect(small.status).toBe(200);
      expect(small.text.split('\r\n').filter((l) => l.length > 0)).toHaveLength(1 + 250 * 3);
    } finally {
      warn.mockRestore();
    }
  }, 60_000);

  it(`${CONCURRENCY} + 1 concurrent exports: the extra one gets 429 rate_limited with Retry-After; once they end, exports run again`, async () => {
    const a = await openStalled();
    const b = await openStalled();
    expect([a.statusCode, b.statusCode]).toEqual([200, 200]);
    await waitFor('both exports to hold a cursor', openCursors, (n) => n === CONCURRENCY, 5000);

    const extra = await t.http
      .get('/v1/admin/usage')
      .query({ from: '2090-01-01', to: '2090-01-01' })
      .set(bearer(t.adminToken));
    expectProblem(extra, 429, 'rate_limited');
    expect(Number(extra.headers['retry-after'])).toBeGreaterThanOrEqual(1);
    // The tenant route shares the cap (each export holds a pooled connection).
    const { apiKey } = await createTenant(t);
    const own = await t.http.get('/v1/usage').set(bearer(apiKey));
    expectProblem(own, 429, 'rate_limited');

    // The stalled two end after the stall timeout and free their slots.
    await waitFor('the stalled exports to be ended', openCursors, (n) => n === 0, (STALL_SECONDS + 5) * 1000);
    const again = await t.http
      .get('/v1/admin/usage')
      .query({ from: '2090-01-01', to: '2090-01-01' })
      .set(bearer(t.adminToken));
    expect(again.status).toBe(200);
    expect(again.body.data).toHaveLength(250);
    const mine = await t.http.get('/v1/usage').set(bearer(apiKey));
    expect(mine.status).toBe(200);
  }, 60_000);
});

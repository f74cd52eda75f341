/**
 * Issue 7 item 5, "the database can go away and come back": a real PostgreSQL server (the test's own,
 * never the shared one) is stopped under load and started again. During the outage requests get 503
 * `unavailable` problem+json with Retry-After (never 500) and /health/ready is 503; afterwards the same
 * gateway process serves again without a restart, its dispatcher picks up where it stopped, every
 * accepted message exists, none reached the provider twice, and the books balance.
 */
import { books, HttpResult, Rig } from '../support/rig';
import { sleep } from '../support/processes';
import { waitFor } from '../support/wait';

describe('database outage under load (own PostgreSQL server, gateway process, sandbox provider)', () => {
  let rig: Rig;

  beforeAll(async () => {
    rig = await Rig.create();
  }, 240_000);
  afterAll(async () => {
    await rig?.close();
  });

  it('503 unavailable with Retry-After during the outage, ready 503, then reconnects and resumes by itself', async () => {
    // A short lease: a batch whose outcomes could not be recorded while the database was away is
    // settled as `uncertain` (never resent) within seconds instead of two minutes.
    const gw = await rig.startGateway('gateway', {
      DISPATCH_BATCH_SIZE: '20',
      DISPATCH_LEASE_MS: '3000',
      PROVIDER_TOTAL_TIMEOUT_MS: '2000',
      PROVIDER_CONNECT_TIMEOUT_MS: '1000',
    });
    const PRICE = 7;
    const tenant = await rig.tenant('outage', 1_000_000, PRICE);

    const accepted = new Map<string, string>(); // text → message id
    const statuses: Record<string, number> = {};
    const unavailable: { retryAfter: string | null; type: string | null; code: unknown }[] = [];
    const others: string[] = [];
    let n = 0;
    let loading = true;
    const worker = async () => {
      while (loading) {
        const text = `outage #${n++}`;
        const r = await rig.http('POST', '/v1/messages', { to: '081234567890', text }, tenant.apiKey);
        statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        if (r.status === 202) accepted.set(text, r.body!.id as string);
        else if (r.status === 503)
          unavailable.push({
            retryAfter: r.headers!.get('retry-after'),
            type: r.headers!.get('content-type'),
            code: r.body?.code,
          });
        else others.push(`${r.status} ${JSON.stringify(r.body)} ${r.error ?? ''}`);
        if (r.status !== 202) await sleep(50);
      }
    };
    const workers = Array.from({ length: 4 }, worker);

    let readyDuring: HttpResult | undefined;
    let listDuring: HttpResult | undefined;
    let liveDuring: HttpResult | undefined;
    try {
      await waitFor(
        'load before the outage',
        () => accepted.size,
        (v) => v >= 50,
        20_000,
      );
      await rig.pg.stop('fast');
      readyDuring = await waitFor(
        'readiness 503 during the outage',
        () => rig.http('GET', '/health/ready'),
        (r) => r.status === 503,
        15_000,
      );
      listDuring = await rig.http('GET', '/v1/messages?limit=1', undefined, tenant.apiKey);
      liveDuring = await rig.http('GET', '/health/live');
      await waitFor(
        '503s under load during the outage',
        () => unavailable.length,
        (v) => v >= 5,
        15_000,
      );
      const acceptedBeforeRestart = accepted.size;
      await rig.pg.start();
      await waitFor(
        'readiness back',
        () => rig.http('GET', '/health/ready'),
        (r) => r.status === 200,
        30_000,
      );
      await waitFor(
        'accepts again',
        () => accepted.size,
        (v) => v >= acceptedBeforeRestart + 50,
        20_000,
      );
    } finally {
      loading = false;
      await Promise.all(workers);
      process.stdout.write(`outage: ${JSON.stringify(statuses)}; others: ${JSON.stringify(others.slice(0, 5))}\n`);
    }

    expect(gw.alive).toBe(true); // the same process: it reconnected by itself
    expect(others).toEqual([]); // only 202 and 503: never a 500, never a dropped connection
    expect(readyDuring.body).toEqual({
      status: 'unavailable',
      checks: { database: 'unreachable', migrations: 'unknown' },
    });
    expect(readyDuring.headers!.get('retry-after')).toBe('5');
    expect(liveDuring.status).toBe(200);
    expect(listDuring.status).toBe(503);
    expect(listDuring.headers!.get('content-type')).toMatch(/^application\/problem\+json/);
    expect(listDuring.body).toMatchObject({ status: 503, code: 'unavailable' });
    expect(unavailable.length).toBeGreaterThanOrEqual(5);
    for (const u of unavailable) {
      expect(u.code).toBe('unavailable');
      expect(u.type).toMatch(/^application\/problem\+json/);
      expect(Number(u.retryAfter)).toBeGreaterThanOrEqual(1);
    }

    // The dispatcher resumed: every accepted message leaves the queue and reaches the provider once.
    const ids = [...accepted.values()].map((id) => id.slice(4));
    await waitFor(
      'the queue drained after the outage',
      async () =>
        (
          await rig.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM messages WHERE tenant_id = $1 AND status IN ('queued', 'submitting')`,
            [tenant.uuid],
          )
        )[0].n,
      (v) => v === 0,
      30_000,
      200,
    );
    const rows = await rig.query<{ hex: string; text: string; status: string; provider_message_id: string | null }>(
      `SELECT replace(id::text, '-', '') AS hex, text, status, provider_message_id FROM messages WHERE tenant_id = $1`,
      [tenant.uuid],
    );
    const byHex = new Map(rows.map((r) => [r.hex, r]));
    const byStatus: Record<string, number> = {};
    for (const r of rows) byStatus[r.status] = (byStatus[r.status] ?? 0) + 1;
    process.stdout.write(`outage: message states afterwards ${JSON.stringify(byStatus)}\n`);
    const missing = ids.filter((hex) => !byHex.has(hex));
    expect(missing).toEqual([]);
    const taken = new Map<string, number>();
    for (const s of rig.sandbox.sent())
      if (s.username === tenant.username) taken.set(s.text, (taken.get(s.text) ?? 0) + 1);
    expect([...taken.entries()].filter(([, count]) => count > 1)).toEqual([]);
    for (const r of rows) expect(['submitted', 'pending', 'delivered', 'failed', 'uncertain']).toContain(r.status);
    // Messages accepted after the restart were dispatched by the same process.
    const afterRestart = [...accepted.keys()].slice(-10);
    for (const text of afterRestart) expect(taken.get(text)).toBe(1);

    for (const b of await books(rig)) expect(b.balance).toBe(b.ledger);
    const [debits] = await rig.query<{ n: number; sum: string }>(
      `SELECT count(*)::int AS n, coalesce(sum(amount), 0)::text AS sum FROM ledger_entries WHERE tenant_id = $1 AND kind = 'debit'`,
      [tenant.uuid],
    );
    expect(debits.n).toBe(rows.length); // one debit per message row, never two
    process.stdout.write(
      `outage: ${JSON.stringify(statuses)}; ${accepted.size} accepted, ${unavailable.length} answered 503\n`,
    );
  }, 150_000);
});

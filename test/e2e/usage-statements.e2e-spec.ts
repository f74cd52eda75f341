import { request as httpRequest, IncomingMessage } from 'node:http';
import { Writable } from 'node:stream';
import { parse } from 'csv-parse/sync';
import { StreamTarget, streamRecords } from '../../src/billing/usage-stream';
import { USAGE_COLUMNS, UsageService } from '../../src/billing/usage.service';
import { startSandbox, SandboxHandle } from '../../src/sandbox';
import {
  bearer,
  createAdminUser,
  createTenant,
  expectProblem,
  jakartaDay,
  startTestApp,
  TestApp,
  uuidOf,
  reachableCallbackUrl,
} from '../support/app';
import { seedUsage } from '../support/usage-seed';
import { waitFor as waitForCondition } from '../support/wait';

const DAY = 86_400_000;

interface UsageRecord {
  tenantId?: string;
  period: string;
  messages: number;
  segments: number;
  amount: number;
  delivered: number;
  failed: number;
  refunded: number;
  expired: number;
  pending: number;
}

interface Statement {
  month: string;
  openingBalance: number;
  topups: number;
  debits: number;
  refunds: number;
  adjustments: number;
  expired: number;
  closingBalance: number;
  validUntil: string | null;
  graceUntil: string | null;
}

/** The one `waitFor` (test/support/wait.ts): it throws on timeout (this copy used to return the last value silently). */
const waitFor = <T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 15_000): Promise<T> =>
  waitForCondition('the condition', fn, ok, ms);

/** CSV body → objects with numbers where the column is numeric. */
function csvRecords(text: string): Record<string, string | number>[] {
  const rows: Record<string, string>[] = parse(text, { columns: true, skip_empty_lines: true });
  return rows.map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, /^-?\d+$/.test(v) ? Number(v) : v])));
}

/**
 * Stands in for an HTTP response whose client has stopped reading: a real Writable (16 kB buffer) whose
 * writes complete only once the gate is open, so 'drain' comes exactly when the test says.
 */
class GatedResponse extends Writable {
  private gateOpen = false;
  private readonly pending: (() => void)[] = [];
  private readonly chunks: Buffer[] = [];
  constructor() {
    super({ highWaterMark: 16 * 1024 });
  }
  statusCode = 0;
  setHeader(): this {
    return this;
  }
  /** True while a write was refused and the writer should be waiting for 'drain'. */
  get waiting(): boolean {
    return this.writableNeedDrain;
  }
  open(): void {
    this.gateOpen = true;
    for (const cb of this.pending.splice(0)) cb();
  }
  body(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.chunks.push(chunk);
    if (this.gateOpen) cb();
    else this.pending.push(() => cb());
  }
}

const sum = (records: UsageRecord[], k: keyof UsageRecord) => records.reduce((s, r) => s + Number(r[k]), 0);

/** Issue 10: usage records, monthly statements, against the real app, real PostgreSQL and the sandbox provider. */
describe('usage records and statements', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;
  let admin: Record<string, string>;

  beforeAll(async () => {
    sandbox = await startSandbox({ knobs: { dlrDelayMs: [5, 20], latencyMs: [0, 0] } });
    t = await startTestApp({ DISPATCH_POLL_MS: '50', PROVIDER_SEND_RATE_PER_SECOND: '0' });
    admin = bearer(t.adminToken);
    const port = (t.app.getHttpServer().address() as { port: number } | null)?.port;
    if (!port) await t.app.listen(0, '127.0.0.1');
  });
  afterAll(async () => {
    await t.close();
    await sandbox.close();
  });
  afterEach(() => t.clock.reset());

  async function tenantOnSandbox(balance: number, price = 100) {
    const tenant = await createTenant(t, { balance, pricePerSegment: price, baseUrl: sandbox.url });
    const port = (t.app.getHttpServer().address() as { port: number }).port;
    sandbox.addAccount({
      username: tenant.providerAccount.username,
      password: 'provider-secret-pw',
      balance: '100000000',
      callbackUrl: reachableCallbackUrl(tenant.providerAccount.dlrCallbackUrl, port),
    });
    return { ...tenant, auth: bearer(tenant.apiKey) };
  }

  const send = (auth: Record<string, string>, body: Record<string, unknown>) =>
    t.http.post('/v1/messages').set(auth).send(body);

  async function messageStatuses(auth: Record<string, string>): Promise<string[]> {
    const res = await t.http.get('/v1/messages').query({ limit: 500 }).set(auth);
    expect(res.status).toBe(200);
    return res.body.data.map((m: { status: string }) => m.status);
  }

  async function allLedger(auth: Record<string, string>) {
    const res = await t.http.get('/v1/ledger').query({ limit: 500 }).set(auth);
    expect(res.status).toBe(200);
    expect(res.body.nextCursor).toBeNull();
    return res.body.data as { kind: string; amount: number; createdAt: string }[];
  }

  it('after a mixed run (sends, failures, cancels, pending, expiry) usage totals equal the ledger; CSV equals JSON', async () => {
    const tenant = await tenantOnSandbox(100_000, 100);
    const { auth } = tenant;
    const later = () => new Date(Date.now() + 3600_000).toISOString();
    // Scheduled first, two of them canceled (refunded) before anything else moves on this tenant: a cancel
    // racing a provider failure's refund on the same tenant can deadlock today (both take the tenant row
    // FOR UPDATE after their FK checks took KEY SHARE on it; reported to the ledger's lock-order work).
    const scheduled: string[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await send(auth, { to: '081234567890', text: `scheduled ${i}`, sendAt: later() });
      expect(r.status).toBe(202);
      scheduled.push(r.body.id);
    }
    for (const id of scheduled.slice(0, 2))
      expect((await t.http.delete(`/v1/messages/${id}`).set(auth)).status).toBe(200);
    const sends = [
      ...Array.from({ length: 6 }, (_, i) => send(auth, { to: '081234567890', text: `delivered ${i}` })),
      send(auth, { to: '081234567890', text: 'x'.repeat(200) }), // two segments, delivered
      ...Array.from({ length: 3 }, (_, i) => send(auth, { to: '6289912345678', text: `wrong number ${i}` })), // 52: refunded
      ...Array.from({ length: 3 }, (_, i) => send(auth, { to: '6289712345678', text: `stays pending ${i}` })), // 20 only
    ];
    const sent = await Promise.all(sends);
    expect(sent.map((r) => r.status)).toEqual(Array(13).fill(202));
    const batch = await t.http
      .post('/v1/messages/batch')
      .set(auth)
      .send({
        messages: [
          { to: '081234567890', text: 'batch a' },
          { to: '6289912345678', text: 'batch b' },
        ],
      });
    expect(batch.status).toBe(202);

    const settled = await waitFor(
      () => messageStatuses(auth),
      (s) =>
        s.filter((x) => x === 'delivered').length === 8 &&
        s.filter((x) => x === 'failed').length === 4 &&
        s.filter((x) => x === 'pending').length === 3,
    );
    expect(settled.filter((s) => s === 'delivered')).toHaveLength(8);
    // The gateway's 72-hour expiry is not part of this branch: what it leaves behind is a pending message whose
    // status is `expired` (never refunded). Usage reads that status.
    const pendingId = sent[10].body.id as string;
    await t.db.query(
      `UPDATE messages SET status = 'expired', finalized_at = now() WHERE id = $1 AND status = 'pending'`,
      [uuidOf(pendingId)],
    );

    const today = jakartaDay(new Date());
    const range = { from: jakartaDay(new Date(Date.now() - DAY)), to: jakartaDay(new Date(Date.now() + DAY)) };
    const res = await t.http
      .get('/v1/usage')
      .query({ ...range, granularity: 'day' })
      .set(auth);
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const records: UsageRecord[] = res.body.data;
    expect(records.map((r) => r.period)).toContain(today);

    const ledger = await allLedger(auth);
    const debits = ledger.filter((e) => e.kind === 'debit');
    const refunds = ledger.filter((e) => e.kind === 'refund');
    expect(refunds).toHaveLength(6); // 4 failures (52) + 2 cancels
    const totals = {
      messages: sum(records, 'messages'),
      segments: sum(records, 'segments'),
      amount: sum(records, 'amount'),
      delivered: sum(records, 'delivered'),
      failed: sum(records, 'failed'),
      refunded: sum(records, 'refunded'),
      expired: sum(records, 'expired'),
      pending: sum(records, 'pending'),
    };
    expect(totals).toEqual({
      messages: debits.length,
      segments: 19, // 18 one-segment messages and one of two
      amount: -[...debits, ...refunds].reduce((s, e) => s + e.amount, 0),
      delivered: 8,
      failed: 4,
      refunded: refunds.length,
      expired: 1,
      pending: 3 - 1 + 1, // two still pending at the provider, one still scheduled
    });
    expect(debits).toHaveLength(18);
    expect(totals.amount).toBe(1900 - 600);
    // The ledger's own answer: top-up minus the amount is the balance.
    expect((await t.http.get('/v1/balance').set(auth)).body.balance).toBe(100_000 - totals.amount);

    // Month granularity: the same totals; the current month's statement books the same debits and refunds.
    const monthly = await t.http
      .get('/v1/usage')
      .query({ ...range, granularity: 'month' })
      .set(auth);
    expect(monthly.status).toBe(200);
    expect(sum(monthly.body.data, 'amount')).toBe(totals.amount);
    expect(sum(monthly.body.data, 'messages')).toBe(totals.messages);
    const month = today.slice(0, 7);
    const statement = await t.http.get('/v1/statement').query({ month }).set(auth);
    expect(statement.status).toBe(200);
    const thisMonth = monthly.body.data.find((r: UsageRecord) => r.period === month);
    expect(statement.body.debits + statement.body.refunds).toBe(-thisMonth.amount);

    // CSV: header row and the same records.
    const csv = await t.http
      .get('/v1/usage')
      .query({ ...range, granularity: 'day' })
      .set(auth)
      .set('Accept', 'text/csv');
    expect(csv.status).toBe(200);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    expect(csv.text.split('\r\n')[0]).toBe('period,messages,segments,amount,delivered,failed,refunded,expired,pending');
    expect(csvRecords(csv.text)).toEqual(records);

    // The admin view of this tenant: the same records with the tenant id, for admin and billing users.
    const billing = await createAdminUser(t, 'billing');
    for (const token of [t.adminToken, billing.token]) {
      const adm = await t.http
        .get('/v1/admin/usage')
        .query({ ...range, granularity: 'day', tenantId: tenant.tenantId })
        .set(bearer(token));
      expect(adm.status).toBe(200);
      expect(adm.body.data).toEqual(records.map((r) => ({ tenantId: tenant.tenantId, ...r })));
    }
  });

  it('admin usage covers every tenant, one CSV row per tenant and period, and a tenant sees only its own', async () => {
    t.clock.set(new Date('2033-06-15T05:00:00Z')); // a day no other test touches
    const a = await tenantOnSandbox(10_000, 100);
    const b = await tenantOnSandbox(10_000, 250);
    expect((await send(a.auth, { to: '081234567890', text: 'a1' })).status).toBe(202);
    t.clock.set(new Date('2033-06-16T18:00:00Z')); // 17 Jun in Jakarta
    expect((await send(a.auth, { to: '081234567890', text: 'a2' })).status).toBe(202);
    expect((await send(b.auth, { to: '081234567890', text: 'b1' })).status).toBe(202);
    expect((await send(b.auth, { to: '081234567890', text: 'b2' })).status).toBe(202);

    const q = { from: '2033-06-15', to: '2033-06-17', granularity: 'day' };
    const csv = await t.http.get('/v1/admin/usage').query(q).set(admin).set('Accept', 'text/csv');
    expect(csv.status).toBe(200);
    expect(csv.headers['content-disposition']).toMatch(/attachment; filename="usage-2033-06-15-2033-06-17.csv"/);
    const rows = csvRecords(csv.text).filter((r) => r.tenantId === a.tenantId || r.tenantId === b.tenantId);
    const key = (r: Record<string, string | number>) => `${r.tenantId} ${r.period}`;
    expect(rows.map((r) => [r.tenantId, r.period, r.messages, r.amount]).sort()).toEqual(
      [
        [a.tenantId, '2033-06-15', 1, 100],
        [a.tenantId, '2033-06-17', 1, 100],
        [b.tenantId, '2033-06-17', 2, 500],
      ].sort(),
    );
    expect(new Set(rows.map(key)).size).toBe(rows.length);

    const own = await t.http.get('/v1/usage').query(q).set(b.auth);
    expect(own.body.data).toEqual([
      {
        period: '2033-06-17',
        messages: 2,
        segments: 2,
        amount: 500,
        delivered: expect.any(Number),
        failed: 0,
        refunded: 0,
        expired: 0,
        pending: expect.any(Number),
      },
    ]);
    expect(own.body.data[0].delivered + own.body.data[0].pending).toBe(2);
    // A tenant key cannot use the admin route.
    expectProblem(await t.http.get('/v1/admin/usage').query(q).set(b.auth), 403, 'forbidden');
  });

  it('statements chain across a forfeiture: 30 Nov + 3 months = 29 Feb (leap year), month edges at 17:00 UTC', async () => {
    // 30 Nov 2031 10:00 Jakarta: validity to 29 Feb 2032 10:00 Jakarta, grace to 29 Mar 2032 10:00 Jakarta.
    t.clock.set(new Date('2031-11-30T03:00:00Z'));
    const tenant = await tenantOnSandbox(10_000, 100);
    const { auth } = tenant;
    for (let i = 0; i < 3; i++) expect((await send(auth, { to: '081234567890', text: `nov ${i}` })).status).toBe(202);
    const sched = await send(auth, {
      to: '081234567890',
      text: 'later',
      sendAt: new Date('2031-12-01T03:00:00Z').toISOString(),
    });
    expect(sched.status).toBe(202);
    expect((await t.http.delete(`/v1/messages/${sched.body.id}`).set(auth)).status).toBe(200);
    const adjust = (amount: number) =>
      t.http.post(`/v1/admin/tenants/${tenant.tenantId}/adjustments`).set(admin).send({ amount, reason: 'stmt' });
    expect((await adjust(-50)).status).toBe(201);
    // 16:59 UTC is still 30 Nov in Jakarta; 17:00:01 UTC is 1 Dec.
    t.clock.set(new Date('2031-11-30T16:59:00Z')); // a minute of margin: the clock keeps running
    expect((await send(auth, { to: '081234567890', text: 'last of november' })).status).toBe(202);
    t.clock.set(new Date('2031-11-30T17:00:01Z'));
    expect((await send(auth, { to: '081234567890', text: 'first of december' })).status).toBe(202);
    expect((await adjust(500)).status).toBe(201);
    t.clock.set(new Date('2032-01-15T05:00:00Z'));
    for (let i = 0; i < 2; i++) expect((await send(auth, { to: '081234567890', text: `jan ${i}` })).status).toBe(202);
    // 29 Feb 2032 12:00 Jakarta: validity ended two hours ago, grace: sends refused, balance kept.
    t.clock.set(new Date('2032-02-29T05:00:00Z'));
    const refused = await send(auth, { to: '081234567890', text: 'too late' });
    expectProblem(refused, 402, 'balance_expired');
    t.clock.set(new Date('2032-02-29T16:30:00Z')); // 23:30 on 29 Feb in Jakarta
    expect((await adjust(-100)).status).toBe(201);
    // Just after graceUntil (29 Mar 2032 10:00 Jakarta): a read forfeits what is left.
    t.clock.set(new Date('2032-03-29T03:00:01Z'));
    expect((await t.http.get('/v1/balance').set(auth)).body).toMatchObject({ balance: 0, state: 'expired' });
    t.clock.set(new Date('2032-04-10T03:00:00Z'));
    expect(
      (await t.http.post(`/v1/admin/tenants/${tenant.tenantId}/topups`).set(admin).send({ amount: 1000 })).status,
    ).toBe(201);

    const months = ['2031-10', '2031-11', '2031-12', '2032-01', '2032-02', '2032-03', '2032-04'];
    const statements: Statement[] = [];
    for (const month of months) {
      const res = await t.http.get('/v1/statement').query({ month }).set(auth);
      expect(res.status).toBe(200);
      statements.push(res.body);
    }
    // Validity to the second: the clock moves on by a few milliseconds between set() and the top-up.
    for (const s of statements) {
      s.validUntil = s.validUntil && s.validUntil.slice(0, 19);
      s.graceUntil = s.graceUntil && s.graceUntil.slice(0, 19);
    }
    const validity = { validUntil: '2032-02-29T03:00:00', graceUntil: '2032-03-29T03:00:00' };
    const zero = { topups: 0, debits: 0, refunds: 0, adjustments: 0, expired: 0 };
    expect(statements).toEqual([
      { month: '2031-10', openingBalance: 0, ...zero, closingBalance: 0, validUntil: null, graceUntil: null },
      // top-up 10,000; 5 charges (3 sent, 1 scheduled then canceled, 1 at 16:59 UTC); 1 refund; -50
      {
        month: '2031-11',
        openingBalance: 0,
        ...zero,
        topups: 10_000,
        debits: -500,
        refunds: 100,
        adjustments: -50,
        closingBalance: 9550,
        ...validity,
      },
      {
        month: '2031-12',
        openingBalance: 9550,
        ...zero,
        debits: -100,
        adjustments: 500,
        closingBalance: 9950,
        ...validity,
      },
      { month: '2032-01', openingBalance: 9950, ...zero, debits: -200, closingBalance: 9750, ...validity },
      { month: '2032-02', openingBalance: 9750, ...zero, adjustments: -100, closingBalance: 9650, ...validity },
      { month: '2032-03', openingBalance: 9650, ...zero, expired: -9650, closingBalance: 0, ...validity },
      {
        month: '2032-04',
        openingBalance: 0,
        ...zero,
        topups: 1000,
        closingBalance: 1000,
        validUntil: '2032-07-10T03:00:00',
        graceUntil: '2032-08-10T03:00:00',
      },
    ]);
    for (const [i, s] of statements.entries()) {
      expect(s.openingBalance + s.topups + s.debits + s.refunds + s.adjustments + s.expired).toBe(s.closingBalance);
      if (i > 0) expect(s.openingBalance).toBe(statements[i - 1].closingBalance);
    }
    expect(statements[statements.length - 1].closingBalance).toBe(
      (await t.http.get('/v1/balance').set(auth)).body.balance,
    );

    // Usage per day around the 17:00 UTC edge, and per month, for the same tenant.
    const days = await t.http.get('/v1/usage').query({ from: '2031-11-30', to: '2031-12-01' }).set(auth);
    expect(days.body.data.map((r: UsageRecord) => [r.period, r.messages, r.amount, r.refunded])).toEqual([
      ['2031-11-30', 5, 400, 1],
      ['2031-12-01', 1, 100, 0],
    ]);
    const byMonth = await t.http
      .get('/v1/usage')
      .query({ from: '2031-11-01', to: '2032-04-30', granularity: 'month' })
      .set(auth);
    expect(byMonth.body.data.map((r: UsageRecord) => [r.period, r.messages, r.amount])).toEqual([
      ['2031-11', 5, 400],
      ['2031-12', 1, 100],
      ['2032-01', 2, 200],
    ]);
    // Usage amount per month equals the statement's debits and refunds of that month.
    for (const r of byMonth.body.data as UsageRecord[]) {
      const s = statements.find((x) => x.month === r.period)!;
      expect(-(s.debits + s.refunds)).toBe(r.amount);
    }

    // The admin route gives the same, as JSON and as one CSV row; a billing user may read it.
    const billing = await createAdminUser(t, 'billing');
    const adm = await t.http
      .get(`/v1/admin/tenants/${tenant.tenantId}/statement`)
      .query({ month: '2031-11' })
      .set(bearer(billing.token));
    expect(adm.status).toBe(200);
    expect({
      ...adm.body,
      validUntil: adm.body.validUntil.slice(0, 19),
      graceUntil: adm.body.graceUntil.slice(0, 19),
    }).toEqual(statements[1]);
    const csv = await t.http
      .get(`/v1/admin/tenants/${tenant.tenantId}/statement`)
      .query({ month: '2031-11' })
      .set(admin)
      .set('Accept', 'text/csv');
    expect(csv.status).toBe(200);
    expect(csv.headers['content-type']).toMatch(/^text\/csv/);
    const lines = csv.text.split('\r\n');
    expect(lines[0]).toBe(
      'month,openingBalance,topups,debits,refunds,adjustments,expired,closingBalance,validUntil,graceUntil',
    );
    expect(csvRecords(csv.text)).toEqual([{ ...adm.body }]);

    // The current month (April) is allowed, May is in the future.
    expectProblem(await t.http.get('/v1/statement').query({ month: '2032-05' }).set(auth), 400, 'validation_failed');
  });

  it('defaults follow the injected clock’s Jakarta date: at 17:00 UTC on 30 Nov it is already 1 Dec', async () => {
    // 23:50 on 30 Nov in Jakarta (the clock keeps running: a margin for a slow machine; the exact instant
    // 16:59:59.999 UTC is table-tested in billing-calendar.spec.ts).
    t.clock.set(new Date('2035-11-30T16:50:00.000Z'));
    const tenant = await tenantOnSandbox(10_000, 100);
    expect((await send(tenant.auth, { to: '081234567890', text: 'november' })).status).toBe(202);
    const november = await t.http.get('/v1/usage').set(tenant.auth);
    expect(november.body.data.map((r: UsageRecord) => [r.period, r.messages])).toEqual([['2035-11-30', 1]]);

    t.clock.set(new Date('2035-11-30T17:00:00.000Z')); // 00:00 on 1 Dec in Jakarta (later only moves further in)
    expect((await send(tenant.auth, { to: '081234567890', text: 'december' })).status).toBe(202);
    // Default range is now 1 Dec .. 1 Dec: November's message is outside it.
    const december = await t.http.get('/v1/usage').set(tenant.auth);
    expect(december.body.data.map((r: UsageRecord) => [r.period, r.messages])).toEqual([['2035-12-01', 1]]);
    const months = await t.http
      .get('/v1/usage')
      .query({ from: '2035-11-01', to: '2035-12-31', granularity: 'month' })
      .set(tenant.auth);
    expect(months.body.data.map((r: UsageRecord) => [r.period, r.messages, r.amount])).toEqual([
      ['2035-11', 1, 100],
      ['2035-12', 1, 100],
    ]);
    // The statement of the current month (December) starts with November's closing balance.
    const dec = await t.http.get('/v1/statement').query({ month: '2035-12' }).set(tenant.auth);
    expect(dec.body).toMatchObject({ openingBalance: 9900, debits: -100, closingBalance: 9800 });
    expectProblem(
      await t.http.get('/v1/statement').query({ month: '2036-01' }).set(tenant.auth),
      400,
      'validation_failed',
    );
  });

  it('bad parameters are 400 validation_failed; unknown tenants 404; roles enforced', async () => {
    const tenant = await tenantOnSandbox(1000);
    const billing = await createAdminUser(t, 'billing');
    const bad: Record<string, string>[] = [
      { from: '2031-02-29' },
      { to: '2031-04-31' },
      { from: '2031-13-01' },
      { from: '31-01-01' },
      { from: '2031-03-02', to: '2031-03-01' },
      { granularity: 'week' },
      { granularity: 'DAY' },
      { from: '1999-12-31', to: '2000-01-02' },
      { unknown: 'x' },
    ];
    for (const q of bad) {
      expectProblem(await t.http.get('/v1/usage').query(q).set(tenant.auth), 400, 'validation_failed');
      expectProblem(await t.http.get('/v1/admin/usage').query(q).set(admin), 400, 'validation_failed');
    }
    expectProblem(await t.http.get('/v1/admin/usage').query({ tenantId: 'nope' }).set(admin), 400, 'validation_failed');
    expectProblem(
      await t.http
        .get('/v1/admin/usage')
        .query({ tenantId: `ten_${'0'.repeat(32)}` })
        .set(admin),
      404,
      'not_found',
    );
    for (const month of ['2031-13', '2031-00', '2031-1', '2031-01-01', '']) {
      expectProblem(await t.http.get('/v1/statement').query({ month }).set(tenant.auth), 400, 'validation_failed');
      expectProblem(
        await t.http.get(`/v1/admin/tenants/${tenant.tenantId}/statement`).query({ month }).set(admin),
        400,
        'validation_failed',
      );
    }
    expectProblem(await t.http.get('/v1/statement').set(tenant.auth), 400, 'validation_failed');
    expectProblem(
      await t.http
        .get(`/v1/admin/tenants/ten_${'0'.repeat(32)}/statement`)
        .query({ month: '2031-01' })
        .set(admin),
      404,
      'not_found',
    );
    // Defaults: this month up to today, per day.
    expect((await t.http.get('/v1/usage').set(tenant.auth)).status).toBe(200);
    // Roles: billing reads usage and statements but cannot verify the books; tenants cannot use admin routes.
    expect((await t.http.get('/v1/admin/usage').set(bearer(billing.token))).status).toBe(200);
    expectProblem(await t.http.get('/v1/admin/ledger/verify').set(bearer(billing.token)), 403, 'forbidden');
    expectProblem(await t.http.get('/v1/usage'), 401, 'unauthorized');
  });

  it('the OpenAPI document names the calendar and offers JSON and CSV', async () => {
    const doc = (await t.http.get('/docs-json')).body;
    for (const path of ['/v1/usage', '/v1/admin/usage', '/v1/statement', '/v1/admin/tenants/{id}/statement']) {
      const op = doc.paths[path]?.get;
      expect({ path, described: op?.description }).toEqual({
        path,
        described: expect.stringContaining('Asia/Jakarta'),
      });
      expect(Object.keys(op.responses['200'].content).sort()).toEqual(['application/json', 'text/csv']);
    }
    const usage = doc.paths['/v1/usage'].get.parameters.map((p: { name: string }) => p.name).sort();
    expect(usage).toEqual(['from', 'granularity', 'to']);
    expect(doc.paths['/v1/admin/ledger/verify'].get).toBeDefined();
  });

  it('streams a large admin CSV across several cursor batches and returns the connection', async () => {
    // 3,000 tenant-days of usage, written straight into the tables in one statement (the accept path is
    // tested elsewhere): more rows than one FETCH, so the response is several cursor batches.
    const { tenantId } = await tenantOnSandbox(0, 1);
    const id = uuidOf(tenantId);
    await t.db.query(
      `WITH m AS (
         INSERT INTO messages (id, tenant_id, provider_account_id, msisdn, text, status, segments, encoding, price, created_at)
         SELECT gen_random_uuid(), $1, (SELECT provider_account_id FROM tenants WHERE id = $1), '6281234567890', 'bulk',
                'delivered', 1, 'GSM-7', 0, timestamptz '2040-01-01 00:00+07' + g * interval '1 day'
           FROM generate_series(0, 2999) g
         RETURNING id, created_at)
       INSERT INTO ledger_entries (id, tenant_id, kind, amount, balance_after, message_id, created_at)
       SELECT gen_random_uuid(), $1, 'debit', 0, 0, m.id, m.created_at FROM m`,
      [id],
    );
    const res = await t.http
      .get('/v1/admin/usage')
      .query({ from: '2040-01-01', to: '2048-12-31', tenantId })
      .set(admin)
      .set('Accept', 'text/csv');
    expect(res.status).toBe(200);
    const rows = csvRecords(res.text);
    expect(rows).toHaveLength(3000);
    expect(rows[0]).toMatchObject({ tenantId, period: '2040-01-01', messages: 1, delivered: 1, amount: 0 });
    expect(rows[2999].period).toBe('2048-03-18');
    const json = await t.http
      .get('/v1/admin/usage')
      .query({ from: '2040-01-01', to: '2048-12-31', tenantId })
      .set(admin);
    expect(json.body.data).toHaveLength(3000);
    // Every cursor's connection went back to the pool (its transaction ended). Only the usage cursor's
    // sessions are counted: the dispatcher and other jobs of this app have short transactions of their own.
    const [open] = await t.db.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND state = 'idle in transaction' AND query LIKE 'FETCH%usage_records%'`,
    );
    expect(open.n).toBe(0);
  });

  it('backpressure: while the response cannot take more, the cursor waits open (one batch ahead at most); drain resumes it, close releases it', async () => {
    // Deterministic: the "socket" is a real Writable whose writes complete only when the test opens the gate,
    // so nothing depends on how much the machine's loopback buffers hold (32 MB on some CI machines).
    const { providerAccountId } = await createTenant(t);
    await seedUsage(t.db, providerAccountId, 10, 400); // 4,000 usage records = 8 cursor batches of 500
    const usage = t.app.get(UsageService);
    const range = usage.resolve({ from: '2060-01-01', to: '2061-12-31' });

    const run = (res: GatedResponse) => {
      let pulled = 0;
      const counted = (async function* () {
        for await (const batch of usage.records(range, null)) {
          pulled++;
          yield batch;
        }
      })();
      const done = streamRecords(
        res as unknown as StreamTarget,
        { csv: true, columns: ['tenantId', ...USAGE_COLUMNS], filename: 'u.csv' },
        counted,
      );
      return { done, pulled: () => pulled };
    };

    // 1. The reader stops: after the first full buffer the stream waits for 'drain' with its cursor open.
    const slow = new GatedResponse();
    const a = run(slow);
    expect(await waitFor(openCursors, (n) => n === 1, 5000)).toBe(1);
    await waitFor(
      () => Promise.resolve(slow.waiting),
      (w) => w,
      5000,
    );
    const pulledWhileBlocked = a.pulled();
    await new Promise((r) => setTimeout(r, 300));
    expect(a.pulled()).toBe(pulledWhileBlocked); // nothing more read from the database while blocked
    expect(pulledWhileBlocked).toBeLessThanOrEqual(2);
    expect(await openCursors()).toBe(1);
    // 2. The reader resumes: every record arrives and the transaction ends.
    slow.open();
    await a.done;
    const lines = slow
      .body()
      .split('\r\n')
      .filter((l) => l.length > 0);
    expect(lines[0]).toBe('tenantId,period,messages,segments,amount,delivered,failed,refunded,expired,pending');
    expect(lines.length - 1).toBe(4000);
    expect(a.pulled()).toBe(8);
    expect(await waitFor(openCursors, (n) => n === 0, 5000)).toBe(0);

    // 3. The reader goes away while the stream waits: the cursor's transaction is rolled back, its
    //    connection returned, and the rest is never read.
    const leaving = new GatedResponse();
    const b = run(leaving);
    await waitFor(
      () => Promise.resolve(leaving.waiting),
      (w) => w,
      5000,
    );
    expect(await openCursors()).toBe(1);
    leaving.destroy();
    await b.done;
    expect(b.pulled()).toBeLessThan(8);
    expect(await waitFor(openCursors, (n) => n === 0, 5000)).toBe(0);
  });

  it('backpressure over HTTP: a paused client gets every record when it resumes; one that leaves mid-stream frees the cursor', async () => {
    const { providerAccountId } = await createTenant(t);
    await seedUsage(t.db, providerAccountId, 20, 500, '2070-01-01'); // 10,000 records, ~750 kB of CSV
    const port = (t.app.getHttpServer().address() as { port: number }).port;
    const getOne = () =>
      new Promise<IncomingMessage>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            path: '/v1/admin/usage?from=2070-01-01&to=2071-12-31',
            headers: { Authorization: `Bearer ${t.adminToken}`, Accept: 'text/csv' },
          },
          resolve,
        );
        req.on('error', reject);
        req.end();
      });
    // Whatever happens below, no request is left paused (a paused response keeps a cursor, a pooled
    // connection and so the app open after the test).
    const opened: IncomingMessage[] = [];
    const get = () => getOne().then((r) => (opened.push(r), r));
    try {
      const slow = await get();
      expect(slow.statusCode).toBe(200);
      slow.pause();
      await new Promise((r) => setTimeout(r, 300));
      let body = '';
      slow.setEncoding('utf8');
      slow.on('data', (c: string) => (body += c));
      slow.resume();
      await new Promise((r) => slow.on('end', r));
      const lines = body.split('\r\n').filter((l) => l.length > 0);
      expect(lines.length - 1).toBe(10_000);
      expect(await waitFor(openCursors, (n) => n === 0, 5000)).toBe(0);

      const leaving = await get();
      leaving.destroy();
      expect(await waitFor(openCursors, (n) => n === 0, 5000)).toBe(0);
    } finally {
      for (const r of opened) r.destroy();
    }
  }, 60_000);

  /** Usage cursors open right now (sessions idle inside the export's transaction). */
  async function openCursors(): Promise<number> {
    const [row] = await t.db.query(
      `SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE datname = current_database() AND state = 'idle in transaction' AND query LIKE 'FETCH%usage_records%'`,
    );
    return Number(row.n);
  }
});

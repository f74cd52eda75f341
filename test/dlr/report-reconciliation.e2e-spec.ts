/**
 * Issue 9: the provider's report (reports_post.php) reconciled against our records by one routine, daily for
 * the previous Asia/Jakarta day and on demand (`GET /v1/admin/provider-accounts/{id}/report`). Statuses that
 * never arrived are filled through the report path; the summary (counts and the mismatch rows: ids the
 * provider has and we don't, final statuses that differ, more parts counted than we charged) is returned
 * and kept in `report_reconciliations`. Sandbox provider, real PostgreSQL, the injected clock (the sandbox
 * reads the same clock), fixed at 10:00 in Jakarta so every send of a test falls on one Jakarta day; the later
 * tests (catch-up of days left open, sends near Jakarta midnight) move it forward to the times they name.
 */
import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { DateTime } from 'luxon';
import { register } from 'prom-client';
import { CATCH_UP_DAYS, ReportPollerService } from '../../src/dlr/report-poller.service';
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
import { waitFor } from '../support/wait';

const MIN = 60_000;
const HOUR = 3_600_000;
const PASSWORD = 'provider-secret-pw';

describe('issue 9: reconciliation of the provider report, daily and on demand (sandbox provider, real PostgreSQL)', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;
  let poller: ReportPollerService;
  let appPort: number;

  beforeAll(async () => {
    sandbox = await startSandbox({
      // No callbacks: statuses arrive only when the test (or the reconciliation) says so.
      knobs: { dlrDelayMs: [5, 20], latencyMs: [0, 0], dropDlrRate: 1 },
      now: () => (t ? t.clock.now() : new Date()),
    });
    t = await startTestApp({ DISPATCH_POLL_MS: '50', PROVIDER_SEND_RATE_PER_SECOND: '0' });
    await t.app.listen(0, '127.0.0.1');
    appPort = (t.app.getHttpServer().address() as { port: number }).port;
    poller = t.app.get(ReportPollerService);
    const tomorrow = DateTime.now().setZone('Asia/Jakarta').plus({ days: 1 });
    t.clock.set(tomorrow.set({ hour: 10, minute: 0, second: 0, millisecond: 0 }).toJSDate());
  });
  afterAll(async () => {
    await t?.close();
    await sandbox?.close();
  });

  async function row(id: string) {
    const [r] = await t.db.query(`SELECT status, provider_message_id, segments FROM messages WHERE id = $1`, [
      uuidOf(id),
    ]);
    return r as { status: string; provider_message_id: string | null; segments: number };
  }

  async function send(apiKey: string, to: string, text: string) {
    const res = await t.http.post('/v1/messages').set(bearer(apiKey)).send({ to, text });
    expect(res.status).toBe(202);
    const id = res.body.id as string;
    const r = await waitFor(
      `message ${id} submitted`,
      () => row(id),
      (m) => m.status === 'submitted',
    );
    return { id, pid: r.provider_message_id! };
  }

  async function providerSays(pid: string, code: string) {
    await waitFor(
      `report.php ${pid}`,
      () => fetch(`${sandbox.url}/report.php?rpt=${pid}`).then((r) => r.text()),
      (body) => body.startsWith(code),
    );
  }

  const metric = async (name: string, labels: Record<string, string>) => {
    const m = await register.getSingleMetric(name)?.get();
    return (m?.values ?? [])
      .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
      .reduce((s, v) => s + v.value, 0);
  };
  const mismatchMetrics = async (trigger: string) => ({
    unknown: await metric('gerbang_dlr_reconcile_mismatches_total', { kind: 'unknown', trigger }),
    statusDiffers: await metric('gerbang_dlr_reconcile_mismatches_total', { kind: 'status_differs', trigger }),
    moreParts: await metric('gerbang_dlr_reconcile_mismatches_total', { kind: 'more_parts', trigger }),
  });

  /**
   * One Jakarta day of an account with every kind of finding:
   * - `filled`: delivered at the provider, its callback never came (still `submitted` here);
   *   so is `moreParts`: the reconciliation applies both 22s (`applied: 2`);
   * - `differs`: delivered (and charged) at the provider, but a callback told us 52: failed and refunded here;
   * - `moreParts`: one segment charged here, the provider counted (and charged) 2 SMS (`smsOvercountRate`);
   * - `foreign`: sent with the account's credentials outside the gateway (the provider's web panel, say).
   */
  async function mismatchedDay() {
    const tenant = await createTenant(t, { balance: 1_000_000, pricePerSegment: 100, baseUrl: sandbox.url });
    const username = tenant.providerAccount.username as string;
    sandbox.addAccount({ username, password: PASSWORD, balance: '100000000' });
    const callback = reachableCallbackUrl(tenant.providerAccount.dlrCallbackUrl, appPort);

    const filled = await send(tenant.apiKey, '6281500000001', 'never reported back');
    const differs = await send(tenant.apiKey, '6281500000002', 'told failed, provider delivered');
    sandbox.setKnobs({ smsOvercountRate: 1 });
    const moreParts = await send(tenant.apiKey, '6281500000003', 'one segment here, two there');
    sandbox.setKnobs({ smsOvercountRate: 0 });
    const foreignAt = t.clock.now();
    const foreign = await fetch(`${sandbox.url}/send_post.php`, {
      method: 'POST',
      body: new URLSearchParams({ username, password: PASSWORD, hp: '6281500000004', message: 'from the web panel' }),
    }).then((r) => r.text());
    const foreignPid = foreign.trim();
    expect(foreignPid).toMatch(/^\d+$/);
    for (const pid of [filled.pid, differs.pid, moreParts.pid, foreignPid]) await providerSays(pid, '22');

    const told = await fetch(`${callback}?session_id=${differs.pid}&error_code=52&error_message=No%20Charge`);
    expect(told.status).toBe(200);
    await waitFor(
      'the told report applied',
      () => row(differs.id),
      (r) => r.status === 'failed',
    );
    expect(await row(moreParts.id)).toMatchObject({ segments: 1 });
    expect((await row(filled.id)).status).toBe('submitted');
    return { ...tenant, day: jakartaDay(t.clock.now()), filled, differs, moreParts, foreignPid, foreignAt };
  }

  /** The summary every test expects of `mismatchedDay()`, as the API shows it. */
  function expectedFindings(s: Awaited<ReturnType<typeof mismatchedDay>>) {
    return {
      counts: { listed: 4, applied: 2, unknown: 1, missing: 0, statusDiffers: 1, moreParts: 1 },
      unknown: [
        {
          providerMessageId: s.foreignPid,
          msisdn: '6281500000004',
          sentAt: expect.any(String),
          providerStatusCode: 22,
        },
      ],
      statusDiffers: [
        {
          messageId: s.differs.id,
          providerMessageId: s.differs.pid,
          ours: 'failed',
          theirs: 'delivered',
          providerStatusCode: 22,
        },
      ],
      moreParts: [{ messageId: s.moreParts.id, providerMessageId: s.moreParts.pid, segments: 1, smsCount: 2 }],
      missing: [],
    };
  }

  it('on demand: fills the statuses that never arrived, returns the mismatches and keeps the summary', async () => {
    const s = await mismatchedDay();
    const billing = await createAdminUser(t, 'billing');
    const metricsBefore = await mismatchMetrics('on_demand');

    const res = await t.http
      .get(`/v1/admin/provider-accounts/${s.providerAccountId}/report?start=${s.day}&end=${s.day}`)
      .set(bearer(billing.token));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      start: s.day,
      end: s.day,
      trigger: 'on_demand',
      providerAccountId: s.providerAccountId,
      providerRows: 4,
      ...expectedFindings(s),
    });
    expect(res.body.id).toMatch(/^rec_[0-9a-f]{32}$/);
    expect(Math.abs(Date.parse(res.body.unknown[0].sentAt) - s.foreignAt.getTime())).toBeLessThan(1000);
    expect(res.body.header).toContain('sms_count');

    // Filled through the report path: stored raw with source 'report', applied.
    expect((await row(s.filled.id)).status).toBe('delivered');
    expect(
      await t.db.query(`SELECT source FROM delivery_reports WHERE message_id = $1`, [uuidOf(s.filled.id)]),
    ).toEqual([{ source: 'report' }]);

    // Kept: one row, the same counts and rows.
    const kept = await t.db.query(
      `SELECT trigger, start_day::text AS start, end_day::text AS end, listed, applied, unknown, missing,
              status_differs, more_parts, mismatches
         FROM report_reconciliations WHERE provider_account_id = $1`,
      [uuidOf(s.providerAccountId)],
    );
    expect(kept).toHaveLength(1);
    expect(kept[0]).toMatchObject({
      trigger: 'on_demand',
      start: s.day,
      end: s.day,
      listed: 4,
      applied: 2,
      unknown: 1,
      missing: 0,
      status_differs: 1,
      more_parts: 1,
    });
    expect(kept[0].mismatches.moreParts).toEqual([
      { messageId: uuidOf(s.moreParts.id), providerMessageId: s.moreParts.pid, segments: 1, smsCount: 2 },
    ]);

    // Readable again later, by admin and billing.
    const list = await t.http
      .get(`/v1/admin/provider-accounts/${s.providerAccountId}/reconciliations`)
      .set(bearer(billing.token));
    expect(list.status).toBe(200);
    expect(list.body).toEqual({
      data: [
        {
          id: res.body.id,
          providerAccountId: s.providerAccountId,
          start: s.day,
          end: s.day,
          trigger: 'on_demand',
          createdAt: res.body.createdAt,
          counts: res.body.counts,
        },
      ],
      nextCursor: null,
    });
    const one = await t.http
      .get(`/v1/admin/provider-accounts/${s.providerAccountId}/reconciliations/${res.body.id}`)
      .set(bearer(t.adminToken));
    expect(one.status).toBe(200);
    const { header: _h, rows: _r, providerRows: _p, ...summary } = res.body;
    expect(one.body).toEqual(summary);

    expect(await mismatchMetrics('on_demand')).toEqual({
      unknown: metricsBefore.unknown + 1,
      statusDiffers: metricsBefore.statusDiffers + 1,
      moreParts: metricsBefore.moreParts + 1,
    });
  });

  it('daily: the previous Jakarta day goes through the same routine, its summary kept with trigger daily', async () => {
    const s = await mismatchedDay();
    const pac = uuidOf(s.providerAccountId);
    const metricsBefore = await mismatchMetrics('daily');

    t.clock.advance(24 * HOUR);
    const outcomes = (await poller.reconcileOpenDays()).filter((o) => o.providerAccountId === pac);
    expect(outcomes).toEqual([
      expect.objectContaining({
        kind: 'done',
        day: s.day,
        listed: 4,
        applied: 2,
        unknown: 1,
        missing: 0,
        statusDiffers: 1,
        moreParts: 1,
      }),
    ]);
    expect((await row(s.filled.id)).status).toBe('delivered');

    const kept = await t.db.query(
      `SELECT id, trigger, start_day::text AS start, end_day::text AS end FROM report_reconciliations WHERE provider_account_id = $1`,
      [pac],
    );
    expect(kept).toEqual([{ id: expect.any(String), trigger: 'daily', start: s.day, end: s.day }]);
    const one = await t.http
      .get(`/v1/admin/provider-accounts/${s.providerAccountId}/reconciliations/rec_${kept[0].id.replace(/-/g, '')}`)
      .set(bearer(t.adminToken));
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ trigger: 'daily', ...expectedFindings(s) });

    const after = await mismatchMetrics('daily');
    expect(after.unknown).toBeGreaterThanOrEqual(metricsBefore.unknown + 1);
    expect(after.statusDiffers).toBeGreaterThanOrEqual(metricsBefore.statusDiffers + 1);
    expect(after.moreParts).toBeGreaterThanOrEqual(metricsBefore.moreParts + 1);
  });

  it('a daily run that failed is run again by a later round, also after a round that found the day still claimed', async () => {
    // Not at the sandbox yet: reports_post.php answers with the wrong-credentials sentence.
    const tenant = await createTenant(t, { baseUrl: sandbox.url });
    const pac = uuidOf(tenant.providerAccountId);
    t.clock.advance(24 * HOUR); // a day no round has seen
    const day = jakartaDay(new Date(t.clock.now().getTime() - 24 * HOUR));
    const dayOf = async () =>
      (
        await t.db.query(`SELECT done_at, last_error FROM report_days WHERE provider_account_id = $1 AND day = $2`, [
          pac,
          day,
        ])
      )[0] as { done_at: Date | null; last_error: string | null } | undefined;

    await poller.round(); // claims the day, the download fails: claimed again in 15 minutes
    expect(await dayOf()).toMatchObject({ done_at: null, last_error: expect.stringMatching(/^reports_post\.php: /) });
    await poller.round(); // a few seconds later: still claimed, nothing to run
    sandbox.addAccount({ username: tenant.providerAccount.username as string, password: PASSWORD, balance: '1000' });
    t.clock.advance(16 * 60_000);
    await poller.round();
    expect(await dayOf()).toMatchObject({ done_at: expect.any(Date), last_error: null });
  });

  it("daily: an account is claimed when its turn comes, so a slow account's run does not hand the round's later accounts to another process as well", async () => {
    // The first account's provider answers slowly; the second's at once. One round reads them one after the other.
    const slowSandbox = await startSandbox({
      knobs: { latencyMs: [1500, 1500], dropDlrRate: 1 },
      now: () => t.clock.now(),
    });
    try {
      const slow = await createTenant(t, { baseUrl: slowSandbox.url });
      slowSandbox.addAccount({
        username: slow.providerAccount.username as string,
        password: PASSWORD,
        balance: '1000',
      });
      const next = await createTenant(t, { baseUrl: sandbox.url });
      sandbox.addAccount({ username: next.providerAccount.username as string, password: PASSWORD, balance: '1000' });
      const pac = uuidOf(next.providerAccountId);
      t.clock.advance(24 * HOUR); // a day no round has seen

      // Process A's round waits on the slow provider for longer than a claim's lease (provider timeout + 5 min);
      // then process B's round takes over what A's lease no longer covers.
      const a = poller.reconcileOpenDays();
      await new Promise((r) => setTimeout(r, 300));
      t.clock.advance(6 * 60_000);
      const b = await poller.reconcileOpenDays();
      const both = [...(await a), ...b].filter((o) => o.providerAccountId === pac);
      expect(both).toEqual([expect.objectContaining({ kind: 'done' })]);
      const [{ n }] = await t.db.query(
        `SELECT count(*)::int AS n FROM report_reconciliations WHERE provider_account_id = $1 AND trigger = 'daily'`,
        [pac],
      );
      expect(n).toBe(1);
    } finally {
      await slowSandbox.close();
    }
  });

  it('an answer that is not a report keeps nothing: 409 on demand, and the daily job leaves the day open', async () => {
    // No such user at the sandbox: reports_post.php answers with the wrong-credentials sentence.
    const tenant = await createTenant(t, { baseUrl: sandbox.url });
    const pac = uuidOf(tenant.providerAccountId);
    const day = jakartaDay(t.clock.now());
    const res = await t.http
      .get(`/v1/admin/provider-accounts/${tenant.providerAccountId}/report?start=${day}&end=${day}`)
      .set(bearer(t.adminToken));
    expectProblem(res, 409, 'conflict');

    t.clock.advance(24 * HOUR);
    const outcomes = (await poller.reconcileOpenDays()).filter((o) => o.providerAccountId === pac);
    expect(outcomes).toEqual([
      expect.objectContaining({ kind: 'failed', reason: expect.stringMatching(/^reports_post\.php: /) }),
    ]);
    const [{ n }] = await t.db.query(
      `SELECT count(*)::int AS n FROM report_reconciliations WHERE provider_account_id = $1`,
      [pac],
    );
    expect(n).toBe(0);
  });

  /** Forward to the next Jakarta day at `time` (the clock never moves back in this file). */
  function nextJakartaDayAt(time: { hour: number; minute?: number; second?: number }) {
    const day = DateTime.fromJSDate(t.clock.now(), { zone: 'Asia/Jakarta' }).plus({ days: 1 }).startOf('day');
    t.clock.set(day.set(time).toJSDate());
  }

  it('a day whose download fails all through its own day is reconciled the next day, once the provider answers again', async () => {
    nextJakartaDayAt({ hour: 10 });
    const tenant = await createTenant(t, { balance: 1_000_000, pricePerSegment: 100, baseUrl: sandbox.url });
    const username = tenant.providerAccount.username as string;
    sandbox.addAccount({ username, password: PASSWORD, balance: '100000000' });
    const pac = uuidOf(tenant.providerAccountId);
    const sent = await send(tenant.apiKey, '6281500000011', 'its callback never came');
    await providerSays(sent.pid, '22');
    const day = jakartaDay(t.clock.now());
    const nextDay = jakartaDay(new Date(t.clock.now().getTime() + 24 * HOUR));
    const mine = async () => (await poller.reconcileOpenDays()).filter((o) => o.providerAccountId === pac);
    const failed = (d: string) => expect.objectContaining({ kind: 'failed', day: d });

    // The provider's report fails from the start of the next day to its end (here: the credentials are refused).
    sandbox.addAccount({ username, password: 'changed-at-the-provider', balance: '100000000' });
    t.clock.advance(24 * HOUR); // 10:00 the next day
    expect(await mine()).toEqual([failed(day)]);
    t.clock.advance(16 * MIN);
    expect(await mine()).toEqual([failed(day)]);
    t.clock.advance(13 * HOUR + 30 * MIN); // 23:46
    expect(await mine()).toEqual([failed(day)]);
    expect((await row(sent.id)).status).toBe('submitted');

    // The day after, the provider answers again: the day left open is reconciled (oldest first), then the next.
    sandbox.addAccount({ username, password: PASSWORD, balance: '100000000' });
    t.clock.advance(10 * HOUR + 14 * MIN); // 10:00 two days later
    expect(await mine()).toEqual([
      expect.objectContaining({ kind: 'done', day, listed: 1, applied: 1, missing: 0 }),
      expect.objectContaining({ kind: 'done', day: nextDay, listed: 0, applied: 0 }),
    ]);
    expect((await row(sent.id)).status).toBe('delivered');
    const days = await t.db.query(
      `SELECT day::text AS day, done_at IS NOT NULL AS done, last_error FROM report_days
        WHERE provider_account_id = $1 ORDER BY day`,
      [pac],
    );
    expect(days).toEqual([
      { day, done: true, last_error: null },
      { day: nextDay, done: true, last_error: null },
    ]);
    expect(await mine()).toEqual([]);
  });

  it('a day still open CATCH_UP_DAYS days later is given up: logged once, left open, never tried again', async () => {
    nextJakartaDayAt({ hour: 10 });
    // Not at the sandbox yet: reports_post.php answers with the wrong-credentials sentence.
    const tenant = await createTenant(t, { baseUrl: sandbox.url });
    const pac = uuidOf(tenant.providerAccountId);
    const mine = async () => (await poller.reconcileOpenDays()).filter((o) => o.providerAccountId === pac);
    const dayRow = async (d: string) =>
      (
        await t.db.query(
          `SELECT done_at, given_up_at, last_error FROM report_days WHERE provider_account_id = $1 AND day = $2`,
          [pac, d],
        )
      )[0] as { done_at: Date | null; given_up_at: Date | null; last_error: string | null };
    const warn = jest.spyOn(Logger.prototype, 'warn');
    const givenUpLogs = () =>
      warn.mock.calls.filter(
        ([fields, message]) =>
          (fields as { accountId?: string }).accountId === pac && String(message).includes('given up'),
      );
    try {
      const day = jakartaDay(t.clock.now());
      t.clock.advance(24 * HOUR);
      expect(await mine()).toEqual([expect.objectContaining({ kind: 'failed', day })]);

      // The provider answers again only CATCH_UP_DAYS days later: the days since are reconciled, oldest first;
      // that first day, now older than the window, is given up.
      sandbox.addAccount({ username: tenant.providerAccount.username as string, password: PASSWORD, balance: '1000' });
      t.clock.advance(CATCH_UP_DAYS * 24 * HOUR);
      const since = Array.from({ length: CATCH_UP_DAYS }, (_, i) =>
        DateTime.fromISO(day, { zone: 'Asia/Jakarta' })
          .plus({ days: i + 1 })
          .toISODate(),
      );
      expect((await mine()).map((o) => [o.day, o.kind])).toEqual(since.map((d) => [d, 'done']));
      const givenUp = await dayRow(day);
      expect(givenUp).toMatchObject({
        done_at: null,
        given_up_at: expect.any(Date),
        last_error: expect.stringMatching(/^reports_post\.php: /),
      });
      expect(givenUpLogs()).toHaveLength(1);

      t.clock.advance(16 * MIN);
      expect(await mine()).toEqual([]);
      expect(await dayRow(day)).toEqual(givenUp);
      expect(givenUpLogs()).toHaveLength(1);
    } finally {
      warn.mockRestore();
    }
  });

  it.each([
    // The brief's case: our 23:59:30 is the provider's 00:01:30, dated the next day.
    { case: 'ahead', skewMs: 2 * MIN, sendAtMs: -30_000, absentAtMs: -2 * MIN },
    // The other edge: our 00:00:30 is the provider's 23:58:30, dated the day before.
    { case: 'behind', skewMs: -2 * MIN, sendAtMs: 30_000, absentAtMs: 10_000 },
  ])(
    'a send 30 s from Jakarta midnight that the provider (its clock 2 min $case) files on the other day is missing on neither day; a send it does not have is',
    async ({ skewMs, sendAtMs, absentAtMs }) => {
      const skewed = await startSandbox({
        knobs: { latencyMs: [0, 0], dropDlrRate: 1 },
        now: () => new Date(t.clock.now().getTime() + skewMs),
      });
      try {
        const tenant = await createTenant(t, { balance: 1_000_000, pricePerSegment: 100, baseUrl: skewed.url });
        const account = {
          username: tenant.providerAccount.username as string,
          password: PASSWORD,
          balance: '100000000',
        };
        skewed.addAccount(account);
        const pac = uuidOf(tenant.providerAccountId);
        const mine = async () => (await poller.reconcileOpenDays()).filter((o) => o.providerAccountId === pac);

        nextJakartaDayAt({ hour: 0 }); // a Jakarta midnight after everything sent so far in this file
        const midnight = DateTime.fromJSDate(t.clock.now(), { zone: 'Asia/Jakarta' }).plus({ days: 1 });
        const at = (ms: number) => t.clock.set(new Date(midnight.toMillis() + ms));
        // A send we have that the provider has no record of (it lost its records after answering): truly missing,
        // though it too is near midnight, on the same side as ours.
        at(absentAtMs);
        const absent = await send(tenant.apiKey, '6281500000021', 'the provider lost this one');
        skewed.reset();
        skewed.addAccount(account);
        at(sendAtMs);
        const late = await send(tenant.apiKey, '6281500000022', 'sent 30 s from midnight');
        const [{ submitted_at }] = await t.db.query(`SELECT submitted_at FROM messages WHERE id = $1`, [
          uuidOf(late.id),
        ]);
        const ours = jakartaDay(submitted_at);
        const [filed] = skewed.sent();
        expect(filed.id).toBe(late.pid);
        const theirs = jakartaDay(filed.at);
        expect(theirs).not.toBe(ours);
        const before = DateTime.fromMillis(midnight.toMillis(), { zone: 'Asia/Jakarta' })
          .minus({ days: 1 })
          .toISODate()!;

        // The day that ended at midnight is not reconciled before MATCH_SLACK_MS (5 min) of the next has passed.
        at(MIN);
        expect((await mine()).map((o) => o.day)).not.toContain(before);
        at(10 * MIN);
        const outcomes = await mine();
        t.clock.advance(24 * HOUR);
        outcomes.push(...(await mine()));
        const byDay = new Map(outcomes.map((o) => [o.day, o]));
        // Our day: the provider's file for it does not list the late send (it is in the other day's): only the
        // send it does not have is missing.
        expect(byDay.get(ours)).toMatchObject({ kind: 'done', listed: 0, unknown: 0, missing: 1 });
        // The provider's day lists it, ours: neither unknown nor missing.
        expect(byDay.get(theirs)).toMatchObject({ kind: 'done', listed: 1, unknown: 0, missing: 0 });
        const kept = await t.db.query(
          `SELECT start_day::text AS day, mismatches->'missing' AS missing FROM report_reconciliations
            WHERE provider_account_id = $1 AND trigger = 'daily' AND start_day = ANY($2::date[]) ORDER BY start_day`,
          [pac, [ours, theirs]],
        );
        expect(Object.fromEntries(kept.map((r: { day: string; missing: unknown }) => [r.day, r.missing]))).toEqual({
          [ours]: [{ messageId: uuidOf(absent.id), providerMessageId: absent.pid }],
          [theirs]: [],
        });
      } finally {
        await skewed.close();
      }
    },
  );
});

/**
 * Issue 9: the report loop closes. Lost callbacks are replaced by report.php polls, messages without a
 * final report expire after 72 h (a late 22 still delivers them), uncertain submits are looked up in
 * reports_post.php (found → submitted with the provider's id; absent twice → failed, refunded once).
 * The sandbox provider, real PostgreSQL, the injected clock moves time (the sandbox reads the same clock).
 */
import { DateTime } from 'luxon';
import { register } from 'prom-client';
import { ReportPollerService } from '../../src/dlr/report-poller.service';
import { DataSource } from 'typeorm';
import { DispatchOutcomesWriter } from '../../src/messaging/dispatch-outcomes';
import { MessageEventsService } from '../../src/messaging/message-events.service';
import { MessageFollowUpService } from '../../src/messaging/message-follow-up.service';
import { MessageRefundsService } from '../../src/messaging/message-refunds.service';
import { MessageReportsService } from '../../src/messaging/message-reports.service';
import type { SendOutcome } from '../../src/provider/client';
import { startSandbox, SandboxHandle } from '../../src/sandbox';
import { bearer, createTenant, startTestApp, TestApp, uuidOf, reachableCallbackUrl } from '../support/app';
import { waitFor } from '../support/wait';

const MIN = 60_000;
const HOUR = 60 * MIN;

describe('issue 9: polling, expiry and reconciliation of reports (sandbox provider, real PostgreSQL)', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;
  let poller: ReportPollerService;
  let appPort: number;

  beforeAll(async () => {
    sandbox = await startSandbox({
      knobs: { dlrDelayMs: [5, 20], latencyMs: [0, 0] },
      now: () => (t ? t.clock.now() : new Date()),
    });
    t = await startTestApp({ DISPATCH_POLL_MS: '50', PROVIDER_SEND_RATE_PER_SECOND: '0' });
    await t.app.listen(0, '127.0.0.1');
    appPort = (t.app.getHttpServer().address() as { port: number }).port;
    poller = t.app.get(ReportPollerService);
  });
  afterEach(() => {
    sandbox.setKnobs({ dropDlrRate: 0, http500Rate: 0, http500AfterAcceptRate: 0 });
  });
  afterAll(async () => {
    await t?.close();
    await sandbox?.close();
  });

  async function tenantOnSandbox(callbacks = true) {
    const tenant = await createTenant(t, { balance: 1_000_000, pricePerSegment: 100, baseUrl: sandbox.url });
    const callback = reachableCallbackUrl(tenant.providerAccount.dlrCallbackUrl, appPort);
    sandbox.addAccount({
      username: tenant.providerAccount.username,
      password: 'provider-secret-pw',
      balance: '100000000',
      callbackUrl: callbacks ? callback : undefined,
    });
    return { ...tenant, tid: uuidOf(tenant.tenantId), username: tenant.providerAccount.username as string, callback };
  }

  async function row(id: string) {
    const [r] = await t.db.query(
      `SELECT status, provider_message_id, failure_reason, refunded FROM messages WHERE id = $1`,
      [uuidOf(id)],
    );
    return r as {
      status: string;
      provider_message_id: string | null;
      failure_reason: string | null;
      refunded: boolean;
    };
  }

  /** Sends and waits until the dispatcher recorded the outcome (so no send is on the wire when the clock moves). */
  async function send(
    apiKey: string,
    to: string,
    text: string,
    settled = ['submitted', 'pending', 'delivered', 'failed', 'uncertain'],
  ) {
    const res = await t.http.post('/v1/messages').set(bearer(apiKey)).send({ to, text });
    expect(res.status).toBe(202);
    const id = res.body.id as string;
    await waitFor(
      `message ${id} submitted`,
      () => row(id),
      (r) => settled.includes(r.status),
    );
    return id;
  }

  /** A dispatcher's outcome for message `id` (uuid) as its worker reports it, written by the real writer. */
  async function recordOutcome(id: string, outcome: SendOutcome) {
    const writer = new DispatchOutcomesWriter(
      t.app.get(DataSource),
      t.app.get(MessageRefundsService),
      t.app.get(MessageReportsService),
      t.app.get(MessageEventsService),
      t.clock,
      5,
    );
    const [claimed] = await t.db.query(
      `SELECT id, tenant_id, provider_account_id, msisdn, text, attempts FROM messages WHERE id = $1`,
      [id],
    );
    await writer.record([claimed], [outcome]);
  }

  /** Waits until report.php knows a status starting with one of `codes`. */
  async function providerSays(pid: string, codes: string[]) {
    await waitFor(
      `report.php ${pid}`,
      () => fetch(`${sandbox.url}/report.php?rpt=${pid}`).then((r) => r.text()),
      (body) => codes.some((c) => body.startsWith(c)),
    );
  }

  async function money(tid: string) {
    const [r] = await t.db.query(
      `SELECT t.balance::bigint AS balance,
              (SELECT count(*) FROM ledger_entries WHERE tenant_id = t.id AND kind = 'refund')::int AS refunds
         FROM tenants t WHERE t.id = $1`,
      [tid],
    );
    return { balance: Number(r.balance), refunds: r.refunds as number };
  }

  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const m = await register.getSingleMetric(name)?.get();
    return (m?.values ?? [])
      .filter((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val))
      .reduce((s, v) => s + v.value, 0);
  };

  it('polls report.php for messages whose callbacks never came, after DLR_POLL_AFTER_SECONDS, through the report path', async () => {
    const tenant = await tenantOnSandbox();
    sandbox.setKnobs({ dropDlrRate: 1 });
    const delivered = await send(tenant.apiKey, '6281200000001', 'poll me');
    const twoStep = await send(tenant.apiKey, '6289800000002', 'poll me too');
    const invalid = await send(tenant.apiKey, '6289900000003', 'poll me three');
    const ids = [delivered, twoStep, invalid].map(uuidOf);
    const pids = await Promise.all(
      [delivered, twoStep, invalid].map(async (id) => (await row(id)).provider_message_id!),
    );
    await providerSays(pids[0], ['22']);
    await providerSays(pids[1], ['22']);
    await providerSays(pids[2], ['50', '52']);
    const before = await money(tenant.tid);
    const finalPolls = await metric('gerbang_dlr_polls_total', { outcome: 'final' });

    // Not before DLR_POLL_AFTER_SECONDS (600 s): the callback may still come.
    expect((await poller.pollDue()).filter((o) => ids.includes(o.messageId))).toEqual([]);
    expect((await row(delivered)).status).toBe('submitted');

    t.clock.advance(10 * MIN + 1000);
    const outcomes = (await poller.pollDue()).filter((o) => ids.includes(o.messageId));
    expect(outcomes.map((o) => o.outcome).sort()).toEqual(['final', 'final', 'final']);
    expect(await metric('gerbang_dlr_polls_total', { outcome: 'final' })).toBeGreaterThanOrEqual(finalPolls + 3);
    expect(await row(delivered)).toMatchObject({ status: 'delivered', refunded: false });
    expect(await row(twoStep)).toMatchObject({ status: 'delivered', refunded: false });
    expect(await row(invalid)).toMatchObject({ status: 'failed', failure_reason: 'invalid_number', refunded: true });
    expect(await money(tenant.tid)).toEqual({ balance: before.balance + 100, refunds: before.refunds + 1 });

    // Stored raw like callbacks, with source 'poll', and applied.
    const reports = await t.db.query(
      `SELECT source, message_id, applied_at IS NOT NULL AS applied FROM delivery_reports WHERE message_id = ANY($1::uuid[])`,
      [ids],
    );
    expect(reports).toHaveLength(3);
    expect(reports.every((r: { source: string; applied: boolean }) => r.source === 'poll' && r.applied)).toBe(true);

    // Final: never polled again.
    t.clock.advance(6 * HOUR);
    expect((await poller.pollDue()).filter((o) => ids.includes(o.messageId))).toEqual([]);
  });

  it('backs off between polls of a message that stays open (20 only), then expires it at 72 h without a refund; a late 22 delivers it', async () => {
    const tenant = await tenantOnSandbox(false);
    const id = await send(tenant.apiKey, '6289700000004', 'never final');
    const mid = uuidOf(id);
    const pid = (await row(id)).provider_message_id!;
    await providerSays(pid, ['20']);
    const before = await money(tenant.tid);
    const expired = await metric('gerbang_messages_expired_total');

    t.clock.advance(10 * MIN + 1000);
    expect((await poller.pollDue()).filter((o) => o.messageId === mid)).toEqual([
      { messageId: mid, outcome: 'progress' },
    ]);
    expect((await row(id)).status).toBe('pending');
    // The next poll waits 20 min (± 20 % jitter): not at +15 min, due by +25 min.
    t.clock.advance(15 * MIN);
    expect((await poller.pollDue()).filter((o) => o.messageId === mid)).toEqual([]);
    t.clock.advance(10 * MIN);
    expect((await poller.pollDue()).filter((o) => o.messageId === mid)).toHaveLength(1);

    // Not expired before 72 h after submission.
    t.clock.advance(71 * HOUR - 40 * MIN);
    await poller.expireDue();
    expect((await row(id)).status).toBe('pending');
    t.clock.advance(2 * HOUR);
    expect(await poller.expireDue()).toBeGreaterThanOrEqual(1);
    expect(await row(id)).toMatchObject({ status: 'expired', refunded: false });
    expect(await money(tenant.tid)).toEqual(before);
    expect(await metric('gerbang_messages_expired_total')).toBeGreaterThanOrEqual(expired + 1);
    const view = await t.http.get(`/v1/messages/${id}`).set(bearer(tenant.apiKey));
    expect(view.body.status).toBe('expired');
    // Expired is final for polling.
    t.clock.advance(7 * HOUR);
    expect((await poller.pollDue()).filter((o) => o.messageId === mid)).toEqual([]);

    // A late 22 (callback) still turns it delivered; still no refund.
    const late = await fetch(`${tenant.callback}?session_id=${pid}&error_code=22&error_message=Delivered`);
    expect(late.status).toBe(200);
    await waitFor(
      'the late report applied',
      () => row(id),
      (r) => r.status === 'delivered',
    );
    expect(await row(id)).toMatchObject({ status: 'delivered', refunded: false });
    expect(await money(tenant.tid)).toEqual(before);
  });

  it('finds an uncertain submit in reports_post.php after RECONCILE_AFTER_SECONDS: submitted with its id, then its early report applies', async () => {
    const tenant = await tenantOnSandbox();
    sandbox.setKnobs({ http500AfterAcceptRate: 1 });
    const id = await send(tenant.apiKey, '6281200000005', 'taken but answered 500', ['uncertain']);
    sandbox.setKnobs({ http500AfterAcceptRate: 0 });
    const mid = uuidOf(id);
    const [taken] = sandbox.sent().filter((s) => s.username === tenant.username);
    expect(taken).toBeDefined();
    // The provider's callback (22) arrives for an id no message carries yet: stored, waiting.
    await waitFor(
      'early report stored',
      () => t.db.query(`SELECT applied_at FROM delivery_reports WHERE provider_message_id = $1`, [String(taken.id)]),
      (r: unknown[]) => r.length > 0,
    );
    const found = await metric('gerbang_dlr_reconcile_total', { result: 'found' });

    expect((await poller.reconcileDue()).filter((o) => o.messageId === mid)).toEqual([]);
    t.clock.advance(2 * MIN + 1000);
    expect((await poller.reconcileDue()).filter((o) => o.messageId === mid)).toEqual([
      { messageId: mid, result: 'found' },
    ]);
    expect(await row(id)).toMatchObject({
      status: 'delivered',
      provider_message_id: String(taken.id),
      refunded: false,
    });
    expect(await metric('gerbang_dlr_reconcile_total', { result: 'found' })).toBeGreaterThanOrEqual(found + 1);
    // Resolved: never looked up again, and nothing was resent.
    t.clock.advance(10 * MIN);
    expect((await poller.reconcileDue()).filter((o) => o.messageId === mid)).toEqual([]);
    expect(sandbox.sent().filter((s) => s.username === tenant.username)).toHaveLength(1);
  });

  it('fails an uncertain submit absent from two looks RECONCILE_AFTER_SECONDS apart, refunded exactly once (racing reconcilers)', async () => {
    const tenant = await tenantOnSandbox();
    const start = await money(tenant.tid);
    sandbox.setKnobs({ http500Rate: 1 });
    const a = await send(tenant.apiKey, '6281200000006', 'never reached the provider', ['uncertain']);
    const b = await send(tenant.apiKey, '6281200000007', 'never reached it either', ['uncertain']);
    sandbox.setKnobs({ http500Rate: 0 });
    const [ma, mb] = [uuidOf(a), uuidOf(b)];
    const mine = (o: { messageId: string }) => o.messageId === ma || o.messageId === mb;
    expect(await money(tenant.tid)).toEqual({ balance: start.balance - 200, refunds: start.refunds });

    t.clock.advance(2 * MIN + 1000);
    expect((await poller.reconcileDue()).filter(mine).map((o) => o.result)).toEqual(['absent', 'absent']);
    expect((await row(a)).status).toBe('uncertain');
    // The second look is not due before another RECONCILE_AFTER_SECONDS.
    t.clock.advance(MIN);
    expect((await poller.reconcileDue()).filter(mine)).toEqual([]);
    t.clock.advance(MIN + 1000);

    // b: two markAbsent racing on the same message — one fails it, the other finds it gone.
    const follow = t.app.get(MessageFollowUpService);
    const raced = await Promise.all([
      follow.markAbsent(mb, t.clock.now(), 2 * MIN),
      follow.markAbsent(mb, t.clock.now(), 2 * MIN),
    ]);
    expect(raced.sort()).toEqual(['failed', 'gone']);
    // a: two reconcilers racing: one claims it, the other gets nothing.
    const [r1, r2] = await Promise.all([poller.reconcileDue(), poller.reconcileDue()]);
    expect([...r1, ...r2].filter(mine)).toEqual([{ messageId: ma, result: 'failed' }]);

    for (const id of [a, b])
      expect(await row(id)).toMatchObject({ status: 'failed', failure_reason: 'submit_failed', refunded: true });
    expect(await money(tenant.tid)).toEqual({ balance: start.balance, refunds: start.refunds + 2 });
    const refundsPerMessage = await t.db.query(
      `SELECT message_id, count(*)::int AS n FROM ledger_entries WHERE kind = 'refund' AND message_id = ANY($1::uuid[]) GROUP BY message_id`,
      [[ma, mb]],
    );
    expect(refundsPerMessage.map((r: { n: number }) => r.n)).toEqual([1, 1]);
    // Never resent, never looked up again.
    expect(sandbox.sent().filter((s) => s.username === tenant.username)).toHaveLength(0);
    t.clock.advance(10 * MIN);
    expect((await poller.reconcileDue()).filter(mine)).toEqual([]);
  });

  it("an uncertain submit sent again (its first worker answered late: not sent) gets looks of its own, not the earlier attempt's", async () => {
    const tenant = await tenantOnSandbox();
    const start = await money(tenant.tid);
    sandbox.setKnobs({ http500Rate: 1 });
    const id = await send(tenant.apiKey, '6281200000008', 'sent twice, both doubtful', ['uncertain']);
    const mid = uuidOf(id);
    t.clock.advance(2 * MIN + 1000);
    expect((await poller.reconcileDue()).filter((o) => o.messageId === mid)).toEqual([
      { messageId: mid, result: 'absent' },
    ]);
    // The first attempt's worker answers late (its lease had expired): never sent. The message goes back
    // to the queue and, after a while, is sent again — and that answer is doubtful too.
    await recordOutcome(mid, { kind: 'notSent', reason: 'connection refused (answered late)' });
    expect((await row(id)).status).toBe('queued');
    t.clock.advance(2 * MIN + 1000);
    await waitFor(
      `message ${id} uncertain again`,
      () => row(id),
      (r) => r.status === 'uncertain',
    );
    sandbox.setKnobs({ http500Rate: 0 });

    // Its first look is RECONCILE_AFTER_SECONDS after this attempt, not at once on the old schedule.
    t.clock.advance(5000);
    expect((await poller.reconcileDue()).filter((o) => o.messageId === mid)).toEqual([]);
    expect(await row(id)).toMatchObject({ status: 'uncertain', refunded: false });
    t.clock.advance(2 * MIN);
    expect((await poller.reconcileDue()).filter((o) => o.messageId === mid)).toEqual([
      { messageId: mid, result: 'absent' },
    ]);
    expect(await money(tenant.tid)).toEqual({ balance: start.balance - 100, refunds: start.refunds });
  });

  it('a failure report kept before 72 h but not applied yet is applied by the expiry, not lost: failed and refunded', async () => {
    const tenant = await tenantOnSandbox(false);
    const start = await money(tenant.tid);
    const id = await send(tenant.apiKey, '6289700000009', 'its 50 was kept but not applied');
    const mid = uuidOf(id);
    const pid = (await row(id)).provider_message_id!;
    // What an apply that failed (the database away for a moment) leaves behind: the raw report, unapplied.
    t.clock.advance(72 * HOUR - MIN);
    await t.db.query(
      `INSERT INTO delivery_reports (provider_account_id, provider_message_id, code, text, msisdn, source, received_at)
       SELECT provider_account_id, provider_message_id, 50, 'Balance empty', msisdn, 'callback', $2 FROM messages WHERE id = $1`,
      [mid, t.clock.now()],
    );
    t.clock.advance(2 * MIN);
    await poller.expireDue();
    expect(await row(id)).toMatchObject({ status: 'failed', failure_reason: 'provider_balance_empty', refunded: true });
    expect(await money(tenant.tid)).toEqual({ balance: start.balance, refunds: start.refunds + 1 });
    const [report] = await t.db.query(
      `SELECT applied_at IS NOT NULL AS applied FROM delivery_reports WHERE provider_message_id = $1`,
      [pid],
    );
    expect(report.applied).toBe(true);
  });

  it('does not give an uncertain submit the report row of a same-text send whose own outcome is not recorded yet', async () => {
    const tenant = await tenantOnSandbox();
    sandbox.setKnobs({ http500Rate: 1 });
    const a = await send(tenant.apiKey, '6281200000010', 'same words', ['uncertain']); // never reached it
    sandbox.setKnobs({ http500Rate: 0 });
    const b = await send(tenant.apiKey, '6281200000010', 'same words', ['submitted', 'pending', 'delivered']);
    const [ma, mb] = [uuidOf(a), uuidOf(b)];
    const pid = (await row(b)).provider_message_id!;
    // b as it is while its worker's answer is still on its way to the database: sent, but `submitting`.
    // Its lease by the app's clock (the lease janitor compares with it), well past this test's clock moves.
    await t.db.query(
      `UPDATE messages SET status = 'submitting', provider_message_id = NULL, submitted_at = NULL, lease_until = $2
        WHERE id = $1`,
      [mb, new Date(t.clock.now().getTime() + HOUR)],
    );

    t.clock.advance(2 * MIN + 1000);
    // The report lists one send of those words (b's): not a's while b's own outcome may still claim it.
    expect((await poller.reconcileDue()).filter((o) => o.messageId === ma)).toEqual([
      { messageId: ma, result: 'deferred' },
    ]);
    expect(await row(a)).toMatchObject({ status: 'uncertain', provider_message_id: null, refunded: false });
    // b's outcome lands (it would have hit the unique provider id, and blocked its dispatcher's recording).
    await recordOutcome(mb, { kind: 'accepted', providerMessageId: pid, raw: pid });
    expect((await row(b)).provider_message_id).toBe(pid);
    // a's next look finds that row taken: a is absent, as it is.
    t.clock.advance(2 * MIN + 1000);
    expect((await poller.reconcileDue()).filter((o) => o.messageId === ma)).toEqual([
      { messageId: ma, result: 'absent' },
    ]);
  });

  it('a message that stays open gets its last poll shortly before it expires, not up to 6 h earlier', async () => {
    const tenant = await tenantOnSandbox(false);
    const id = await send(tenant.apiKey, '6289700000011', 'open to the end');
    const mid = uuidOf(id);
    await providerSays((await row(id)).provider_message_id!, ['20']);
    const schedule = async () => {
      const [r] = await t.db.query(`SELECT submitted_at, next_poll_at, polls FROM messages WHERE id = $1`, [mid]);
      return r as { submitted_at: Date; next_poll_at: Date | null; polls: number };
    };
    const { submitted_at } = await schedule();
    const lastPoll = submitted_at.getTime() + 72 * HOUR - 15 * MIN;
    // Many polls made already: the backoff is at its 6 h cap. 67 h after submission it is polled again.
    await t.db.query(`UPDATE messages SET polls = 10, next_poll_at = $2 WHERE id = $1`, [
      mid,
      new Date(submitted_at.getTime() + 67 * HOUR),
    ]);
    t.clock.advance(submitted_at.getTime() + 67 * HOUR + 1000 - t.clock.now().getTime());
    expect((await poller.pollDue()).filter((o) => o.messageId === mid)).toEqual([
      { messageId: mid, outcome: 'progress' },
    ]);
    // The next poll is not 4.8–7.2 h later (past the 72 h): it is the last one, 15 min before the expiry.
    const after = await schedule();
    expect(after.next_poll_at!.getTime()).toBe(lastPoll);
    t.clock.advance(lastPoll - t.clock.now().getTime() + 1000);
    expect((await poller.pollDue()).filter((o) => o.messageId === mid)).toHaveLength(1);
    expect((await schedule()).polls).toBe(12);
    t.clock.advance(16 * MIN);
    await poller.expireDue();
    expect((await row(id)).status).toBe('expired');
  });

  it('several pollers racing never poll one message twice in a turn', async () => {
    const tenant = await tenantOnSandbox();
    sandbox.setKnobs({ dropDlrRate: 1 });
    const ids: string[] = [];
    for (let i = 0; i < 12; i++)
      ids.push(uuidOf(await send(tenant.apiKey, `62812000001${String(i).padStart(2, '0')}`, `claim ${i}`)));
    for (const id of ids) {
      const [r] = await t.db.query(`SELECT provider_message_id FROM messages WHERE id = $1`, [id]);
      await providerSays(r.provider_message_id, ['22']);
    }
    t.clock.advance(10 * MIN + 1000);
    const rounds = await Promise.all([poller.pollDue(), poller.pollDue(), poller.pollDue()]);
    const polled = rounds.flat().filter((o) => ids.includes(o.messageId));
    expect(polled.map((o) => o.messageId).sort()).toEqual([...ids].sort());
    const perMessage = await t.db.query(
      `SELECT count(*)::int AS n FROM delivery_reports WHERE source = 'poll' AND message_id = ANY($1::uuid[]) GROUP BY message_id`,
      [ids],
    );
    expect(perMessage.map((r: { n: number }) => r.n)).toEqual(ids.map(() => 1));
  });
  it('polls at most 20 messages of one provider account per round; other accounts are not starved', async () => {
    const busy = await tenantOnSandbox();
    const quiet = await tenantOnSandbox();
    sandbox.setKnobs({ dropDlrRate: 1 });
    const many = await Promise.all(
      Array.from({ length: 22 }, (_, i) =>
        t.http
          .post('/v1/messages')
          .set(bearer(busy.apiKey))
          .send({ to: `628130000${String(i).padStart(4, '0')}`, text: `busy ${i}` }),
      ),
    );
    const busyIds = many.map((r) => uuidOf(r.body.id as string));
    await waitFor(
      'busy account submitted',
      () =>
        t.db.query(`SELECT count(*)::int AS n FROM messages WHERE id = ANY($1::uuid[]) AND status = 'submitted'`, [
          busyIds,
        ]),
      (r: { n: number }[]) => r[0].n === 22,
    );
    const quietId = uuidOf(await send(quiet.apiKey, '6281300009999', 'quiet'));
    t.clock.advance(10 * MIN + 1000);
    const first = await poller.pollDue();
    expect(first.filter((o) => busyIds.includes(o.messageId))).toHaveLength(20);
    expect(first.filter((o) => o.messageId === quietId)).toHaveLength(1);
    const second = await poller.pollDue();
    expect(second.filter((o) => busyIds.includes(o.messageId))).toHaveLength(2);
  });
  it("reconciles the previous Jakarta day's report once per account: open messages get their final codes (source 'report')", async () => {
    const tenant = await tenantOnSandbox();
    sandbox.setKnobs({ dropDlrRate: 1 });
    const id = await send(tenant.apiKey, '6281400000001', 'daily');
    const pid = (await row(id)).provider_message_id!;
    await providerSays(pid, ['22']);
    const pac = uuidOf(tenant.providerAccountId);

    // The next Jakarta day: yesterday's report lists the send, final; our record is still open.
    t.clock.advance(24 * HOUR);
    const outcomes = (await poller.reconcileOpenDays()).filter((o) => o.providerAccountId === pac);
    expect(outcomes).toEqual([
      expect.objectContaining({ kind: 'done', listed: 1, applied: 1, unknown: 0, missing: 0 }),
    ]);
    expect((await row(id)).status).toBe('delivered');
    const reports = await t.db.query(`SELECT source FROM delivery_reports WHERE message_id = $1`, [uuidOf(id)]);
    expect(reports).toEqual([{ source: 'report' }]);
    // Once per account and day, also with another process racing.
    const again = await Promise.all([poller.reconcileOpenDays(), poller.reconcileOpenDays()]);
    expect(again.flat().filter((o) => o.providerAccountId === pac)).toEqual([]);
  });

  it.each([
    // Our 00:01:30 is the provider's 23:58:30 of the day before: the row is dated that day.
    { case: 'behind', jakartaTime: { hour: 0, minute: 1, second: 30 }, skewMs: -3 * MIN },
    // Our 23:58:30 is the provider's 00:01:30 of the next day.
    { case: 'ahead', jakartaTime: { hour: 23, minute: 58, second: 30 }, skewMs: 3 * MIN },
  ])(
    'finds an uncertain submit that the provider, its clock 3 min $case (within the match slack), dated on the other side of Jakarta midnight',
    async ({ jakartaTime, skewMs }) => {
      // A provider whose clock is a few minutes off ours (the match allows 5 min of skew either way).
      const skewed = await startSandbox({
        knobs: { latencyMs: [0, 0] },
        now: () => new Date(t.clock.now().getTime() + skewMs),
      });
      try {
        const tenant = await createTenant(t, { balance: 1_000_000, pricePerSegment: 100, baseUrl: skewed.url });
        skewed.addAccount({
          username: tenant.providerAccount.username,
          password: 'provider-secret-pw',
          balance: '100000000',
        });
        // Forward to the next Jakarta day at that time (the clock never moves back in this file).
        const day = DateTime.fromJSDate(t.clock.now(), { zone: 'Asia/Jakarta' }).plus({ days: 2 }).startOf('day');
        t.clock.set(day.set(jakartaTime).toJSDate());
        skewed.setKnobs({ http500AfterAcceptRate: 1 });
        const id = await send(tenant.apiKey, '6281500000001', 'sent across midnight', ['uncertain']);
        skewed.setKnobs({ http500AfterAcceptRate: 0 });
        const [taken] = skewed.sent().filter((s) => s.username === tenant.providerAccount.username);
        expect(taken).toBeDefined();

        t.clock.advance(2 * MIN + 1000);
        expect((await poller.reconcileDue()).filter((o) => o.messageId === uuidOf(id))).toEqual([
          { messageId: uuidOf(id), result: 'found' },
        ]);
        expect(await row(id)).toMatchObject({ status: 'submitted', provider_message_id: String(taken.id) });
      } finally {
        await skewed.close();
      }
    },
  );
});

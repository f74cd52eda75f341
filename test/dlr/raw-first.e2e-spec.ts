/**
 * Issue 9, "the raw report is kept first": every well-formed callback is stored in its own short
 * transaction before it is applied. A failure while applying it never loses the raw report and never
 * answers the provider with a 5xx; the sweep applies it once the fault is gone, without the provider
 * calling again. Only a report that could not be stored at all gets a 503.
 * The sandbox provider (callbacks off: the test is the provider calling back), real PostgreSQL; faults
 * are injected in the database (a trigger), never by mocking the gateway.
 */
import { register } from 'prom-client';
import { DataSource } from 'typeorm';
import { lockReportKeys } from '../../src/messaging/message-reports.service';
import { ReportReapplyService } from '../../src/dlr/report-reapply.service';
import { startSandbox, SandboxHandle } from '../../src/sandbox';
import { bearer, createTenantOnSandbox, ddl, startTestApp, TestApp, unique, uuidOf } from '../support/app';
import { waitFor } from '../support/wait';

describe('issue 9: the raw report is kept first (sandbox provider, real PostgreSQL)', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;
  let sweep: ReportReapplyService;

  beforeAll(async () => {
    sandbox = await startSandbox({ knobs: { dlrDelayMs: [5, 20], latencyMs: [0, 0] } });
    t = await startTestApp({ DISPATCH_POLL_MS: '50', PROVIDER_SEND_RATE_PER_SECOND: '0' });
    await t.app.listen(0, '127.0.0.1');
    sweep = t.app.get(ReportReapplyService);
  });
  afterEach(async () => {
    t.clock.reset();
    await ddl(t, `DROP TRIGGER IF EXISTS test_apply_fault ON message_events`);
    await ddl(t, `DROP TRIGGER IF EXISTS test_store_fault ON delivery_reports`);
  });
  afterAll(async () => {
    await t?.close();
    await sandbox?.close();
  });

  /** A tenant on its own sandbox account; the sandbox calls back only with `callbacks` (else the test does). */
  async function tenantOnSandbox(callbacks = false) {
    const tenant = await createTenantOnSandbox(t, sandbox, {
      balance: 10_000,
      providerBalance: '100000000',
      callbacks,
    });
    const callback = new URL(tenant.providerAccount.dlrCallbackUrl as string).pathname;
    return { ...tenant, tid: uuidOf(tenant.tenantId), pac: uuidOf(tenant.providerAccountId), callback };
  }

  /** Sends one message and waits until the dispatcher recorded its provider id. */
  async function submitted(apiKey: string, to: string) {
    const res = await t.http
      .post('/v1/messages')
      .set(bearer(apiKey))
      .send({ to, text: unique('raw') });
    expect(res.status).toBe(202);
    const id = uuidOf(res.body.id as string);
    const msg = await waitFor(
      `message ${id} submitted`,
      () => message(id),
      (m) => m.status === 'submitted',
    );
    return { id, pid: msg.provider_message_id! };
  }

  async function message(id: string) {
    const [m] = await t.db.query(
      `SELECT status, provider_message_id, provider_status_code, refunded,
              (SELECT array_agg(status ORDER BY seq) FROM message_events e WHERE e.message_id = m.id) AS events
         FROM messages m WHERE id = $1`,
      [id],
    );
    return m as {
      status: string;
      provider_message_id: string | null;
      provider_status_code: number | null;
      refunded: boolean;
      events: string[];
    };
  }

  async function reports(pac: string, pid: string) {
    return t.db.query<{ code: number; message_id: string | null; applied: boolean; flagged: string | null }[]>(
      `SELECT code, message_id, applied_at IS NOT NULL AS applied, flagged FROM delivery_reports
        WHERE provider_account_id = $1 AND provider_message_id = $2 ORDER BY seq`,
      [pac, pid],
    );
  }

  async function balance(tid: string) {
    const [r] = await t.db.query(
      `SELECT balance::bigint AS balance, (SELECT count(*) FROM ledger_entries WHERE tenant_id = $1 AND kind = 'refund')::int AS refunds
         FROM tenants WHERE id = $1`,
      [tid],
    );
    return { balance: Number(r.balance), refunds: r.refunds as number };
  }

  /** Applying any report of these messages fails: the trigger raises on their next event. */
  async function failApplying(messageIds: string[]) {
    await t.db.query(`
      CREATE OR REPLACE FUNCTION test_apply_fault_fn() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.message_id IN (${messageIds.map((id) => `'${id}'`).join(', ')}) THEN
          RAISE EXCEPTION 'test: applying a report fails';
        END IF;
        RETURN NEW;
      END $$`);
    await ddl(
      t,
      `CREATE TRIGGER test_apply_fault BEFORE INSERT ON message_events FOR EACH ROW EXECUTE FUNCTION test_apply_fault_fn()`,
    );
  }

  const applyFailures = async () =>
    ((await register.getSingleMetric('gerbang_dlr_apply_failed_total')?.get())?.values ?? []).reduce(
      (sum, v) => sum + v.value,
      0,
    );

  it('a report whose apply fails is answered 200 OK, kept raw, and applied by the sweep once the fault is gone (no second callback)', async () => {
    const tenant = await tenantOnSandbox();
    const delivered = await submitted(tenant.apiKey, '081234567890');
    const invalid = await submitted(tenant.apiKey, '081234567891');
    await failApplying([delivered.id, invalid.id]);
    const failuresBefore = await applyFailures();
    const before = await balance(tenant.tid);

    const r22 = await t.http
      .get(tenant.callback)
      .query({ session_id: delivered.pid, error_code: '22', error_message: 'Delivered', msisdn: '6281234567890' });
    expect({ status: r22.status, text: r22.text }).toEqual({ status: 200, text: 'OK' });
    const r52 = await t.http
      .post(tenant.callback)
      .type('form')
      .send({ session_id: invalid.pid, error_code: '52', error_message: 'No Charge', msisdn: '6281234567891' });
    expect({ status: r52.status, text: r52.text }).toEqual({ status: 200, text: 'OK' });

    // Stored raw, not applied: the messages are as they were, nothing refunded. (The 200 came once they
    // were stored; the two applies that fail run right after it.)
    await waitFor(
      'both applies failed',
      () => applyFailures(),
      (n) => n >= failuresBefore + 2,
    );
    expect(await reports(tenant.pac, delivered.pid)).toEqual([
      { code: 22, message_id: null, applied: false, flagged: null },
    ]);
    expect(await reports(tenant.pac, invalid.pid)).toEqual([
      { code: 52, message_id: null, applied: false, flagged: null },
    ]);
    expect(await message(delivered.id)).toMatchObject({ status: 'submitted', events: ['submitted'] });
    expect(await message(invalid.id)).toMatchObject({ status: 'submitted', refunded: false });
    expect(await balance(tenant.tid)).toEqual(before);
    expect(await applyFailures()).toBe(failuresBefore + 2);

    // The sweep takes reports a few seconds old; while the fault lasts they stay stored, unapplied.
    t.clock.advance(60_000);
    await sweep.reapplyDue();
    expect((await reports(tenant.pac, delivered.pid))[0].applied).toBe(false);
    expect(await applyFailures()).toBeGreaterThan(failuresBefore + 2);

    await ddl(t, `DROP TRIGGER test_apply_fault ON message_events`);
    await waitFor(
      'the stored reports applied by the sweep',
      async () => {
        await sweep.reapplyDue();
        return [await message(delivered.id), await message(invalid.id)];
      },
      ([d, i]) => d.status === 'delivered' && i.status === 'failed',
    );
    expect(await message(delivered.id)).toMatchObject({
      status: 'delivered',
      provider_status_code: 22,
      refunded: false,
      events: ['submitted', 'delivered'],
    });
    expect(await message(invalid.id)).toMatchObject({
      status: 'failed',
      provider_status_code: 52,
      refunded: true,
      events: ['submitted', 'failed'],
    });
    expect(await reports(tenant.pac, delivered.pid)).toEqual([
      { code: 22, message_id: delivered.id, applied: true, flagged: null },
    ]);
    expect(await balance(tenant.tid)).toEqual({ balance: before.balance + 100, refunds: before.refunds + 1 });

    // Swept again: nothing changes (applied once, refunded once).
    await sweep.reapplyDue();
    expect((await message(invalid.id)).events).toEqual(['submitted', 'failed']);
    expect(await balance(tenant.tid)).toEqual({ balance: before.balance + 100, refunds: before.refunds + 1 });
  });

  it('a callback is answered once its report is stored, not after the apply: a report whose apply waits gets its 200 at once, then applies', async () => {
    const tenant = await tenantOnSandbox();
    const msg = await submitted(tenant.apiKey, '081234567890');
    // Hold the report's advisory key (what the dispatcher holds while it records a provider id):
    // the apply waits for it; the provider must not.
    const holder = t.app.get(DataSource).createQueryRunner();
    await holder.connect();
    await holder.startTransaction();
    try {
      await lockReportKeys(holder.manager, [{ accountId: tenant.pac, providerMessageId: msg.pid }]);
      const answered = t.http
        .get(tenant.callback)
        .query({ session_id: msg.pid, error_code: '22', error_message: 'Delivered', msisdn: '6281234567890' })
        .then((res) => ({ status: res.status, text: res.text }));
      const first = await Promise.race([
        answered,
        new Promise((r) => setTimeout(() => r('no answer within 3 s'), 3000)),
      ]);
      expect(first).toEqual({ status: 200, text: 'OK' });
      // Stored, not applied yet: the message is as it was.
      expect(await reports(tenant.pac, msg.pid)).toEqual([
        { code: 22, message_id: null, applied: false, flagged: null },
      ]);
      expect(await message(msg.id)).toMatchObject({ status: 'submitted', events: ['submitted'] });
    } finally {
      await holder.rollbackTransaction();
      await holder.release();
    }
    // The key released, the apply that was waiting for it goes through (no sweep, no second callback).
    await waitFor(
      'the report applied',
      () => message(msg.id),
      (m) => m.status === 'delivered',
    );
    expect(await message(msg.id)).toMatchObject({ status: 'delivered', events: ['submitted', 'delivered'] });
    expect(await reports(tenant.pac, msg.pid)).toEqual([
      { code: 22, message_id: msg.id, applied: true, flagged: null },
    ]);
  });

  it('a report of an id no message carries stays stored and unapplied through sweeps, and applies when its message appears', async () => {
    const tenant = await tenantOnSandbox();
    // The provider's next id for this account: reported before the send (as an early report would be).
    sandbox.setKnobs({ latencyMs: [300, 300] });
    try {
      const res = await t.http
        .post('/v1/messages')
        .set(bearer(tenant.apiKey))
        .send({ to: '081234567890', text: 'early' });
      expect(res.status).toBe(202);
      const [taken] = await waitFor(
        'the provider took it',
        () => sandbox.sent().filter((s) => s.username === tenant.providerAccount.username),
        (s) => s.length === 1,
      );
      const cb = await t.http
        .get(tenant.callback)
        .query({ session_id: taken.id, error_code: '22', error_message: 'Delivered', msisdn: '6281234567890' });
      expect(cb.status).toBe(200);
      const id = uuidOf(res.body.id as string);
      // Whichever commits second (the dispatcher recording the id, or the report's apply) applies it.
      const msg = await waitFor(
        'delivered',
        () => message(id),
        (m) => m.status === 'delivered',
      );
      expect(msg).toMatchObject({ provider_message_id: taken.id, events: ['submitted', 'delivered'] });
    } finally {
      sandbox.setKnobs({ latencyMs: [0, 0] });
    }

    const orphan = `9${Date.now()}${process.pid}`;
    expect((await t.http.get(tenant.callback).query({ session_id: orphan, error_code: '22' })).status).toBe(200);
    t.clock.advance(60_000);
    await sweep.reapplyDue();
    await sweep.reapplyDue();
    expect(await reports(tenant.pac, orphan)).toEqual([{ code: 22, message_id: null, applied: false, flagged: null }]);
  });

  it('early reports racing the recording of their ids (60 concurrent sends): every report is applied without the sweep', async () => {
    const tenant = await tenantOnSandbox(true);
    // Half the reports come before the send is answered, the rest right after it: both orders of the
    // raw insert, the report's apply and the dispatcher's applyPendingFor under the advisory key.
    sandbox.setKnobs({ dlrBeforeSendAnswer: 0.5, dlrDelayMs: [0, 3], latencyMs: [0, 5] });
    try {
      const sent = await Promise.all(
        Array.from({ length: 60 }, (_, i) =>
          t.http
            .post('/v1/messages')
            .set(bearer(tenant.apiKey))
            .send({ to: '081234567890', text: `race ${i}` }),
        ),
      );
      expect(sent.map((r) => r.status)).toEqual(Array(60).fill(202));
      const callbacks = () =>
        sandbox.callbacks().filter((c) => c.target.includes(tenant.callback) && c.httpStatus === 200).length;
      await waitFor('60 callbacks answered 200', callbacks, (n) => n === 60);
      const states = await waitFor(
        'every message delivered',
        () =>
          t.db.query<{ status: string; n: number }[]>(
            `SELECT status, count(*)::int AS n FROM messages WHERE tenant_id = $1 GROUP BY status`,
            [tenant.tid],
          ),
        (rows) => rows.length === 1 && rows[0].status === 'delivered',
      );
      expect(states).toEqual([{ status: 'delivered', n: 60 }]);
      const [unapplied] = await t.db.query(
        `SELECT count(*)::int AS n FROM delivery_reports WHERE provider_account_id = $1 AND applied_at IS NULL`,
        [tenant.pac],
      );
      expect(unapplied.n).toBe(0);
    } finally {
      sandbox.setKnobs({ dlrBeforeSendAnswer: 0, dlrDelayMs: [5, 20], latencyMs: [0, 0] });
    }
  });

  it('a report that cannot be stored (the connection is lost during the raw insert) gets 503 and leaves nothing; the next call is stored and applied', async () => {
    const tenant = await tenantOnSandbox();
    const msg = await submitted(tenant.apiKey, '081234567890');
    // Fires once: the count lives in a sequence, which the killed statement does not roll back.
    const seq = `test_store_fault_${Date.now()}`;
    await t.db.query(`CREATE SEQUENCE ${seq}`);
    await t.db.query(`
      CREATE OR REPLACE FUNCTION test_store_fault_fn() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.provider_message_id = '${msg.pid}' THEN
          IF nextval('${seq}') = 1 THEN
            PERFORM pg_terminate_backend(pg_backend_pid());
          END IF;
        END IF;
        RETURN NEW;
      END $$`);
    await ddl(
      t,
      `CREATE TRIGGER test_store_fault BEFORE INSERT ON delivery_reports FOR EACH ROW EXECUTE FUNCTION test_store_fault_fn()`,
    );
    const query = { session_id: msg.pid, error_code: '22', error_message: 'Delivered', msisdn: '6281234567890' };
    const lost = await t.http.get(tenant.callback).query(query);
    expect(lost.status).toBe(503);
    // The pool may hand out the killed backend's client once more before it notices (its error then
    // surfaces on that query): wait until queries go through again, as a later call would.
    await waitFor('the pool past the killed connection', () =>
      t.db.query('SELECT 1').then(
        () => true,
        () => false,
      ),
    );
    expect(await reports(tenant.pac, msg.pid)).toEqual([]);
    expect((await message(msg.id)).status).toBe('submitted');

    const again = await t.http.get(tenant.callback).query(query);
    expect({ status: again.status, text: again.text }).toEqual({ status: 200, text: 'OK' });
    await waitFor(
      'the stored report applied',
      () => message(msg.id),
      (m) => m.status === 'delivered',
    );
    expect(await reports(tenant.pac, msg.pid)).toEqual([
      { code: 22, message_id: msg.id, applied: true, flagged: null },
    ]);
    expect((await message(msg.id)).status).toBe('delivered');
  });
});

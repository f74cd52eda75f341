/**
 * Issue 7: outcomes of the provider are never lost (2), ambiguous accept commits are resolved (4),
 * reports match the right message (6). One app with its dispatcher on, the sandbox provider, real
 * PostgreSQL; faults are injected in the database (a trigger that fails or kills the backend of a
 * transaction the first N times), never by mocking the gateway.
 */
import { connect, createServer, Server, Socket } from 'node:net';
import { register } from 'prom-client';
import { DispatcherService } from '../../src/messaging/dispatcher.service';
import { startSandbox, SandboxHandle } from '../../src/sandbox';
import {
  createTenant,
  ddl,
  startTestApp,
  TEST_DATABASE_URL,
  TestApp,
  unique,
  uuidOf,
  reachableCallbackUrl,
} from '../support/app';
import { waitFor } from '../support/wait';

describe('issue 7: outcomes, ambiguous commits, report matching (sandbox provider, real PostgreSQL)', () => {
  let t: TestApp;
  let sandbox: SandboxHandle;
  let appPort: number;

  beforeAll(async () => {
    sandbox = await startSandbox({ knobs: { dlrDelayMs: [5, 20], latencyMs: [0, 0] } });
    t = await startTestApp({ DISPATCH_POLL_MS: '50', PROVIDER_SEND_RATE_PER_SECOND: '0' });
    await t.app.listen(0, '127.0.0.1');
    appPort = (t.app.getHttpServer().address() as { port: number }).port;
  });
  afterEach(async () => {
    sandbox.setKnobs({ htmlGarbageRate: 0, latencyMs: [0, 0] });
    await ddl(t, `DROP TRIGGER IF EXISTS test_fault ON messages`);
    await ddl(t, `DROP TRIGGER IF EXISTS test_fault ON ledger_entries`);
  });
  afterAll(async () => {
    await t?.close();
    await sandbox?.close();
  });

  async function tenantOnSandbox(balance: number, price: number, callbacks: boolean) {
    const tenant = await createTenant(t, { balance, pricePerSegment: price, baseUrl: sandbox.url });
    const callback = reachableCallbackUrl(tenant.providerAccount.dlrCallbackUrl, appPort);
    sandbox.addAccount({
      username: tenant.providerAccount.username,
      password: 'provider-secret-pw',
      balance: '100000000',
      callbackUrl: callbacks ? callback : undefined,
    });
    return {
      ...tenant,
      tid: uuidOf(tenant.tenantId),
      pac: uuidOf(tenant.providerAccountId),
      username: tenant.providerAccount.username as string,
      callback,
    };
  }

  async function money(tid: string) {
    const [row] = await t.db.query(
      `SELECT t.balance::bigint AS balance,
              (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE tenant_id = t.id)::bigint AS ledger,
              (SELECT count(*) FROM ledger_entries WHERE tenant_id = t.id AND kind = 'refund')::int AS refunds,
              (SELECT count(DISTINCT message_id) FROM ledger_entries WHERE tenant_id = t.id AND kind = 'refund')::int AS refunded_messages,
              (SELECT count(*) FROM ledger_entries WHERE tenant_id = t.id AND kind = 'debit')::int AS debits
         FROM tenants t WHERE t.id = $1`,
      [tid],
    );
    return {
      balance: Number(row.balance),
      ledger: Number(row.ledger),
      refunds: row.refunds as number,
      refundedMessages: row.refunded_messages as number,
      debits: row.debits as number,
    };
  }

  async function rows(tid: string) {
    return t.db.query<
      {
        id: string;
        msisdn: string;
        text: string;
        status: string;
        provider_message_id: string | null;
        failure_reason: string | null;
        refunded: boolean;
        last_error: string | null;
      }[]
    >(
      `SELECT id, msisdn, text, status, provider_message_id, failure_reason, refunded, last_error FROM messages WHERE tenant_id = $1`,
      [tid],
    );
  }

  /**
   * A fault on `table` for one tenant, fired the first `times` times `when` holds: 'kill' terminates
   * the transaction's own backend (the connection is lost mid-transaction), 'error' raises.
   * The count lives in a sequence (not rolled back with the failed transaction).
   */
  async function injectFault(
    table: 'messages' | 'ledger_entries',
    tid: string,
    when: string,
    times: number,
    kinds: ('kill' | 'error')[],
  ) {
    const seq = `test_fault_${Date.now()}`;
    await t.db.query(`CREATE SEQUENCE ${seq}`);
    const actions = kinds
      .map((k, i) =>
        k === 'kill'
          ? `IF n % ${kinds.length} = ${(i + 1) % kinds.length} THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;`
          : `IF n % ${kinds.length} = ${(i + 1) % kinds.length} THEN RAISE EXCEPTION 'test: injected fault %', n; END IF;`,
      )
      .join('\n');
    await t.db.query(`
      CREATE OR REPLACE FUNCTION test_fault_fn() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE n bigint;
      BEGIN
        IF NEW.tenant_id = '${tid}' AND (${when}) THEN
          n := nextval('${seq}');
          IF n <= ${times} THEN
            ${actions}
          END IF;
        END IF;
        RETURN NEW;
      END $$`);
    await ddl(t, `DROP TRIGGER IF EXISTS test_fault ON ${table}`);
    await ddl(
      t,
      `CREATE TRIGGER test_fault BEFORE INSERT OR UPDATE ON ${table} FOR EACH ROW EXECUTE FUNCTION test_fault_fn()`,
    );
    return {
      fired: async () =>
        Number((await t.db.query(`SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS n FROM ${seq}`))[0].n),
    };
  }

  async function metricTotal(name: string): Promise<number> {
    const m = register.getSingleMetric(name);
    if (!m) return 0;
    return (await m.get()).values.reduce((a, x) => a + x.value, 0);
  }

  async function flaggedMetric(): Promise<number> {
    const m = register.getSingleMetric('gerbang_dlr_flagged_total');
    if (!m) return 0;
    const v = await m.get();
    return v.values.filter((x) => x.labels.reason === 'msisdn_mismatch').reduce((a, x) => a + x.value, 0);
  }

  it('item 2: the transaction recording outcomes fails (lost connection, then errors): provider ids and refunds still land, once', async () => {
    const PRICE = 10;
    const tenant = await tenantOnSandbox(10_000, PRICE, false);
    // Every recording of an outcome for this tenant fails 4 times: killed backend, error, killed, error.
    const fault = await injectFault(
      'messages',
      tenant.tid,
      `TG_OP = 'UPDATE' AND OLD.status = 'submitting' AND NEW.status IN ('submitted', 'failed')`,
      4,
      ['kill', 'error'],
    );
    const tag = unique('rec');
    const accepted = await t.http
      .post('/v1/messages/batch')
      .set('Authorization', `Bearer ${tenant.apiKey}`)
      .send({ messages: Array.from({ length: 5 }, (_, i) => ({ to: '081234567890', text: `${tag} ok ${i}` })) });
    expect(accepted.status).toBe(202);
    // While the outcomes wait to be re-recorded, their claims cannot run out: the lease is renewed, and
    // this process's janitor leaves them alone even ten minutes "later".
    await waitFor('a recording failed', fault.fired, (n) => n >= 1, 20_000, 5);
    const dispatcher = t.app.get(DispatcherService);
    expect(await dispatcher.renewLeases()).toBeGreaterThanOrEqual(1);
    t.clock.advance(600_000);
    try {
      // The janitor expires every stale lease in the database (a killed process's claims from another
      // suite are fair game); none of this tenant's held claims may be among them.
      await dispatcher.expireLeases();
      expect((await rows(tenant.tid)).filter((r) => r.status === 'uncertain')).toEqual([]);
    } finally {
      t.clock.reset();
    }
    const final = await waitFor(
      'the accepted outcomes recorded',
      () => rows(tenant.tid),
      (rs) => rs.length === 5 && rs.every((r) => r.status === 'submitted'),
      20_000,
      100,
    );
    expect(await fault.fired()).toBeGreaterThanOrEqual(4);
    const sent = new Map(
      sandbox
        .sent()
        .filter((s) => s.username === tenant.username)
        .map((s) => [s.text, s.id]),
    );
    expect(sent.size).toBe(5);
    expect(final.filter((r) => sent.get(r.text) !== r.provider_message_id)).toEqual([]);

    // Rejected sends (an HTML page instead of an id): failed and refunded exactly once despite the faults.
    sandbox.setKnobs({ htmlGarbageRate: 1 });
    const fault2 = await injectFault(
      'messages',
      tenant.tid,
      `TG_OP = 'UPDATE' AND OLD.status = 'submitting' AND NEW.status IN ('submitted', 'failed')`,
      3,
      ['error', 'kill'],
    );
    const rejected = await t.http
      .post('/v1/messages/batch')
      .set('Authorization', `Bearer ${tenant.apiKey}`)
      .send({ messages: Array.from({ length: 3 }, (_, i) => ({ to: '081234567890', text: `${tag} bad ${i}` })) });
    expect(rejected.status).toBe(202);
    await waitFor(
      'the rejections recorded',
      () => rows(tenant.tid),
      (rs) => rs.filter((r) => r.status === 'failed').length === 3,
      20_000,
      100,
    );
    expect(await fault2.fired()).toBeGreaterThanOrEqual(3);
    const failed = (await rows(tenant.tid)).filter((r) => r.status === 'failed');
    expect(failed.map((r) => [r.failure_reason, r.refunded])).toEqual([
      ['submit_rejected', true],
      ['submit_rejected', true],
      ['submit_rejected', true],
    ]);
    expect(await money(tenant.tid)).toEqual({
      balance: 10_000 - 5 * PRICE,
      ledger: 10_000 - 5 * PRICE,
      refunds: 3,
      refundedMessages: 3,
      debits: 8,
    });
  }, 60_000);

  it('item 2: one outcome that can never be written does not hold back the others; it is left to the lease janitor (uncertain, still charged)', async () => {
    const PRICE = 10;
    const tenant = await tenantOnSandbox(10_000, PRICE, false);
    const tag = unique('poison');
    // Recording `submitted` fails for this one message every time (a permanent error for that row, as a
    // unique provider id already taken would be); the database accepts every other recording.
    const fault = await injectFault(
      'messages',
      tenant.tid,
      `TG_OP = 'UPDATE' AND OLD.status = 'submitting' AND NEW.status = 'submitted' AND NEW.text = '${tag} bad'`,
      1_000_000,
      ['error'],
    );
    const abandonedBefore = await metricTotal('gerbang_dispatch_record_abandoned_total');
    const bad = await t.http
      .post('/v1/messages')
      .set('Authorization', `Bearer ${tenant.apiKey}`)
      .send({ to: '081234567890', text: `${tag} bad` });
    expect(bad.status).toBe(202);
    await waitFor('the bad outcome failed to record', fault.fired, (n) => n >= 1, 20_000, 5);

    // Sent after it: their outcomes queue behind the failing one, and must land all the same.
    const good = await t.http
      .post('/v1/messages/batch')
      .set('Authorization', `Bearer ${tenant.apiKey}`)
      .send({ messages: Array.from({ length: 3 }, (_, i) => ({ to: '081234567890', text: `${tag} ok ${i}` })) });
    expect(good.status).toBe(202);
    await waitFor(
      'the other outcomes recorded',
      () => rows(tenant.tid),
      (rs) => rs.filter((r) => r.text.startsWith(`${tag} ok`) && r.status === 'submitted').length === 3,
      20_000,
      100,
    );

    // The one that cannot be written is given up by its process (logged, counted) once it failed alone five
    // times, each after other recordings landed (more sends keep landing meanwhile): its claim is no longer
    // held, so the lease janitor turns it `uncertain` when the lease ends, and reconciliation settles it from
    // the provider's report. It is never resent, never refunded here.
    let more = 0;
    await waitFor(
      'the outcome given up',
      async () => {
        const sent = await t.http
          .post('/v1/messages')
          .set('Authorization', `Bearer ${tenant.apiKey}`)
          .send({ to: '081234567890', text: `${tag} more ${more}` });
        expect(sent.status).toBe(202);
        more++;
        return metricTotal('gerbang_dispatch_record_abandoned_total');
      },
      (n) => n >= abandonedBefore + 1,
      40_000,
      250,
    );
    const dispatcher = t.app.get(DispatcherService);
    t.clock.advance(600_000);
    try {
      await dispatcher.expireLeases();
    } finally {
      t.clock.reset();
    }
    const final = await rows(tenant.tid);
    expect(final.find((r) => r.text === `${tag} bad`)).toMatchObject({
      status: 'uncertain',
      provider_message_id: null,
      refunded: false,
    });
    expect(sandbox.sent().filter((s) => s.username === tenant.username && s.text === `${tag} bad`)).toHaveLength(1);
    expect(await money(tenant.tid)).toEqual({
      balance: 10_000 - (4 + more) * PRICE,
      ledger: 10_000 - (4 + more) * PRICE,
      refunds: 0,
      refundedMessages: 0,
      debits: 4 + more,
    });
  }, 90_000);

  it('item 2: when the database refuses every recording (nothing lands), no outcome is given up: all land once it accepts them', async () => {
    const tenant = await tenantOnSandbox(10_000, 10, false);
    const fault = await injectFault(
      'messages',
      tenant.tid,
      `TG_OP = 'UPDATE' AND OLD.status = 'submitting' AND NEW.status = 'submitted'`,
      20,
      ['error'],
    );
    const abandonedBefore = await metricTotal('gerbang_dispatch_record_abandoned_total');
    const sent = await t.http
      .post('/v1/messages/batch')
      .set('Authorization', `Bearer ${tenant.apiKey}`)
      .send({ messages: Array.from({ length: 3 }, (_, i) => ({ to: '081234567890', text: `${unique('all')} ${i}` })) });
    expect(sent.status).toBe(202);
    // Up to 100 s: when the other two land early, the third alone takes most of the 20 refusals, each followed
    // by the recorder's backoff (100 ms doubling, capped at 5 s, ±20 %): ~76 s at worst, past the 60 s this
    // waited before (a clean-clone run timed out with that one still `submitting`, the others recorded).
    const final = await waitFor(
      'every outcome recorded once the faults stop',
      () => rows(tenant.tid),
      (rs) => rs.length === 3 && rs.every((r) => r.status === 'submitted'),
      100_000,
      100,
    );
    expect(await fault.fired()).toBeGreaterThanOrEqual(20); // 20 refused, then the ones that landed
    expect(final.every((r) => r.provider_message_id !== null)).toBe(true);
    expect(await metricTotal('gerbang_dispatch_record_abandoned_total')).toBe(abandonedBefore);
  }, 130_000);

  it('item 6: a report whose msisdn is not the message number is stored and flagged, never applied', async () => {
    const tenant = await tenantOnSandbox(1_000, 10, false);
    const sent = await t.http
      .post('/v1/messages')
      .set('Authorization', `Bearer ${tenant.apiKey}`)
      .send({ to: '081234567890', text: unique('mm') });
    expect(sent.status).toBe(202);
    const [msg] = await waitFor(
      'submitted',
      () => rows(tenant.tid),
      (rs) => rs[0]?.status === 'submitted',
    );
    const pid = msg.provider_message_id!;
    const path = new URL(tenant.callback).pathname;
    const before = await flaggedMetric();

    const wrong = await t.http
      .get(path)
      .query({ session_id: pid, error_code: '22', error_message: 'Delivered', msisdn: '6289999999999' });
    expect(wrong.status).toBe(200);
    // The 200 comes once the report is stored; it is matched (here: flagged) right after.
    const [flagged] = await waitFor(
      'the report flagged',
      () =>
        t.db.query<{ flagged: string | null }[]>(
          `SELECT msisdn, message_id, applied_at, flagged FROM delivery_reports WHERE provider_account_id = $1`,
          [tenant.pac],
        ),
      (rs) => rs[0]?.flagged !== null,
    );
    expect(flagged).toEqual({
      msisdn: '6289999999999',
      message_id: null,
      applied_at: null,
      flagged: 'msisdn_mismatch',
    });
    expect((await rows(tenant.tid))[0]).toMatchObject({ status: 'submitted', refunded: false });
    expect(await flaggedMetric()).toBe(before + 1);

    // The same number in another spelling is the same number: applied.
    const right = await t.http
      .get(path)
      .query({ session_id: pid, error_code: '22', error_message: 'Delivered', msisdn: '+62 812-3456-7890' });
    expect(right.status).toBe(200);
    await waitFor(
      'delivered',
      () => rows(tenant.tid),
      (rs) => rs[0]?.status === 'delivered',
    );
    expect(await flaggedMetric()).toBe(before + 1);
  });

  it('item 6: an early report (before the provider id is recorded) with a wrong msisdn is not applied when the id lands', async () => {
    const tenant = await tenantOnSandbox(1_000, 10, false);
    const path = new URL(tenant.callback).pathname;
    // The provider's next id for this account is not known yet: report every plausible one (a report
    // for an id no message carries waits, unapplied, for the dispatcher to record it).
    sandbox.setKnobs({ latencyMs: [300, 300] });
    const sent = await t.http
      .post('/v1/messages')
      .set('Authorization', `Bearer ${tenant.apiKey}`)
      .send({ to: '081234567890', text: unique('early') });
    expect(sent.status).toBe(202);
    const taken = await waitFor(
      'the provider took it',
      () => sandbox.sent().filter((s) => s.username === tenant.username),
      (s) => s.length === 1,
    );
    const pid = taken[0].id;
    const r = await t.http
      .get(path)
      .query({ session_id: pid, error_code: '52', error_message: 'No Charge', msisdn: '6289999999999' });
    expect(r.status).toBe(200);
    const [msg] = await waitFor(
      'submitted',
      () => rows(tenant.tid),
      (rs) => rs[0]?.status === 'submitted',
    );
    expect(msg).toMatchObject({ provider_message_id: pid, refunded: false });
    const [report] = await waitFor(
      'the early report flagged',
      () =>
        t.db.query<{ flagged: string | null }[]>(
          `SELECT message_id, applied_at, flagged FROM delivery_reports WHERE provider_account_id = $1`,
          [tenant.pac],
        ),
      (rs) => rs[0]?.flagged !== null,
    );
    expect(report).toEqual({ message_id: null, applied_at: null, flagged: 'msisdn_mismatch' });
    expect((await money(tenant.tid)).refunds).toBe(0);
  });
  /**
   * A TCP proxy in front of PostgreSQL that can break the connection of the next COMMITs:
   * 'after' forwards the COMMIT and drops the connection instead of passing on the answer (the
   * commit happened, the gateway cannot know); 'before' drops it without forwarding (it did not);
   * 'during' forwards it and drops the connection at once, while the server is still committing (the
   * commit happens after the gateway saw the connection go). With a `marker`, only a COMMIT of a transaction
   * that sent it (e.g. a message text among its parameters) is broken, not a background job's; with several
   * markers, one message must carry them all (a Bind of a prepared statement counts its statement's text).
   * `at: 'sync'` breaks the Sync that ends a marked single statement instead (its implicit commit).
   */
  async function commitBreaker(): Promise<{
    url: string;
    arm(mode: 'after' | 'before' | 'during', times: number, marker?: string | string[], at?: 'commit' | 'sync'): void;
    broken(): number;
    close(): Promise<void>;
  }> {
    const target = new URL(TEST_DATABASE_URL);
    let mode: 'after' | 'before' | 'during' = 'after';
    let armed = 0;
    let markers: Buffer[] | null = null;
    let at: 'commit' | 'sync' = 'commit';
    let broken = 0;
    // Prepared statements by name, from their Parse (a later Bind names the statement but carries no text).
    const statements = new Map<string, Buffer>();
    const sockets = new Set<Socket>();
    const server: Server = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname);
      sockets.add(client).add(upstream);
      let buf = Buffer.alloc(0);
      let started = false;
      let killOnAnswer = false;
      let marked = false;
      const kill = () => {
        broken++;
        client.destroy();
        upstream.destroy();
      };
      client.on('data', (chunk: Buffer) => {
        buf = Buffer.concat([buf, chunk]);
        // Frontend messages: the untyped startup message first, then type byte + int32 length.
        for (;;) {
          if (!started) {
            if (buf.length < 4) return;
            const len = buf.readInt32BE(0);
            if (buf.length < len) return;
            upstream.write(buf.subarray(0, len));
            buf = buf.subarray(len);
            started = true;
            continue;
          }
          if (buf.length < 5) return;
          const len = buf.readInt32BE(1) + 1;
          if (buf.length < len) return;
          const msg = buf.subarray(0, len);
          buf = buf.subarray(len);
          const isCommit =
            at === 'sync'
              ? msg[0] === 0x53
              : msg[0] === 0x51 &&
                msg
                  .subarray(5, len - 1)
                  .toString()
                  .trim()
                  .toUpperCase() === 'COMMIT';
          let statement: Buffer | undefined;
          if (msg[0] === 0x50) {
            const nameEnd = msg.indexOf(0, 5);
            if (nameEnd > 5) statements.set(msg.subarray(5, nameEnd).toString(), msg.subarray(nameEnd + 1));
          } else if (msg[0] === 0x42) {
            const portalEnd = msg.indexOf(0, 5);
            statement = statements.get(msg.subarray(portalEnd + 1, msg.indexOf(0, portalEnd + 1)).toString());
          }
          if (markers && markers.every((k) => msg.includes(k) || statement?.includes(k))) marked = true;
          const chosen = markers === null || marked;
          if (isCommit) marked = false;
          if (isCommit && armed > 0 && chosen) {
            armed--;
            if (mode === 'before') return kill();
            if (mode === 'during') {
              upstream.write(msg, () => kill());
              return;
            }
            killOnAnswer = true;
          }
          upstream.write(msg);
        }
      });
      upstream.on('data', (chunk: Buffer) => {
        if (killOnAnswer) return kill();
        client.write(chunk);
      });
      const end = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const url = new URL(TEST_DATABASE_URL);
    url.hostname = '127.0.0.1';
    url.port = String((server.address() as { port: number }).port);
    return {
      url: url.toString(),
      arm(m, times, mark, breakAt = 'commit') {
        mode = m;
        armed = times;
        markers = mark === undefined ? null : (Array.isArray(mark) ? mark : [mark]).map((k) => Buffer.from(k));
        at = breakAt;
      },
      broken: () => broken,
      close: async () => {
        for (const s of sockets) s.destroy();
        await new Promise<void>((r) => server.close(() => r()));
      },
    };
  }

  describe('item 4: a COMMIT whose answer is lost is resolved by looking up what it wrote', () => {
    let proxy: Awaited<ReturnType<typeof commitBreaker>>;
    let p: TestApp;

    beforeAll(async () => {
      proxy = await commitBreaker();
      // Its own app, through the proxy, not dispatching: the next COMMITs are the accept transactions.
      p = await startTestApp({ DATABASE_URL: proxy.url, DISPATCHER: 'false' });
    });
    afterAll(async () => {
      await p?.close();
      await proxy?.close();
    });

    async function tenant(balance: number) {
      const created = await createTenant(p, { balance, pricePerSegment: 10 });
      return { ...created, tid: uuidOf(created.tenantId) };
    }

    async function ledgerOf(tid: string) {
      const [row] = await t.db.query(
        `SELECT (SELECT balance FROM tenants WHERE id = $1)::bigint AS balance,
                (SELECT count(*) FROM messages WHERE tenant_id = $1)::int AS messages,
                (SELECT count(*) FROM ledger_entries WHERE tenant_id = $1 AND kind = 'debit')::int AS debits`,
        [tid],
      );
      return { balance: Number(row.balance), messages: row.messages as number, debits: row.debits as number };
    }

    it('the connection lost while the server is still committing: the lookup waits for that commit, one message, one debit', async () => {
      const ten = await tenant(1_000);
      // A slow COMMIT: a deferred trigger of this tenant's debit sleeps at commit time, after the proxy has
      // already dropped the connection, so the gateway's lookup runs while the commit is still under way.
      await t.db.query(`
        CREATE OR REPLACE FUNCTION test_slow_commit_fn() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF NEW.tenant_id = '${ten.tid}' AND NEW.kind = 'debit' THEN PERFORM pg_sleep(1); END IF;
          RETURN NULL;
        END $$`);
      await ddl(t, `DROP TRIGGER IF EXISTS test_slow_commit ON ledger_entries`);
      await ddl(
        t,
        `CREATE CONSTRAINT TRIGGER test_slow_commit AFTER INSERT ON ledger_entries DEFERRABLE INITIALLY DEFERRED
           FOR EACH ROW EXECUTE FUNCTION test_slow_commit_fn()`,
      );
      try {
        const text = unique('slow commit');
        proxy.arm('during', 1, text);
        const broken = proxy.broken();
        const r = await p.http
          .post('/v1/messages')
          .set('Authorization', `Bearer ${ten.apiKey}`)
          .send({ to: '081234567890', text });
        expect(proxy.broken()).toBe(broken + 1);
        expect(r.status).toBe(202);
        const rows = await t.db.query(`SELECT id FROM messages WHERE tenant_id = $1`, [ten.tid]);
        expect(rows.map((x: { id: string }) => `msg_${x.id.replace(/-/g, '')}`)).toEqual([r.body.id]);
        expect(await ledgerOf(ten.tid)).toEqual({ balance: 990, messages: 1, debits: 1 });
      } finally {
        await ddl(t, `DROP TRIGGER IF EXISTS test_slow_commit ON ledger_entries`);
      }
    });

    for (const mode of ['after', 'before'] as const) {
      it(`one request, the connection lost ${mode} COMMIT reached the server: answered 202 once, one message, one debit`, async () => {
        const ten = await tenant(1_000);
        // Marked by its text: a background job's COMMIT through the same proxy (the webhook relay ticks) is left alone.
        const text = unique('c1');
        proxy.arm(mode, 1, text);
        const broken = proxy.broken();
        const r = await p.http
          .post('/v1/messages')
          .set('Authorization', `Bearer ${ten.apiKey}`)
          .send({ to: '081234567890', text });
        expect(proxy.broken()).toBe(broken + 1);
        expect(r.status).toBe(202);
        const rows = await t.db.query(`SELECT id FROM messages WHERE tenant_id = $1`, [ten.tid]);
        expect(rows.map((x: { id: string }) => `msg_${x.id.replace(/-/g, '')}`)).toEqual([r.body.id]);
        expect(await ledgerOf(ten.tid)).toEqual({ balance: 990, messages: 1, debits: 1 });
      });

      it(`a group commit of keyed and unkeyed requests, connection lost ${mode} COMMIT: each answered once, no double charge, no false 409`, async () => {
        const ten = await tenant(10_000);
        const auth = { Authorization: `Bearer ${ten.apiKey}` };
        // The tenant row held: the requests queue up and are charged by one transaction.
        const blocker = t.db.createQueryRunner();
        await blocker.connect();
        await blocker.startTransaction();
        await blocker.query(`SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE`, [ten.tid]);
        let results: { status: number; body: { id?: string; code?: string } }[];
        const keys = [unique('k'), unique('k'), null, null, unique('k'), null];
        // Only COMMITs of transactions that carry this tag (the accepts), not a background job's.
        const tag = unique('group');
        const broken = proxy.broken();
        try {
          // The first request's transaction (waiting on the lock) and then the group of the others.
          proxy.arm(mode, 2, tag);
          const pending = keys.map((key, i) => {
            const req = p.http.post('/v1/messages').set(auth);
            if (key) req.set('Idempotency-Key', key);
            return req.send({ to: '081234567890', text: `${tag} ${i}` }).then((x) => x);
          });
          await new Promise((r) => setTimeout(r, 1500));
          await blocker.commitTransaction();
          results = await Promise.all(pending);
        } finally {
          if (blocker.isTransactionActive) await blocker.rollbackTransaction();
          await blocker.release();
        }
        expect(proxy.broken()).toBe(broken + 2);
        expect(results.map((x) => x.status)).toEqual(keys.map(() => 202));
        const ids = results.map((x) => x.body.id);
        expect(new Set(ids).size).toBe(keys.length);
        const rows: { id: string; text: string }[] = await t.db.query(
          `SELECT id, text FROM messages WHERE tenant_id = $1 ORDER BY text`,
          [ten.tid],
        );
        expect(rows.map((x) => `msg_${x.id.replace(/-/g, '')}`).sort()).toEqual([...ids].sort());
        expect(await ledgerOf(ten.tid)).toEqual({
          balance: 10_000 - 10 * keys.length,
          messages: keys.length,
          debits: keys.length,
        });
        // A retry with a key replays the same answer (the key was completed by the commit in doubt).
        const again = await p.http
          .post('/v1/messages')
          .set(auth)
          .set('Idempotency-Key', keys[0]!)
          .send({ to: '081234567890', text: `${tag} 0` });
        expect({ status: again.status, id: again.body.id }).toEqual({ status: 202, id: ids[0] });
        expect((await ledgerOf(ten.tid)).debits).toBe(keys.length);
      });
    }
  });

  describe('a dispatcher claim whose commit is in doubt is resolved: its messages are sent, exactly once', () => {
    let proxy: Awaited<ReturnType<typeof commitBreaker>>;
    let q: TestApp;

    beforeAll(async () => {
      // The only dispatcher is q's, through the proxy: the main app's dispatcher is stopped meanwhile. A short
      // lease, so that a claim left `submitting` by the old code runs out (to `uncertain`) within the test.
      await t.app.get(DispatcherService).stop();
      proxy = await commitBreaker();
      q = await startTestApp({
        DATABASE_URL: proxy.url,
        DISPATCH_POLL_MS: '50',
        PROVIDER_SEND_RATE_PER_SECOND: '0',
        PROVIDER_TOTAL_TIMEOUT_MS: '2000',
        DISPATCH_LEASE_MS: '3000',
      });
    });
    afterAll(async () => {
      await q?.close();
      await proxy?.close();
      t.app.get(DispatcherService).start();
    });

    // Through q's admin API (q's boot re-created the admin's session: the main app's token is no longer valid).
    async function tenantOfQ() {
      const created = await createTenant(q, { balance: 1_000, pricePerSegment: 10, baseUrl: sandbox.url });
      sandbox.addAccount({
        username: created.providerAccount.username,
        password: 'provider-secret-pw',
        balance: '100000000',
      });
      return {
        ...created,
        tid: uuidOf(created.tenantId),
        pac: uuidOf(created.providerAccountId),
        username: created.providerAccount.username as string,
      };
    }

    async function setAccountStatus(providerAccountId: string, status: 'active' | 'disabled') {
      const r = await q.http
        .patch(`/v1/admin/provider-accounts/${providerAccountId}`)
        .set('Authorization', `Bearer ${q.adminToken}`)
        .send({ status });
      expect(r.status).toBe(200);
    }

    const lost = {
      after: 'after its commit (the answer is lost)',
      during: 'while the server is still committing it',
      before: 'before its commit reached the server',
    } as const;
    for (const mode of ['after', 'during', 'before'] as const) {
      it(`the connection of a claim lost ${lost[mode]}: each message submitted once, its attempt counted once, one queued event`, async () => {
        const ten = await tenantOfQ();
        const tag = unique(`claim-${mode}`);
        // Not dispatchable while its messages are accepted: the first claim that names its account claims both.
        await setAccountStatus(ten.providerAccountId, 'disabled');
        const auth = { Authorization: `Bearer ${ten.apiKey}` };
        const now = await t.http
          .post('/v1/messages')
          .set(auth)
          .send({ to: '081234567890', text: `${tag} now` });
        const later = await t.http
          .post('/v1/messages')
          .set(auth)
          .send({ to: '081234567890', text: `${tag} later`, sendAt: new Date(Date.now() + 60_000).toISOString() });
        expect([now.status, later.status]).toEqual([202, 202]);
        if (mode === 'during') {
          // A slow claim of these rows: the proxy drops the connection while the server is still running it
          // (it then commits), so a look right after the error would not yet see the claimed rows.
          await t.db.query(`
            CREATE OR REPLACE FUNCTION test_slow_claim_fn() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.tenant_id = '${ten.tid}' AND NEW.status = 'submitting' THEN PERFORM pg_sleep(1); END IF;
              RETURN NEW;
            END $$`);
          await ddl(t, `DROP TRIGGER IF EXISTS test_slow_claim ON messages`);
          await ddl(
            t,
            `CREATE TRIGGER test_slow_claim BEFORE UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION test_slow_claim_fn()`,
          );
        }
        const broken = proxy.broken();
        try {
          // The claim statement naming this account (its Bind carries the account id) loses its answer.
          proxy.arm(mode, 1, [ten.pac, `SET status = 'submitting'`], 'sync');
          q.clock.advance(120_000); // the scheduled one is due for q's dispatcher
          await setAccountStatus(ten.providerAccountId, 'active');
          await waitFor(
            'the claim broken',
            () => proxy.broken(),
            (n) => n === broken + 1,
            10_000,
            10,
          );
          const settled = await waitFor(
            'both messages out of queued/submitting',
            () =>
              t.db.query<{ text: string; status: string; attempts: number; provider_message_id: string | null }[]>(
                `SELECT text, status, attempts, provider_message_id FROM messages WHERE tenant_id = $1 ORDER BY text`,
                [ten.tid],
              ),
            (rs) => rs.length === 2 && rs.every((r) => !['scheduled', 'queued', 'submitting'].includes(r.status)),
            20_000,
            100,
          );
          const sent = sandbox.sent().filter((x) => x.username === ten.username);
          const ids = new Map(sent.map((x) => [x.text, x.id]));
          expect(settled).toEqual([
            { text: `${tag} later`, status: 'submitted', attempts: 1, provider_message_id: ids.get(`${tag} later`) },
            { text: `${tag} now`, status: 'submitted', attempts: 1, provider_message_id: ids.get(`${tag} now`) },
          ]);
          expect(sent.map((x) => x.text).sort()).toEqual([`${tag} later`, `${tag} now`]);
          const events: { text: string; status: string }[] = await t.db.query(
            `SELECT m.text, e.status FROM message_events e JOIN messages m ON m.id = e.message_id
              WHERE e.tenant_id = $1 ORDER BY m.text, e.seq`,
            [ten.tid],
          );
          expect(events).toEqual([
            { text: `${tag} later`, status: 'queued' },
            { text: `${tag} later`, status: 'submitted' },
            { text: `${tag} now`, status: 'submitted' },
          ]);
          expect(await money(ten.tid)).toEqual({
            balance: 980,
            ledger: 980,
            refunds: 0,
            refundedMessages: 0,
            debits: 2,
          });
          expect(proxy.broken()).toBe(broken + 1);
        } finally {
          proxy.arm(mode, 0);
          q.clock.reset();
          await ddl(t, `DROP TRIGGER IF EXISTS test_slow_claim ON messages`);
        }
      }, 60_000);
    }
  });
});

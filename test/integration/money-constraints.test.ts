import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { LedgerService } from '../../src/billing/ledger.service';
import { uuidv7 } from '../../src/common/ids';
import { bearer, createTenant, startTestApp, TEST_DATABASE_URL, TestApp, unique, uuidOf } from '../support/app';
import { waitFor } from '../support/wait';

/**
 * The database itself enforces what docs/data-model.md claims about money (issue 7 item 9): wrong
 * rows written straight through SQL, bypassing the services, are refused by PostgreSQL.
 */
describe('money invariants enforced by PostgreSQL', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ DISPATCHER: 'false' });
  });
  afterAll(async () => {
    await t.close();
  });
  afterEach(() => t.clock.reset());

  /** A tenant with one accepted (debited) message; uuids for SQL. */
  async function debitedMessage(price = 100) {
    const c = await createTenant(t, { balance: 10_000, pricePerSegment: price });
    const r = await t.http.post('/v1/messages').set(bearer(c.apiKey)).send({ to: '081234567890', text: 'hi' });
    expect(r.status).toBe(202);
    return { ...c, tenant: uuidOf(c.tenantId), message: uuidOf(r.body.id) };
  }

  type Insert = (row: {
    tenant: string;
    kind: string;
    amount: number;
    balanceAfter?: number;
    message?: string | null;
    graceUntil?: Date | null;
  }) => Promise<string>;

  /**
   * Gives `fn` a way to insert ledger rows through plain SQL, each resolving to 'inserted' or the SQLSTATE
   * and message of the refusal; all of it in one transaction that is rolled back at the end, so the
   * deliberately unbalanced rows never reach other tests' whole-database checks.
   */
  async function rawSql(
    fn: (insert: Insert, sql: (text: string, params: unknown[]) => Promise<unknown>) => Promise<void>,
  ) {
    const qr = t.db.createQueryRunner();
    await qr.connect();
    await qr.startTransaction();
    try {
      await fn(
        async (row) => {
          await qr.query('SAVEPOINT attempt');
          try {
            await qr.query(
              `INSERT INTO ledger_entries (id, tenant_id, kind, amount, balance_after, message_id, grace_until, created_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, now())`,
              [
                uuidv7(),
                row.tenant,
                row.kind,
                row.amount,
                row.balanceAfter ?? 0,
                row.message ?? null,
                row.graceUntil ?? null,
              ],
            );
            await qr.query('RELEASE SAVEPOINT attempt');
            return 'inserted';
          } catch (e) {
            await qr.query('ROLLBACK TO SAVEPOINT attempt');
            const err = e as { driverError?: { code?: string }; message: string };
            return `${err.driverError?.code} ${err.message}`;
          }
        },
        (text, params) => qr.query(text, params),
      );
    } finally {
      await qr.rollbackTransaction();
      await qr.release();
    }
  }

  it('refuses a refund booked to another tenant than its message’s', async () => {
    const a = await debitedMessage();
    const b = await createTenant(t);
    await rawSql(async (insertLedger) => {
      const res = await insertLedger({ tenant: uuidOf(b.tenantId), kind: 'refund', amount: 100, message: a.message });
      expect(res).toMatch(/^23514 .*tenant/);
    });
  });

  it('refuses a refund that is not exactly minus the message’s debit', async () => {
    const a = await debitedMessage(100);
    await rawSql(async (insertLedger) => {
      expect(await insertLedger({ tenant: a.tenant, kind: 'refund', amount: 101, message: a.message })).toMatch(
        /^23514 .*debit/,
      );
      expect(await insertLedger({ tenant: a.tenant, kind: 'refund', amount: 99, message: a.message })).toMatch(
        /^23514 .*debit/,
      );
      // The right one is accepted (the schema does not refuse correct rows), once.
      expect(await insertLedger({ tenant: a.tenant, kind: 'refund', amount: 100, message: a.message })).toBe(
        'inserted',
      );
      expect(await insertLedger({ tenant: a.tenant, kind: 'refund', amount: 100, message: a.message })).toMatch(
        /^23505 /,
      );
    });
  });

  it('refuses a refund of a message that was never debited', async () => {
    const a = await debitedMessage();
    const orphan = uuidv7();
    await rawSql(async (insertLedger, sql) => {
      await sql(
        `INSERT INTO messages (id, tenant_id, provider_account_id, msisdn, text, status, segments, encoding, price)
         SELECT $1, id, provider_account_id, '6281234567890', 'x', 'failed', 1, 'GSM-7', 100 FROM tenants WHERE id = $2`,
        [orphan, a.tenant],
      );
      expect(await insertLedger({ tenant: a.tenant, kind: 'refund', amount: 100, message: orphan })).toMatch(
        /^23514 .*debit/,
      );
    });
  });

  it('one expiry per tenant and validity period (unique), and an expiry names its period', async () => {
    const a = await debitedMessage();
    const grace = new Date('2031-05-01T00:00:00Z');
    await rawSql(async (insertLedger) => {
      expect(await insertLedger({ tenant: a.tenant, kind: 'expiry', amount: -5, graceUntil: grace })).toBe('inserted');
      expect(await insertLedger({ tenant: a.tenant, kind: 'expiry', amount: -7, graceUntil: grace })).toMatch(
        /^23505 .*ledger_one_expiry_per_period_uq/,
      );
      expect(await insertLedger({ tenant: a.tenant, kind: 'expiry', amount: -7, graceUntil: null })).toMatch(/^23514 /);
    });
  });

  it('a refund that lands after its period ended is forfeited at once, with the period still expired only once', async () => {
    t.clock.set(new Date('2031-01-10T03:00:00Z'));
    const { tenantId, apiKey } = await createTenant(t, { balance: 1000, pricePerSegment: 100 });
    const sched = await t.http
      .post('/v1/messages')
      .set(bearer(apiKey))
      .send({ to: '081234567890', text: 'later', sendAt: new Date(t.clock.now().getTime() + 3600_000).toISOString() });
    expect(sched.status).toBe(202);
    const [tenant] = await t.db.query(`SELECT grace_until FROM tenants WHERE id = $1`, [uuidOf(tenantId)]);
    t.clock.set(new Date(tenant.grace_until.getTime() + 1000));
    expect((await t.http.get('/v1/balance').set(bearer(apiKey))).body).toMatchObject({ balance: 0, state: 'expired' });

    const canceled = await t.http.delete(`/v1/messages/${sched.body.id}`).set(bearer(apiKey));
    expect(canceled.status).toBe(200);
    expect((await t.http.get('/v1/balance').set(bearer(apiKey))).body).toMatchObject({ balance: 0, state: 'expired' });
    await t.app.get(LedgerService).expireIfDue(uuidOf(tenantId)); // what the sweep does for this tenant
    const rows = await t.db.query(
      `SELECT kind, amount, balance_after, message_id IS NOT NULL AS for_message FROM ledger_entries WHERE tenant_id = $1 ORDER BY seq`,
      [uuidOf(tenantId)],
    );
    expect(rows).toEqual([
      { kind: 'topup', amount: '1000', balance_after: '1000', for_message: false },
      { kind: 'debit', amount: '-100', balance_after: '900', for_message: true },
      { kind: 'expiry', amount: '-900', balance_after: '0', for_message: false },
      { kind: 'refund', amount: '100', balance_after: '100', for_message: true },
      { kind: 'expiry', amount: '-100', balance_after: '0', for_message: true },
    ]);
  });

  /** A tenant whose scheduled message (price 100, paid from a 1,000 top-up) outlives the validity period. */
  async function scheduledPastItsPeriod(at: string) {
    t.clock.set(new Date(at));
    const c = await createTenant(t, { balance: 1000, pricePerSegment: 100 });
    const sched = await t.http
      .post('/v1/messages')
      .set(bearer(c.apiKey))
      .send({ to: '081234567890', text: 'later', sendAt: new Date(t.clock.now().getTime() + 3600_000).toISOString() });
    expect(sched.status).toBe(202);
    const [tenant] = await t.db.query(`SELECT grace_until FROM tenants WHERE id = $1`, [uuidOf(c.tenantId)]);
    return {
      ...c,
      tenant: uuidOf(c.tenantId),
      messageId: sched.body.id as string,
      graceUntil: tenant.grace_until as Date,
    };
  }

  const ledgerOf = (tenant: string) =>
    t.db.query(
      `SELECT kind, amount, balance_after, message_id IS NOT NULL AS for_message FROM ledger_entries WHERE tenant_id = $1 ORDER BY seq`,
      [tenant],
    );

  it('a refund of a message paid from an ended period stays forfeited after a top-up started a new period', async () => {
    const c = await scheduledPastItsPeriod('2031-02-10T03:00:00Z');
    t.clock.set(new Date(c.graceUntil.getTime() + 1000));
    expect((await t.http.get('/v1/balance').set(bearer(c.apiKey))).body).toMatchObject({
      balance: 0,
      state: 'expired',
    });
    const top = await t.http
      .post(`/v1/admin/tenants/${c.tenantId}/topups`)
      .set(bearer(t.adminToken))
      .send({ amount: 500 });
    expect(top.status).toBe(201);

    const canceled = await t.http.delete(`/v1/messages/${c.messageId}`).set(bearer(c.apiKey));
    expect(canceled.status).toBe(200);
    // The 100 was paid from the forfeited period: the new period's 500 must not grow by it.
    expect((await t.http.get('/v1/balance').set(bearer(c.apiKey))).body).toMatchObject({
      balance: 500,
      state: 'active',
    });
    expect(await ledgerOf(c.tenant)).toEqual([
      { kind: 'topup', amount: '1000', balance_after: '1000', for_message: false },
      { kind: 'debit', amount: '-100', balance_after: '900', for_message: true },
      { kind: 'expiry', amount: '-900', balance_after: '0', for_message: false },
      { kind: 'topup', amount: '500', balance_after: '500', for_message: false },
      { kind: 'refund', amount: '100', balance_after: '600', for_message: true },
      { kind: 'expiry', amount: '-100', balance_after: '500', for_message: true },
    ]);
  });

  it('the same when the ended period had nothing left to forfeit (no period expiry row)', async () => {
    const c = await scheduledPastItsPeriod('2031-03-10T03:00:00Z');
    const spend = await t.http
      .post(`/v1/admin/tenants/${c.tenantId}/adjustments`)
      .set(bearer(t.adminToken))
      .send({ amount: -900, reason: 'spent elsewhere' });
    expect(spend.status).toBe(201);
    t.clock.set(new Date(c.graceUntil.getTime() + 1000));
    const top = await t.http
      .post(`/v1/admin/tenants/${c.tenantId}/topups`)
      .set(bearer(t.adminToken))
      .send({ amount: 500 });
    expect(top.status).toBe(201);

    expect((await t.http.delete(`/v1/messages/${c.messageId}`).set(bearer(c.apiKey))).status).toBe(200);
    expect((await t.http.get('/v1/balance').set(bearer(c.apiKey))).body).toMatchObject({
      balance: 500,
      state: 'active',
    });
  });

  it('a top-up in grace keeps the period going: the refund of an old message paid from it is credited', async () => {
    t.clock.set(new Date('2031-05-10T03:00:00Z'));
    const c = await createTenant(t, { balance: 1000, pricePerSegment: 100 });
    const [v] = await t.db.query(`SELECT valid_until FROM tenants WHERE id = $1`, [uuidOf(c.tenantId)]);
    t.clock.set(new Date(v.valid_until.getTime() - 3600_000)); // the last hour of validity
    const sched = await t.http
      .post('/v1/messages')
      .set(bearer(c.apiKey))
      .send({
        to: '081234567890',
        text: 'later',
        sendAt: new Date(t.clock.now().getTime() + 34 * 86_400_000).toISOString(),
      });
    expect(sched.status).toBe(202);
    t.clock.set(new Date(v.valid_until.getTime() + 28 * 86_400_000)); // in grace, 28 days after the debit
    const top = await t.http
      .post(`/v1/admin/tenants/${c.tenantId}/topups`)
      .set(bearer(t.adminToken))
      .send({ amount: 500 });
    expect(top.status).toBe(201);
    expect((await t.http.delete(`/v1/messages/${sched.body.id}`).set(bearer(c.apiKey))).status).toBe(200);
    expect((await t.http.get('/v1/balance').set(bearer(c.apiKey))).body).toMatchObject({
      balance: 1500,
      state: 'active',
    });
  });

  it('a refund that read its time just before graceUntil and lands after the forfeiture is forfeited too (the tenant is not wedged)', async () => {
    const c = await scheduledPastItsPeriod('2031-04-10T03:00:00Z');
    t.clock.set(new Date(c.graceUntil.getTime() - 5000));
    // The cancel reads its time (just before graceUntil), then waits for the message row held here.
    const blocker = t.db.createQueryRunner();
    await blocker.connect();
    await blocker.startTransaction();
    try {
      await blocker.query(`SELECT 1 FROM messages WHERE id = $1 FOR UPDATE`, [uuidOf(c.messageId)]);
      const cancel = t.http
        .delete(`/v1/messages/${c.messageId}`)
        .set(bearer(c.apiKey))
        .then((r) => r);
      await waitFor('the cancel to wait for the message row', async () => {
        const [{ n }] = await t.db.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%SET status = ''canceled''%'`,
        );
        return n === 1;
      });
      // Meanwhile graceUntil passes and the sweep (another process, say) forfeits the period.
      t.clock.set(new Date(c.graceUntil.getTime() + 1000));
      expect(await t.app.get(LedgerService).expireIfDue(c.tenant)).toBe(true);
      await blocker.commitTransaction();
      expect((await cancel).status).toBe(200);
    } finally {
      if (blocker.isTransactionActive) await blocker.rollbackTransaction();
      await blocker.release();
    }

    const balance = await t.http.get('/v1/balance').set(bearer(c.apiKey));
    expect(balance.status).toBe(200);
    expect(balance.body).toMatchObject({ balance: 0, state: 'expired' });
    expect(await t.app.get(LedgerService).expireIfDue(c.tenant)).toBe(false);
    expect(await ledgerOf(c.tenant)).toEqual([
      { kind: 'topup', amount: '1000', balance_after: '1000', for_message: false },
      { kind: 'debit', amount: '-100', balance_after: '900', for_message: true },
      { kind: 'expiry', amount: '-900', balance_after: '0', for_message: false },
      { kind: 'refund', amount: '100', balance_after: '100', for_message: true },
      { kind: 'expiry', amount: '-100', balance_after: '0', for_message: true },
    ]);
  });

  it('a credit adjustment that read its time just before graceUntil and lands after the forfeiture is refused (the tenant is not wedged)', async () => {
    const c = await scheduledPastItsPeriod('2031-06-10T03:00:00Z');
    const ledger = t.app.get(LedgerService);
    const qr = t.db.createQueryRunner();
    await qr.connect();
    await qr.startTransaction();
    try {
      // A writer whose clock is past graceUntil (a send in another process) forfeits the period and holds the lock…
      await ledger.lockForCharging(qr.manager, c.tenant, new Date(c.graceUntil.getTime() + 1000));
      // …while the adjustment reads its time just before graceUntil and waits for the tenant row.
      t.clock.set(new Date(c.graceUntil.getTime() - 5000));
      const adjust = t.http
        .post(`/v1/admin/tenants/${c.tenantId}/adjustments`)
        .set(bearer(t.adminToken))
        .send({ amount: 500, reason: 'goodwill' })
        .then((r) => r);
      await waitFor('the adjustment to wait for the tenant row', async () => {
        const [{ n }] = await t.db.query(
          `SELECT count(*)::int AS n FROM pg_stat_activity
            WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%FROM tenants WHERE id%FOR NO KEY UPDATE%'`,
        );
        return n === 1;
      });
      await qr.commitTransaction();
      const r = await adjust;
      expect(r.status).toBe(409);
    } finally {
      if (qr.isTransactionActive) await qr.rollbackTransaction();
      await qr.release();
    }

    t.clock.set(new Date(c.graceUntil.getTime() + 2000));
    const balance = await t.http.get('/v1/balance').set(bearer(c.apiKey));
    expect(balance.status).toBe(200);
    expect(balance.body).toMatchObject({ balance: 0, state: 'expired' });
    expect(await ledgerOf(c.tenant)).toEqual([
      { kind: 'topup', amount: '1000', balance_after: '1000', for_message: false },
      { kind: 'debit', amount: '-100', balance_after: '900', for_message: true },
      { kind: 'expiry', amount: '-900', balance_after: '0', for_message: false },
    ]);
  });

  describe('the runtime role cannot rewrite the ledger (docs/operations.md)', () => {
    const role = `gerbang_rt_${process.pid}`;
    let runtime: TestApp | undefined;

    afterAll(async () => {
      await runtime?.close();
      await t.db.query(`DROP OWNED BY ${role}`).catch(() => undefined);
      await t.db.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
    });

    it('with the documented grants: UPDATE/DELETE/TRUNCATE on ledger_entries are refused; the gateway still works', async () => {
      const dbName = new URL(TEST_DATABASE_URL).pathname.slice(1);
      await t.db.query(`CREATE ROLE ${role} LOGIN`);
      // Exactly the documented script, run by the migration role (here: the test's owner of the tables).
      const script = readFileSync(join(process.cwd(), 'scripts/runtime-role-grants.sql'), 'utf8')
        .replaceAll(':"runtime_role"', role)
        .replaceAll(':"database"', dbName);
      await t.db.query(script);

      const url = new URL(TEST_DATABASE_URL);
      url.username = role;
      runtime = await startTestApp({ DATABASE_URL: url.toString(), DISPATCHER: 'false' });
      const [who] = await runtime.db.query(`SELECT current_user AS u`);
      expect(who.u).toBe(role);

      // The gateway's normal money operations, over HTTP, as the runtime role.
      const c = await createTenant(runtime, { balance: 5000, pricePerSegment: 100 });
      const auth = bearer(c.apiKey);
      const sent = await runtime.http
        .post('/v1/messages')
        .set(auth)
        .set('Idempotency-Key', unique('k'))
        .send({ to: '081234567890', text: 'later', sendAt: new Date(Date.now() + 3600_000).toISOString() });
      expect(sent.status).toBe(202);
      expect((await runtime.http.delete(`/v1/messages/${sent.body.id}`).set(auth)).status).toBe(200);
      const adj = await runtime.http
        .post(`/v1/admin/tenants/${c.tenantId}/adjustments`)
        .set(bearer(runtime.adminToken))
        .send({ amount: -300, reason: 'runtime role check' });
      expect(adj.status).toBe(201);
      expect((await runtime.http.get('/v1/balance').set(auth)).body.balance).toBe(4700);
      expect((await runtime.http.get('/v1/ledger').set(auth)).body.data).toHaveLength(4);

      const client = new Client({ connectionString: url.toString() });
      await client.connect();
      try {
        const refused = async (sql: string) => {
          try {
            await client.query(sql);
            return 'allowed';
          } catch (e) {
            return (e as { code: string }).code;
          }
        };
        // 42501 = insufficient_privilege: refused by the grants, before the append-only trigger.
        expect(await refused(`UPDATE ledger_entries SET amount = amount WHERE false`)).toBe('42501');
        expect(await refused(`DELETE FROM ledger_entries WHERE false`)).toBe('42501');
        expect(await refused(`TRUNCATE ledger_entries`)).toBe('42501');
        expect(await refused(`ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_no_update`)).toBe('42501');
        expect(await refused(`SELECT count(*) FROM ledger_entries`)).toBe('allowed');
      } finally {
        await client.end();
      }
    });
  });
});

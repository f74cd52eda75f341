import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { Client } from 'pg';
import { startSandbox, SandboxHandle } from '../../src/sandbox';
import {
  bearer,
  createTenant,
  startTestApp,
  TestApp,
  TEST_DATABASE_URL,
  uuidOf,
  reachableCallbackUrl,
} from '../support/app';
import { ensureBuilt, ROOT } from '../support/processes';
import { waitFor as waitForCondition } from '../support/wait';

interface Problem {
  code: string;
  tenantId: string;
  messageId?: string;
  ledgerEntryId?: string;
  detail: string;
}

const CLI = join(ROOT, 'dist', 'src', 'billing', 'ledger-verify.cli.js');

/** Runs `npm run ledger:verify`'s script against a database; resolves with its exit code and output. */
function runCli(databaseUrl: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      [CLI],
      { cwd: ROOT, env: { ...process.env, DATABASE_URL: databaseUrl }, timeout: 60_000 },
      (err, stdout, stderr) =>
        resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    ),
  );
}

/** The one `waitFor` (test/support/wait.ts): it throws on timeout (this copy used to return the last value silently). */
const waitFor = <T>(fn: () => Promise<T>, ok: (v: T) => boolean, ms = 20_000): Promise<T> =>
  waitForCondition('the condition', fn, ok, ms);

/** Issue 10 "proof of the books": GET /v1/admin/ledger/verify and `npm run ledger:verify` share one service. */
describe('ledger verification', () => {
  beforeAll(async () => {
    await ensureBuilt(); // the CLI runs from dist
  }, 300_000);

  describe('after real races on the shared test database', () => {
    let t: TestApp;
    let sandbox: SandboxHandle;

    beforeAll(async () => {
      sandbox = await startSandbox({ knobs: { dlrDelayMs: [5, 30], latencyMs: [0, 5], duplicateDlrRate: 0.3 } });
      t = await startTestApp({ DISPATCH_POLL_MS: '50', PROVIDER_SEND_RATE_PER_SECOND: '0' });
      const port = (t.app.getHttpServer().address() as { port: number } | null)?.port;
      if (!port) await t.app.listen(0, '127.0.0.1');
    });
    afterAll(async () => {
      await t.close();
      await sandbox.close();
    });

    async function tenantOnSandbox(balance: number) {
      const tenant = await createTenant(t, { balance, pricePerSegment: 100, baseUrl: sandbox.url });
      const port = (t.app.getHttpServer().address() as { port: number }).port;
      sandbox.addAccount({
        username: tenant.providerAccount.username,
        password: 'provider-secret-pw',
        balance: '100000000',
        callbackUrl: reachableCallbackUrl(tenant.providerAccount.dlrCallbackUrl, port),
      });
      await t.http
        .patch(`/v1/admin/tenants/${tenant.tenantId}`)
        .set(bearer(t.adminToken))
        .send({ rateLimitPerSecond: 1000 });
      return { ...tenant, auth: bearer(tenant.apiKey) };
    }

    it('sends, provider failures (duplicate DLRs), cancels, top-ups and overdrawing adjustments at once: the books verify, during and after', async () => {
      const admin = bearer(t.adminToken);
      const a = await tenantOnSandbox(3000);
      const b = await tenantOnSandbox(2000);
      const later = new Date(Date.now() + 3600_000).toISOString();
      const scheduled: string[] = [];
      for (let i = 0; i < 8; i++) {
        const r = await t.http
          .post('/v1/messages')
          .set(b.auth)
          .send({ to: '081234567890', text: `s${i}`, sendAt: later });
        expect(r.status).toBe(202);
        scheduled.push(r.body.id);
      }
      t.clock.advance(1100); // past the tenant settings cache (rate limit): 1 s of the app's Clock

      const verifyDuring: Promise<{ ok: boolean; problems: Problem[] }>[] = [];
      const ops: Promise<unknown>[] = [
        // 40 sends on A (every other one to a number the provider fails with 52: refunded), more than the balance
        ...Array.from({ length: 40 }, (_, i) =>
          t.http
            .post('/v1/messages')
            .set(a.auth)
            .send({ to: i % 2 ? '6289912345678' : '081234567890', text: `race ${i}` }),
        ),
        ...Array.from({ length: 6 }, (_, i) =>
          t.http
            .post(`/v1/admin/tenants/${a.tenantId}/topups`)
            .set(admin)
            .send({ amount: 300 + i }),
        ),
        ...Array.from({ length: 10 }, (_, i) =>
          t.http
            .post(`/v1/admin/tenants/${(i % 2 ? a : b).tenantId}/adjustments`)
            .set(admin)
            .send({ amount: i % 3 ? -700 : 50, reason: `race ${i}` }),
        ),
        ...Array.from({ length: 4 }, () =>
          t.http.post(`/v1/admin/tenants/${b.tenantId}/topups`).set(admin).send({ amount: 100 }),
        ),
        // B's cancels one after another (each refunds), racing the top-ups and adjustments above
        (async () => {
          for (const id of scheduled.slice(0, 6))
            expect((await t.http.delete(`/v1/messages/${id}`).set(b.auth)).status).toBe(200);
        })(),
      ];
      for (let i = 0; i < 5; i++) {
        verifyDuring.push(
          new Promise((r) => setTimeout(r, i * 150)).then(() =>
            t.http
              .get('/v1/admin/ledger/verify')
              .set(admin)
              .then((res) => res.body),
          ),
        );
      }
      const results = (await Promise.all(ops)) as { status?: number }[];
      const statuses = results.filter((r) => r && typeof r.status === 'number').map((r) => r.status);
      expect(statuses.filter((s) => ![201, 202, 402].includes(s!))).toEqual([]);
      expect(statuses.filter((s) => s === 402).length).toBeGreaterThan(0); // some sends/adjustments overdrew

      // Every snapshot taken during the race was consistent.
      for (const v of await Promise.all(verifyDuring)) expect(v).toMatchObject({ ok: true, problems: [] });

      // Wait until A's messages are final, then check again: every failure refunded exactly once.
      await waitFor(
        () =>
          t.db.query(
            `SELECT count(*)::int AS n FROM messages WHERE tenant_id = $1 AND status NOT IN ('delivered', 'failed')`,
            [uuidOf(a.tenantId)],
          ),
        (r: { n: number }[]) => r[0].n === 0,
      );
      const [refunds] = await t.db.query(
        `SELECT count(*) FILTER (WHERE m.status = 'failed')::int AS failed,
                (SELECT count(*)::int FROM ledger_entries e WHERE e.tenant_id = $1 AND e.kind = 'refund') AS refunds
           FROM messages m WHERE m.tenant_id = $1`,
        [uuidOf(a.tenantId)],
      );
      expect(refunds.failed).toBeGreaterThan(0);
      expect(refunds.refunds).toBe(refunds.failed);
      const after = await t.http.get('/v1/admin/ledger/verify').set(admin);
      expect(after.status).toBe(200);
      expect(after.body).toMatchObject({ ok: true, problems: [] });
      expect(after.body.entries).toBeGreaterThan(60);

      const cli = await runCli(TEST_DATABASE_URL);
      expect({ code: cli.code, out: cli.stdout.trim().split('\n').pop() }).toEqual({
        code: 0,
        out: expect.stringMatching(/^ledger:verify: ok \(\d+ tenants, \d+ ledger entries\)$/),
      });

      // Nothing left scheduled in the shared test database. B's last two scheduled messages, left here, were
      // sent by the next suite's app with its clock moved to 2031 (due then), failed at this file's closed
      // sandbox and refunded after that suite reset its clock, while a sweep at 2031 had already forfeited B's
      // period: the refund (a young message, at today's clock) was credited to the forfeited period, and every
      // later whole-database books check failed (balance_after_expiry, 200). Seen once in a clean-clone run.
      for (const id of scheduled.slice(6))
        expect((await t.http.delete(`/v1/messages/${id}`).set(b.auth)).status).toBe(200);
    });
  });

  describe('on a deliberately broken copy of the books', () => {
    const url = new URL(TEST_DATABASE_URL);
    const scratchName = `${url.pathname.slice(1)}_verify_scratch`;
    const scratch = new URL(TEST_DATABASE_URL);
    scratch.pathname = `/${scratchName}`;
    const scratchUrl = scratch.toString();
    let t: TestApp;
    let sql: Client;

    async function adminSql(text: string) {
      const server = new URL(TEST_DATABASE_URL);
      server.pathname = '/postgres';
      const c = new Client({ connectionString: server.toString() });
      await c.connect();
      try {
        await c.query(text);
      } finally {
        await c.end();
      }
    }

    beforeAll(async () => {
      await adminSql(`DROP DATABASE IF EXISTS "${scratchName}" WITH (FORCE)`);
      await adminSql(`CREATE DATABASE "${scratchName}"`);
      t = await startTestApp({ DATABASE_URL: scratchUrl, DISPATCHER: 'false' });
      sql = new Client({ connectionString: scratchUrl });
      await sql.connect();
    });
    afterAll(async () => {
      await sql?.end();
      await t?.close();
      await adminSql(`DROP DATABASE IF EXISTS "${scratchName}" WITH (FORCE)`);
    });

    it('names each problem (API and CLI, exit code 1), and passes before the damage', async () => {
      const admin = bearer(t.adminToken);
      const later = new Date(Date.now() + 3600_000).toISOString();
      async function tenantWith(balance: number, scheduledMessages: number) {
        const tenant = await createTenant(t, { balance, pricePerSegment: 100 });
        const ids: string[] = [];
        for (let i = 0; i < scheduledMessages; i++) {
          const r = await t.http
            .post('/v1/messages')
            .set(bearer(tenant.apiKey))
            .send({ to: '081234567890', text: `m${i}`, sendAt: later });
          expect(r.status).toBe(202);
          ids.push(uuidOf(r.body.id));
        }
        return { ...tenant, uuid: uuidOf(tenant.tenantId), messages: ids, auth: bearer(tenant.apiKey) };
      }
      const cancel = async (tenant: { auth: Record<string, string> }, id: string) =>
        expect((await t.http.delete(`/v1/messages/msg_${id.replace(/-/g, '')}`).set(tenant.auth)).status).toBe(200);

      const clean = await tenantWith(1000, 2);
      await cancel(clean, clean.messages[0]);
      const balanceOff = await tenantWith(1000, 0);
      const chain = await tenantWith(1000, 0);
      for (const amount of [10, 20])
        expect(
          (
            await t.http
              .post(`/v1/admin/tenants/${chain.tenantId}/adjustments`)
              .set(admin)
              .send({ amount, reason: 'x' })
          ).status,
        ).toBe(201);
      const refundLost = await tenantWith(1000, 1);
      await cancel(refundLost, refundLost.messages[0]);
      const refundExtra = await tenantWith(1000, 1);
      const refundTwice = await tenantWith(1000, 1);
      await cancel(refundTwice, refundTwice.messages[0]);
      const debitWrong = await tenantWith(1000, 1);
      const negative = await tenantWith(1000, 0);
      const debitMissing = await tenantWith(1000, 1);

      // Before the damage: the books are right, and the CLI says so with exit code 0.
      const before = await t.http.get('/v1/admin/ledger/verify').set(admin);
      expect(before.status).toBe(200);
      expect(before.body).toMatchObject({ ok: true, problems: [] });
      const cliBefore = await runCli(scratchUrl);
      expect(cliBefore.code).toBe(0);

      // The damage, in the scratch database only: append-only trigger and the schema's guards disabled.
      const q = (text: string, params: unknown[] = []) => sql.query(text, params);
      await q(`ALTER TABLE ledger_entries DISABLE TRIGGER USER`);
      await q(`DROP INDEX ledger_one_refund_per_message_uq`);
      const [check] = (
        await q(
          `SELECT conname FROM pg_constraint WHERE conrelid = 'tenants'::regclass AND pg_get_constraintdef(oid) LIKE '%balance >= 0%'`,
        )
      ).rows;
      await q(`ALTER TABLE tenants DROP CONSTRAINT "${check.conname}"`);
      /** Appends a ledger row that continues the tenant's chain, and moves the balance with it. */
      const append = async (tenantId: string, kind: string, amount: number, messageId: string | null) => {
        await q(
          `INSERT INTO ledger_entries (id, tenant_id, kind, amount, balance_after, message_id, created_at)
           SELECT gen_random_uuid(), $1, $2, $3, balance + $3, $4, now() FROM tenants WHERE id = $1`,
          [tenantId, kind, amount, messageId],
        );
        await q(`UPDATE tenants SET balance = balance + $2 WHERE id = $1`, [tenantId, amount]);
      };
      // 1. a balance that the ledger does not explain
      await q(`UPDATE tenants SET balance = balance + 7 WHERE id = $1`, [balanceOff.uuid]);
      // 2. a rewritten balance_after in the middle of a chain (sum and balance untouched)
      await q(
        `UPDATE ledger_entries SET balance_after = balance_after + 1
          WHERE seq = (SELECT seq FROM ledger_entries WHERE tenant_id = $1 ORDER BY seq OFFSET 1 LIMIT 1)`,
        [chain.uuid],
      );
      // 3. a canceled message's refund deleted (the balance put back so only the refund is missing)
      await q(`DELETE FROM ledger_entries WHERE kind = 'refund' AND message_id = $1`, [refundLost.messages[0]]);
      await q(`UPDATE tenants SET balance = balance - 100 WHERE id = $1`, [refundLost.uuid]);
      // 4. a refund for a message that is still scheduled
      await append(refundExtra.uuid, 'refund', 100, refundExtra.messages[0]);
      // 5. a second refund for a canceled message
      await append(refundTwice.uuid, 'refund', 100, refundTwice.messages[0]);
      // 6. a message whose price no longer matches its debit
      await q(`UPDATE messages SET price = 150 WHERE id = $1`, [debitWrong.messages[0]]);
      // 7. a negative balance
      await q(`UPDATE tenants SET balance = -5 WHERE id = $1`, [negative.uuid]);
      // 8. a delivered message that was never charged
      await q(
        `INSERT INTO messages (id, tenant_id, provider_account_id, msisdn, text, status, segments, encoding, price, created_at)
         SELECT gen_random_uuid(), tenant_id, provider_account_id, msisdn, 'free ride', 'delivered', 1, 'GSM-7', 100, now()
           FROM messages WHERE id = $1`,
        [debitMissing.messages[0]],
      );

      const expected: Record<string, string[]> = {
        [balanceOff.tenantId]: ['balance_mismatch'],
        [chain.tenantId]: ['chain_broken', 'chain_broken'],
        [refundLost.tenantId]: ['missing_refund', 'refund_flag_mismatch'],
        [refundExtra.tenantId]: ['refund_flag_mismatch', 'unexpected_refund'],
        [refundTwice.tenantId]: ['duplicate_refund'],
        [debitWrong.tenantId]: ['wrong_debit'],
        [negative.tenantId]: ['balance_mismatch', 'negative_balance'],
        [debitMissing.tenantId]: ['missing_debit'],
      };
      const res = await t.http.get('/v1/admin/ledger/verify').set(admin);
      expect(res.status).toBe(200);
      expect(res.body.ok).toBe(false);
      const byTenant: Record<string, string[]> = {};
      for (const p of res.body.problems as Problem[]) (byTenant[p.tenantId] ??= []).push(p.code);
      for (const codes of Object.values(byTenant)) codes.sort();
      expect(byTenant).toEqual(expected);
      expect(byTenant[clean.tenantId]).toBeUndefined();
      // Problems name the message or ledger entry they are about.
      const lost = (res.body.problems as Problem[]).find((p) => p.code === 'missing_refund')!;
      expect(lost).toMatchObject({ messageId: `msg_${refundLost.messages[0].replace(/-/g, '')}` });
      expect(lost.detail).toBe('canceled message (price 100) was not refunded');
      const mismatch = (res.body.problems as Problem[]).find(
        (p) => p.code === 'balance_mismatch' && p.tenantId === balanceOff.tenantId,
      )!;
      expect(mismatch.detail).toBe('balance 1007 but the ledger sums to 1000');
      for (const p of (res.body.problems as Problem[]).filter((x) => x.code === 'chain_broken'))
        expect(p.ledgerEntryId).toMatch(/^led_[0-9a-f]{32}$/);

      // The CLI: the same problems, one line each, exit code 1.
      const cli = await runCli(scratchUrl);
      expect(cli.code).toBe(1);
      const lines = cli.stdout.trim().split('\n');
      expect(lines.pop()).toMatch(/^ledger:verify: 12 problem\(s\)/);
      expect(lines).toHaveLength(12);
      for (const [tenantId, codes] of Object.entries(expected))
        for (const code of new Set(codes)) expect(lines.some((l) => l.startsWith(`${code} ${tenantId}`))).toBe(true);
    });

    it('names a tenant holding money in a period whose expiry row exists (balance_after_expiry, the wedged tenant); one forfeited normally stays clean', async () => {
      const admin = bearer(t.adminToken);
      const wedged = await createTenant(t, { balance: 1000, pricePerSegment: 100 });
      const healthy = await createTenant(t, { balance: 1000, pricePerSegment: 100 });
      const mine = [wedged.tenantId, healthy.tenantId];
      // Both periods end: past graceUntil a read forfeits the balance (the period's expiry row, message_id NULL).
      const { rows } = await sql.query(`SELECT max(grace_until) AS g FROM tenants WHERE id = ANY($1::uuid[])`, [
        mine.map(uuidOf),
      ]);
      t.clock.set(new Date((rows[0].g as Date).getTime() + 1000));
      try {
        for (const x of [wedged, healthy]) {
          const b = await t.http.get('/v1/balance').set(bearer(x.apiKey));
          expect(b.body).toMatchObject({ balance: 0, state: 'expired' });
        }
      } finally {
        t.clock.reset();
      }
      const verify = async () => {
        const res = await t.http.get('/v1/admin/ledger/verify').set(admin);
        expect(res.status).toBe(200);
        return (res.body.problems as Problem[]).filter((p) => mine.includes(p.tenantId));
      };
      expect(await verify()).toEqual([]);

      // What the adjustment race fixed in 3d58d29 could leave behind: credit booked after the period's
      // forfeiture, graceUntil unchanged (ledger chain and balance consistent; the period cannot be forfeited again).
      const uuid = uuidOf(wedged.tenantId);
      await sql.query(
        `INSERT INTO ledger_entries (id, tenant_id, kind, amount, balance_after, reference, created_at)
         SELECT gen_random_uuid(), id, 'adjustment', 500, balance + 500, 'goodwill', now() FROM tenants WHERE id = $1`,
        [uuid],
      );
      await sql.query(`UPDATE tenants SET balance = balance + 500 WHERE id = $1`, [uuid]);
      const [{ id: expiryId }] = (
        await sql.query(
          `SELECT e.id FROM ledger_entries e JOIN tenants t ON t.id = e.tenant_id
            WHERE e.tenant_id = $1 AND e.kind = 'expiry' AND e.message_id IS NULL AND e.grace_until = t.grace_until`,
          [uuid],
        )
      ).rows;

      const found = await verify();
      expect(found).toEqual([
        {
          code: 'balance_after_expiry',
          tenantId: wedged.tenantId,
          ledgerEntryId: `led_${(expiryId as string).replace(/-/g, '')}`,
          detail: expect.stringMatching(
            /^balance 500 in the period ending \d{4}-\d\d-\d\dT[\d:.]+Z, already forfeited/,
          ),
        },
      ]);
      const cli = await runCli(scratchUrl);
      expect(cli.code).toBe(1);
      const lines = cli.stdout.trim().split('\n');
      expect(lines.filter((l) => mine.some((id) => l.includes(id)))).toEqual([
        expect.stringMatching(new RegExp(`^balance_after_expiry ${wedged.tenantId} led_[0-9a-f]{32}: balance 500 `)),
      ]);
    });
  });
});

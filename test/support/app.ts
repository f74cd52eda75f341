import { DateTime } from 'luxon';
import { INestApplication } from '@nestjs/common';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import request from 'supertest';
import { DataSource } from 'typeorm';
import { createApp } from '../../src/app.factory';
import { Clock } from '../../src/common/clock';
import { loadConfig } from '../../src/config/config';
import { sqlState } from '../../src/database/transaction';
import type { SandboxHandle } from '../../src/sandbox';

export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/gerbang_test';
export const ADMIN_EMAIL = 'root@test.local';
export const ADMIN_PASSWORD = 'root-password-123';

export interface TestApp {
  app: INestApplication;
  http: ReturnType<typeof request>;
  clock: Clock;
  db: DataSource;
  adminToken: string;
  close(): Promise<void>;
}

/** Boots the real app (real migrations, real PostgreSQL) on an ephemeral port. */
export async function startTestApp(env: Record<string, string> = {}): Promise<TestApp> {
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: TEST_DATABASE_URL,
    DATA_DIR: mkdtempSync(join(tmpdir(), 'gerbang-test-')),
    SANDBOX: 'false',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    ADMIN_EMAIL,
    ADMIN_PASSWORD,
    DB_POOL_SIZE: '20',
    ...env,
  });
  const clock = new Clock();
  const app = await createApp({ ...config, databaseUrl: config.databaseUrl! }, { clock });
  await app.init();
  await app.getHttpAdapter().getInstance().ready(); // Fastify serves routes once ready (supertest listens itself)
  const db = app.get(DataSource);
  const { AuthService } = await import('../../src/auth/auth.service');
  await app.get(AuthService).bootstrapAdmin(ADMIN_EMAIL, ADMIN_PASSWORD);
  const http = request(app.getHttpServer());
  const login = await http.post('/v1/auth/login').send({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD });
  if (login.status !== 200) throw new Error(`admin login failed: ${login.status} ${JSON.stringify(login.body)}`);
  return { app, http, clock, db, adminToken: login.body.accessToken, close: () => app.close() };
}

/**
 * A provider account's DLR callback URL (advertised on PUBLIC_BASE_URL, `http://localhost:<port>`) as the
 * sandbox in this process reaches the app listening on `port`.
 */
export function reachableCallbackUrl(dlrCallbackUrl: string, port: number): string {
  return dlrCallbackUrl.replace(/^http:\/\/localhost:\d+/, `http://127.0.0.1:${port}`);
}

let seq = 0;
export const unique = (p: string) => `${p}-${process.pid}-${Date.now().toString(36)}-${++seq}`;

/** Creates a provider account and a tenant with `balance` topped up and one API key. */
export async function createTenant(
  t: TestApp,
  opts: { balance?: number; pricePerSegment?: number; baseUrl?: string } = {},
) {
  const auth = { Authorization: `Bearer ${t.adminToken}` };
  const pac = await t.http
    .post('/v1/admin/provider-accounts')
    .set(auth)
    .send({
      name: unique('pac'),
      baseUrl: opts.baseUrl ?? 'http://127.0.0.1:9/masking',
      username: unique('u'),
      password: 'provider-secret-pw',
    });
  if (pac.status !== 201) throw new Error(`provider account: ${pac.status} ${JSON.stringify(pac.body)}`);
  const ten = await t.http
    .post('/v1/admin/tenants')
    .set(auth)
    .send({ name: unique('tenant'), providerAccountId: pac.body.id, pricePerSegment: opts.pricePerSegment ?? 100 });
  if (ten.status !== 201) throw new Error(`tenant: ${ten.status} ${JSON.stringify(ten.body)}`);
  if (opts.balance) {
    const top = await t.http.post(`/v1/admin/tenants/${ten.body.id}/topups`).set(auth).send({ amount: opts.balance });
    if (top.status !== 201) throw new Error(`topup: ${top.status} ${JSON.stringify(top.body)}`);
  }
  const key = await t.http.post(`/v1/admin/tenants/${ten.body.id}/api-keys`).set(auth).send({ name: 'test' });
  if (key.status !== 201) throw new Error(`key: ${key.status} ${JSON.stringify(key.body)}`);
  return {
    tenantId: ten.body.id as string,
    providerAccountId: pac.body.id as string,
    providerAccount: pac.body,
    apiKey: key.body.key as string,
    keyId: key.body.id as string,
  };
}

/**
 * `createTenant` on a sandbox provider account of its own (`providerBalance` at the sandbox), the sandbox
 * calling back to this listening app unless `callbacks` is false (the test then calls back itself).
 */
export async function createTenantOnSandbox(
  t: TestApp,
  sandbox: SandboxHandle,
  opts: { balance?: number; pricePerSegment?: number; providerBalance?: string; callbacks?: boolean } = {},
) {
  const tenant = await createTenant(t, {
    balance: opts.balance ?? 100_000,
    pricePerSegment: opts.pricePerSegment ?? 100,
    baseUrl: sandbox.url,
  });
  const port = (t.app.getHttpServer().address() as { port: number }).port;
  sandbox.addAccount({
    username: tenant.providerAccount.username,
    password: 'provider-secret-pw',
    balance: opts.providerBalance ?? '1000000',
    callbackUrl:
      opts.callbacks === false ? undefined : reachableCallbackUrl(tenant.providerAccount.dlrCallbackUrl, port),
  });
  return tenant;
}

// ---- helpers shared by the e2e and integration suites ------------------------------------

/** `Authorization: Bearer <token>` for an admin JWT or a tenant API key. */
export const bearer = (token: string) => ({ Authorization: `Bearer ${token}` });

/** Creates an admin user with `role` through the API and logs in as it. */
export async function createAdminUser(t: TestApp, role: 'admin' | 'billing') {
  const email = `${unique(role)}@test.local`.toLowerCase();
  const password = 'a-long-password-123';
  const created = await t.http.post('/v1/admin/users').set(bearer(t.adminToken)).send({ email, password, role });
  if (created.status !== 201) throw new Error(`user: ${created.status} ${JSON.stringify(created.body)}`);
  const login = await t.http.post('/v1/auth/login').send({ email, password });
  if (login.status !== 200) throw new Error(`login: ${login.status} ${JSON.stringify(login.body)}`);
  return { id: created.body.id as string, email, password, token: login.body.accessToken as string };
}

/** Asserts an RFC 9457 problem+json response with a stable `code`. */
export function expectProblem(
  res: { status: number; headers: Record<string, string>; body: Record<string, unknown> },
  status: number,
  code: string,
) {
  const summary = `${res.status} ${JSON.stringify(res.body)}`;
  expect({ status: res.status, code: res.body.code, summary }).toEqual({ status, code, summary });
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/);
  expect(res.body).toMatchObject({ type: expect.any(String), title: expect.any(String), status, code });
  expect(typeof res.body.detail).toBe('string');
  expect(JSON.stringify(res.body)).not.toMatch(/\bat .+\.(ts|js):\d+/);
  expect(res.body).not.toHaveProperty('stack');
}

/** Row count of a table, optionally for one tenant (by its public `ten_…` id). */
export async function countRows(t: TestApp, table: string, tenantPublicId?: string): Promise<number> {
  if (!/^[a-z_]+$/.test(table)) throw new Error(`bad table name ${table}`);
  if (tenantPublicId === undefined) return Number((await t.db.query(`SELECT count(*)::int AS n FROM ${table}`))[0].n);
  const col = table === 'tenants' ? 'id' : 'tenant_id';
  const rows = await t.db.query(`SELECT count(*)::int AS n FROM ${table} WHERE ${col} = $1`, [uuidOf(tenantPublicId)]);
  return Number(rows[0].n);
}

/** The uuid behind a public id (`ten_<32 hex>` → uuid), for SQL assertions. */
export function uuidOf(publicId: string): string {
  const hex = publicId.slice(publicId.indexOf('_') + 1);
  if (!/^[0-9a-f]{32}$/.test(hex)) throw new Error(`not a public id: ${publicId}`);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** `YYYY-MM-DD` of `date` in Asia/Jakarta: the calendar every report, usage and validity rule uses. */
export function jakartaDay(date: Date): string {
  return DateTime.fromJSDate(date, { zone: 'Asia/Jakarta' }).toISODate()!;
}

/**
 * DDL on a table the running app writes (a test's fault trigger). On a partitioned table (`messages`,
 * `message_events`, `delivery_reports`) it locks the parent and every partition, so it can deadlock with
 * the app's own statements still running from the test before (40P01): tried again, up to 5 times.
 */
export async function ddl(t: TestApp, sql: string): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      await t.db.query(sql);
      return;
    } catch (e) {
      const code = sqlState(e);
      if (i >= 5 || (code !== '40P01' && code !== '55P03')) throw e;
      await new Promise((resolve) => setTimeout(resolve, 50 * i));
    }
  }
}

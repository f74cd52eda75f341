/** What the benchmark drivers (bench/run.ts, bench/usage-csv.ts) share: database, processes, memory. */
import { execSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Client } from 'pg';

export const ROOT = process.cwd();
export const ADMIN = { email: 'bench@gerbang.local', password: 'bench-password-123' };

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Drops and creates the database of `url`; returns the server's synchronous_commit setting. */
export async function recreateDb(url: string): Promise<string> {
  const admin = new URL(url);
  const name = admin.pathname.slice(1);
  admin.pathname = '/postgres';
  const c = new Client({ connectionString: admin.toString() });
  await c.connect();
  try {
    await c.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await c.query(`CREATE DATABASE "${name}"`);
    const sc = await c.query<{ synchronous_commit: string }>(`SHOW synchronous_commit`);
    return sc.rows[0].synchronous_commit;
  } finally {
    await c.end();
  }
}

/** Resolves once `url` answers 2xx. */
export async function waitHttp(url: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${url} did not come up`);
}

/** Resident memory of one process, in MB (0 once it is gone). */
export function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

/** The short commit the numbers belong to. */
export function gitCommit(): string {
  try {
    return execSync('git rev-parse --short HEAD', { cwd: ROOT }).toString().trim();
  } catch {
    return 'unknown';
  }
}

/** The environment every benchmark gateway starts with (production mode, own database, quiet logs). */
export function baseGatewayEnv(databaseUrl: string, port: number): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    HOST: '127.0.0.1',
    SANDBOX: 'false',
    NODE_ENV: 'production',
    JWT_SECRET: 'bench-jwt-secret-bench-jwt-secret-0123456789',
    ENCRYPTION_KEY: Buffer.alloc(32, 7).toString('base64'),
    ADMIN_EMAIL: ADMIN.email,
    ADMIN_PASSWORD: ADMIN.password,
    LOG_LEVEL: 'warn',
  };
}

/** A JSON client of the gateway's API on `port` (admin JWT or tenant key as `token`); throws on a non-2xx answer. */
export function gatewayApi(port: number) {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  return async function api(path: string, init: RequestInit & { token?: string } = {}): Promise<any> {
    const headers: Record<string, string> = { 'Content-Type': 'application/json' };
    if (init.token) headers.Authorization = `Bearer ${init.token}`;
    const r = await fetch(`http://127.0.0.1:${port}${path}`, { ...init, headers });
    const body = await r.json();
    if (!r.ok) throw new Error(`${path}: ${r.status} ${JSON.stringify(body)}`);
    return body;
  };
}

/**
 * A gateway rig for the outage and chaos tests: a private PostgreSQL server (stopped and started by the
 * test), the sandbox provider in this process, and `node dist/src/main.js` children on one fixed port
 * (so the provider's callback URL survives a restart). Everything is driven over HTTP; assertions read
 * the database with a plain pg pool.
 */
import { randomBytes } from 'node:crypto';
import { Pool } from 'pg';
import { SandboxHandle, SandboxKnobs, startSandbox } from '../../src/sandbox';
import { closedPort, GatewayProcess, newEncryptionKey, snapshotDist } from './processes';
import { ThrowawayPostgres } from './throwaway-pg';

export const RIG_ADMIN = { email: 'chaos@test.local', password: 'chaos-password-123' };
const PROVIDER_PASSWORD = 'provider-secret-pw';

export interface HttpResult {
  status: number; // 0: no answer (connection refused/reset, timeout)
  headers: Headers | null;
  body: Record<string, unknown> | null;
  error?: string;
}

export class Rig {
  readonly gateways: GatewayProcess[] = [];
  private readonly encryptionKey = newEncryptionKey();
  private readonly jwtSecret = randomBytes(48).toString('base64url');
  private adminToken = '';
  port = 0;

  private constructor(
    readonly pg: ThrowawayPostgres,
    readonly sandbox: SandboxHandle,
    readonly db: Pool,
    private readonly build: { main: string; remove: () => void },
  ) {}

  static async create(knobs: Partial<SandboxKnobs> = {}): Promise<Rig> {
    const build = await snapshotDist();
    const pg = await ThrowawayPostgres.create();
    const sandbox = await startSandbox({ knobs: { dlrDelayMs: [5, 50], ...knobs }, seed: 7 });
    const db = new Pool({ connectionString: pg.url(), max: 3, connectionTimeoutMillis: 2000 });
    db.on('error', () => undefined); // idle clients die with the server: the rig reconnects on the next query
    const rig = new Rig(pg, sandbox, db, build);
    rig.port = await closedPort();
    return rig;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts a gateway on the rig's port and waits until it is ready. */
  async startGateway(name: string, extra: Record<string, string> = {}): Promise<GatewayProcess> {
    const gw = new GatewayProcess(
      name,
      {
        DATABASE_URL: this.pg.url(),
        SANDBOX: 'false',
        PORT: String(this.port),
        HOST: '127.0.0.1',
        PUBLIC_BASE_URL: this.url,
        NODE_ENV: 'production',
        JWT_SECRET: this.jwtSecret,
        ENCRYPTION_KEY: this.encryptionKey,
        ADMIN_EMAIL: RIG_ADMIN.email,
        ADMIN_PASSWORD: RIG_ADMIN.password,
        DISPATCHER: 'true',
        DISPATCH_POLL_MS: '50',
        PROVIDER_SEND_RATE_PER_SECOND: '0',
        LOG_LEVEL: 'warn',
        DB_POOL_SIZE: '10',
        ...extra,
      },
      this.build.main,
    );
    this.gateways.push(gw);
    await gw.ready(60_000);
    return gw;
  }

  async http(method: string, path: string, body?: unknown, auth?: string, timeoutMs = 15_000): Promise<HttpResult> {
    try {
      const res = await fetch(`${this.url}${path}`, {
        method,
        headers: {
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...(auth ? { authorization: `Bearer ${auth}` } : {}),
        },
        body: body !== undefined ? JSON.stringify(body) : undefined,
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      let parsed: Record<string, unknown> | null = null;
      try {
        parsed = text ? (JSON.parse(text) as Record<string, unknown>) : null;
      } catch {
        parsed = { text };
      }
      return { status: res.status, headers: res.headers, body: parsed };
    } catch (e) {
      return { status: 0, headers: null, body: null, error: (e as Error).message };
    }
  }

  private async must(method: string, path: string, body: unknown, expect: number, auth = this.adminToken) {
    const r = await this.http(method, path, body, auth);
    if (r.status !== expect)
      throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)} ${r.error ?? ''}`);
    return r.body as Record<string, unknown> & { id: string };
  }

  /** A provider account on the sandbox (reporting to this rig's port) and a tenant with a key. */
  async tenant(name: string, balance: number, price: number) {
    const login = await this.must('POST', '/v1/auth/login', RIG_ADMIN, 200, '');
    this.adminToken = login.accessToken as string;
    const username = `${name}-user`;
    const pac = await this.must(
      'POST',
      '/v1/admin/provider-accounts',
      { name: `${name}-pac`, baseUrl: this.sandbox.url, username, password: PROVIDER_PASSWORD },
      201,
    );
    this.sandbox.addAccount({
      username,
      password: PROVIDER_PASSWORD,
      balance: '1000000000',
      callbackUrl: pac.dlrCallbackUrl as string,
    });
    const ten = await this.must(
      'POST',
      '/v1/admin/tenants',
      { name, providerAccountId: pac.id, pricePerSegment: price, rateLimitPerSecond: 10_000 },
      201,
    );
    await this.must('POST', `/v1/admin/tenants/${ten.id}/topups`, { amount: balance }, 201);
    const key = await this.must('POST', `/v1/admin/tenants/${ten.id}/api-keys`, { name: 'rig' }, 201);
    return { tenantId: ten.id, uuid: uuid(ten.id), username, apiKey: key.key as string };
  }

  /** Reads with retries: the rig's own pool sees the outage too. */
  async query<T = Record<string, unknown>>(sql: string, params: unknown[] = []): Promise<T[]> {
    for (let attempt = 0; ; attempt++) {
      try {
        return (await this.db.query(sql, params)).rows as T[];
      } catch (e) {
        if (attempt >= 20) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  async close(): Promise<void> {
    for (const gw of this.gateways) if (gw.alive) await gw.stop('SIGKILL', 5_000).catch(() => undefined);
    await this.db.end().catch(() => undefined);
    await this.sandbox.close();
    await this.pg.destroy();
    this.build.remove();
  }
}

export function uuid(publicId: string): string {
  const hex = publicId.slice(publicId.indexOf('_') + 1);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Per tenant: balance, sum of the ledger. */
export async function books(rig: Rig): Promise<{ tenant_id: string; balance: string; ledger: string }[]> {
  return rig.query(
    `SELECT t.id AS tenant_id, t.balance::text AS balance,
            (SELECT coalesce(sum(amount), 0) FROM ledger_entries WHERE tenant_id = t.id)::text AS ledger
       FROM tenants t ORDER BY t.id`,
  );
}

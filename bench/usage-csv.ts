/**
 * `npm run bench` (second part): the memory of a usage CSV export over a large history (issue 10).
 *
 * A gateway on its own database (recreated), BENCH_USAGE_MESSAGES messages (default 1,000,000) and
 * their debits written straight into the tables over one Asia/Jakarta year and BENCH_USAGE_TENANTS
 * tenants (default 50), then `GET /v1/admin/usage?granularity=day` with `Accept: text/csv` for the
 * whole year, read to the end by this driver. The gateway's RSS is sampled every 100 ms before and
 * during the export: a streamed export keeps it flat whatever the history's size.
 *
 * Env: BENCH_USAGE_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/gerbang_bench_usage).
 * Prints a summary and writes bench/results/usage-csv-<time>.json.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { Client } from 'pg';
import { ADMIN, baseGatewayEnv, gitCommit, recreateDb, ROOT, rssMb, sleep, waitHttp } from './lib';

const DB_URL = process.env.BENCH_USAGE_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/gerbang_bench_usage';
const MESSAGES = Number(process.env.BENCH_USAGE_MESSAGES ?? 1_000_000);
const TENANTS = Number(process.env.BENCH_USAGE_TENANTS ?? 50);
const PORT = 3901;

function startGateway(): ChildProcess {
  const child = spawn(process.execPath, [join(ROOT, 'dist/src/main.js')], {
    env: {
      ...process.env,
      ...baseGatewayEnv(DB_URL, PORT),
      DISPATCHER: 'false',
      WEBHOOK_WORKER: 'false',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child.stderr?.on('data', (d: Buffer) => process.stderr.write(`[gateway] ${d.toString()}`));
  return child;
}

async function api<T>(path: string, body: unknown, token?: string): Promise<T> {
  const r = await fetch(`http://127.0.0.1:${PORT}${path}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  const json = (await r.json()) as T;
  if (!r.ok) throw new Error(`${path}: ${r.status} ${JSON.stringify(json)}`);
  return json;
}

/** Streams the CSV to the end; counts bytes and lines without keeping them. */
function download(path: string, token: string): Promise<{ bytes: number; lines: number; status: number }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port: PORT, path, headers: { Authorization: `Bearer ${token}`, Accept: 'text/csv' } },
      (res) => {
        let bytes = 0;
        let lines = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          for (const b of chunk) if (b === 10) lines++;
        });
        res.on('end', () => resolve({ bytes, lines, status: res.statusCode ?? 0 }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function run(): Promise<void> {
  const commit = gitCommit();
  await recreateDb(DB_URL);
  const gateway = startGateway();
  try {
    await waitHttp(`http://127.0.0.1:${PORT}/health/ready`, 60_000);
    const { accessToken } = await api<{ accessToken: string }>('/v1/auth/login', ADMIN);
    const pac = await api<{ id: string }>(
      '/v1/admin/provider-accounts',
      { name: 'bench', baseUrl: 'http://127.0.0.1:9/masking', username: 'bench', password: 'bench-pass' },
      accessToken,
    );
    const db = new Client({ connectionString: DB_URL });
    await db.connect();
    const pacUuid = pac.id.slice(4).replace(/(.{8})(.{4})(.{4})(.{4})(.{12})/, '$1-$2-$3-$4-$5');
    const t0 = Date.now();
    // Tenants, then per tenant its share of the messages spread over 2030 (Jakarta), each with its
    // debit, in one statement per tenant (the accept path is measured by the other benchmark).
    await db.query(
      `INSERT INTO tenants (id, name, provider_account_id, price_per_segment)
       SELECT gen_random_uuid(), 'bench ' || g, $1, 0 FROM generate_series(1, $2) g`,
      [pacUuid, TENANTS],
    );
    const tenants = (await db.query<{ id: string }>(`SELECT id FROM tenants ORDER BY name`)).rows;
    const perTenant = Math.ceil(MESSAGES / TENANTS);
    for (const t of tenants) {
      await db.query(
        `WITH m AS (
           INSERT INTO messages (id, tenant_id, provider_account_id, msisdn, text, status, segments, encoding, price, created_at)
           SELECT gen_random_uuid(), $1, $2, '6281234567890', 'bench', 'delivered', 1, 'GSM-7', 0,
                  timestamptz '2030-01-01 00:00+07' + (g * (365.0 * 86400 / $3)) * interval '1 second'
             FROM generate_series(0, $3 - 1) g
           RETURNING id, created_at)
         INSERT INTO ledger_entries (id, tenant_id, kind, amount, balance_after, message_id, created_at)
         SELECT gen_random_uuid(), $1, 'debit', 0, 0, m.id, m.created_at FROM m`,
        [t.id, pacUuid, perTenant],
      );
    }
    await db.query('ANALYZE');
    const loadSeconds = (Date.now() - t0) / 1000;
    const messages = Number((await db.query<{ n: string }>(`SELECT count(*) AS n FROM messages`)).rows[0].n);
    await db.end();

    await sleep(1000);
    const idleRss = rssMb(gateway.pid!);
    const rss: number[] = [];
    const sampler = setInterval(() => rss.push(rssMb(gateway.pid!)), 100);
    const started = Date.now();
    const res = await download('/v1/admin/usage?from=2030-01-01&to=2030-12-31&granularity=day', accessToken);
    const seconds = (Date.now() - started) / 1000;
    clearInterval(sampler);
    if (res.status !== 200) throw new Error(`usage export answered ${res.status}`);

    const result = {
      at: new Date().toISOString(),
      commit,
      messages,
      tenants: TENANTS,
      loadSeconds,
      export: {
        status: res.status,
        rows: res.lines - 1,
        bytes: res.bytes,
        seconds,
        gatewayRssMbIdle: Math.round(idleRss),
        gatewayRssMbMax: Math.round(Math.max(idleRss, ...rss)),
      },
    };
    console.log(JSON.stringify(result, null, 2));
    console.log(
      `\nusage CSV over ${messages} messages: ${result.export.rows} rows, ${(res.bytes / 1e6).toFixed(1)} MB in ` +
        `${seconds.toFixed(1)} s | gateway RSS ${result.export.gatewayRssMbIdle} MB idle, ${result.export.gatewayRssMbMax} MB max`,
    );
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(
      join(ROOT, 'bench/results', `usage-csv-${result.at.replace(/[:.]/g, '-')}.json`),
      JSON.stringify(result, null, 2),
    );
  } finally {
    gateway.kill('SIGTERM');
  }
}

run().catch((e) => {
  console.error(e);
  process.exit(1);
});

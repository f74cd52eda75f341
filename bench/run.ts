/**
 * `npm run bench`: the messaging benchmark of issue 4, on this machine, end to end over HTTP.
 *
 * Processes: the gateway (dist/src/main.js) on a real PostgreSQL with synchronous_commit=on,
 * the sandbox provider (dist/src/sandbox/main.js) answering at once, and this load driver
 * (autocannon). One tenant. Phases:
 *   1. single POST /v1/messages, 50 connections      → accepted/s, p50/p99
 *   2. POST /v1/messages/batch (1,000 items), 4 conns → messages accepted/s
 *   3. drain: restart the gateway with its dispatcher on, measure messages submitted/s: first half of
 *      the backlog without delivery reports (the dispatcher alone), the rest with one DLR callback per message
 * Phases 1-2 run with the dispatcher off so each number measures one thing. Gateway RSS is
 * sampled throughout. Prints a summary and writes bench/results/<time>.json.
 *
 * Env: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/gerbang_bench, recreated),
 * BENCH_SECONDS (default 15 per load phase), BENCH_WORKERS (gateway processes, default 1).
 * RSS is the sum over the gateway's processes.
 */
import autocannon from 'autocannon';
import { ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from 'pg';
import { ADMIN, baseGatewayEnv, gatewayApi, gitCommit, recreateDb, ROOT, rssMb, sleep, waitHttp } from './lib';

const DB_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/gerbang_bench';
const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
/** Gateway processes (WORKERS). 2 measured no faster here: the load driver and PostgreSQL use the second core. */
const WORKERS = Number(process.env.BENCH_WORKERS ?? 1);
const GW_PORT = 3900;
const SB_PORT = 9900;

function startProcess(script: string, env: Record<string, string>): ChildProcess {
  const child = spawn(process.execPath, [join(ROOT, script)], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', () => undefined);
  child.stderr.on('data', (d: Buffer) => process.stderr.write(`[${script}] ${d.toString()}`));
  return child;
}

/** RSS of a process and its children (the cluster supervisor and its workers), in MB. */
function treeRssMb(root: number): number {
  let total = rssMb(root);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === root) total += rssMb(Number(entry));
    } catch {
      /* gone */
    }
  }
  return total;
}

const api = gatewayApi(GW_PORT);

function gatewayEnv(dispatcher: boolean): Record<string, string> {
  return {
    ...baseGatewayEnv(DB_URL, GW_PORT),
    DISPATCHER: dispatcher ? 'true' : 'false',
    PROVIDER_SEND_RATE_PER_SECOND: '0',
    PROVIDER_MAX_IN_FLIGHT: '50',
    DB_POOL_SIZE: '20',
    WORKERS: String(WORKERS),
  };
}

async function run(): Promise<void> {
  const commit = gitCommit();
  if ((await recreateDb(DB_URL)) !== 'on') throw new Error('the benchmark needs synchronous_commit=on');
  const sandbox = startProcess('dist/src/sandbox/main.js', {
    SANDBOX_PORT: String(SB_PORT),
    SANDBOX_ACCOUNTS: 'bench:bench-pass:100000000000',
    SANDBOX_KNOBS: JSON.stringify({ latencyMs: [0, 0], dlrDelayMs: [0, 0] }),
    LOG_LEVEL: 'warn',
  });
  let gateway = startProcess('dist/src/main.js', gatewayEnv(false));
  const rss: number[] = [];
  const sampler = setInterval(() => gateway.pid && rss.push(treeRssMb(gateway.pid)), 250);
  try {
    await waitHttp(`http://127.0.0.1:${GW_PORT}/health/ready`);
    await waitHttp(`http://127.0.0.1:${SB_PORT}/_sandbox/knobs`);

    const { accessToken } = await api('/v1/auth/login', { method: 'POST', body: JSON.stringify(ADMIN) });
    const pac = await api('/v1/admin/provider-accounts', {
      method: 'POST',
      token: accessToken,
      body: JSON.stringify({
        name: 'bench',
        baseUrl: `http://127.0.0.1:${SB_PORT}/masking`,
        username: 'bench',
        password: 'bench-pass',
      }),
    });
    await fetch(`http://127.0.0.1:${SB_PORT}/_sandbox/accounts`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        username: 'bench',
        password: 'bench-pass',
        balance: '100000000000',
        callbackUrl: pac.dlrCallbackUrl.replace(/localhost:\d+/, `127.0.0.1:${GW_PORT}`),
      }),
    });
    const tenant = await api('/v1/admin/tenants', {
      method: 'POST',
      token: accessToken,
      body: JSON.stringify({
        name: 'bench tenant',
        providerAccountId: pac.id,
        pricePerSegment: 1,
        rateLimitPerSecond: 100000,
      }),
    });
    await api(`/v1/admin/tenants/${tenant.id}/topups`, {
      method: 'POST',
      token: accessToken,
      body: JSON.stringify({ amount: 1_000_000_000 }),
    });
    const { key } = await api(`/v1/admin/tenants/${tenant.id}/api-keys`, {
      method: 'POST',
      token: accessToken,
      body: JSON.stringify({ name: 'bench' }),
    });

    const auth = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };
    // Warm-up (JIT, pool, caches), not counted.
    await autocannon({
      url: `http://127.0.0.1:${GW_PORT}/v1/messages`,
      method: 'POST',
      headers: auth,
      connections: 50,
      duration: 3,
      body: JSON.stringify({ to: '081234567890', text: 'warm-up' }),
    });

    const single = await autocannon({
      url: `http://127.0.0.1:${GW_PORT}/v1/messages`,
      method: 'POST',
      headers: auth,
      connections: 50,
      duration: SECONDS,
      body: JSON.stringify({ to: '081234567890', text: 'Benchmark message: your OTP is 123456' }),
    });
    const singleAccepted = single['2xx'];
    const batchBody = JSON.stringify({
      messages: Array.from({ length: 1000 }, (_, i) => ({
        to: `0812345${String(i).padStart(5, '0')}`,
        text: `Batch message ${i}`,
      })),
    });
    const batch = await autocannon({
      url: `http://127.0.0.1:${GW_PORT}/v1/messages/batch`,
      method: 'POST',
      headers: auth,
      connections: 4,
      duration: SECONDS,
      body: batchBody,
    });
    const batchMessages = batch['2xx'] * 1000;

    // Drain: the same database, a gateway with its dispatcher on.
    const db = new Client({ connectionString: DB_URL });
    await db.connect();
    const backlog = Number((await db.query(`SELECT count(*) FROM messages WHERE status = 'queued'`)).rows[0].count);
    gateway.kill('SIGTERM');
    await new Promise((r) => gateway.once('exit', r));
    gateway = startProcess('dist/src/main.js', gatewayEnv(true));
    await waitHttp(`http://127.0.0.1:${GW_PORT}/health/ready`);
    // 3a: the first half with the sandbox sending no delivery reports: the dispatcher alone.
    // 3b: the rest with a delivery report per message calling back into the same gateway.
    const setKnobs = (knobs: object) =>
      fetch(`http://127.0.0.1:${SB_PORT}/_sandbox/knobs`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(knobs),
      });
    const queuedCount = async () =>
      Number((await db.query(`SELECT count(*) FROM messages WHERE status IN ('queued', 'submitting')`)).rows[0].count);
    const drainUntil = async (target: number, limitMs: number) => {
      const start = Date.now();
      const from = await queuedCount();
      let left = from;
      while (Date.now() - start < limitMs && left > target) {
        await sleep(100);
        left = await queuedCount();
      }
      const seconds = (Date.now() - start) / 1000;
      return { submitted: from - left, seconds, perSec: Math.round((from - left) / seconds), left };
    };
    await setKnobs({ dropDlrRate: 1 });
    const drainNoDlr = await drainUntil(Math.floor(backlog / 2), 60_000);
    await setKnobs({ dropDlrRate: 0 });
    const drainWithDlr = await drainUntil(0, 90_000);
    const left = drainWithDlr.left;
    const drainSeconds = drainNoDlr.seconds + drainWithDlr.seconds;
    const outcome = (await db.query(`SELECT status, count(*)::int AS n FROM messages GROUP BY status ORDER BY status`))
      .rows;
    await db.end();

    const result = {
      commit,
      at: new Date().toISOString(),
      machine: { cores: (await import('node:os')).cpus().length, node: process.version },
      gatewayWorkers: WORKERS,
      single: {
        connections: 50,
        seconds: SECONDS,
        acceptedPerSec: Math.round(singleAccepted / SECONDS),
        p50ms: single.latency.p50,
        p99ms: single.latency.p99,
        non2xx: single.non2xx,
        errors: single.errors,
      },
      batch: {
        connections: 4,
        itemsPerRequest: 1000,
        seconds: SECONDS,
        messagesPerSec: Math.round(batchMessages / SECONDS),
        p99ms: batch.latency.p99,
        non2xx: batch.non2xx,
      },
      drain: {
        backlog,
        seconds: drainSeconds,
        left,
        statuses: outcome,
        submittedPerSec: drainNoDlr.perSec,
        withoutDlr: drainNoDlr,
        withDlrCallbacks: drainWithDlr,
      },
      gatewayRssMbMax: Math.round(Math.max(...rss)),
    };
    console.log(JSON.stringify(result, null, 2));
    console.log(
      `\naccepted/s ${result.single.acceptedPerSec} (p50 ${result.single.p50ms} ms, p99 ${result.single.p99ms} ms) | ` +
        `batch msgs/s ${result.batch.messagesPerSec} | submitted/s ${result.drain.submittedPerSec} (with DLR callbacks ${drainWithDlr.perSec}) | RSS max ${result.gatewayRssMbMax} MB`,
    );
    mkdirSync(join(ROOT, 'bench/results'), { recursive: true });
    writeFileSync(
      join(ROOT, 'bench/results', `${result.at.replace(/[:.]/g, '-')}.json`),
      JSON.stringify(result, null, 2),
    );
  } finally {
    clearInterval(sampler);
    gateway.kill('SIGTERM');
    sandbox.kill('SIGTERM');
  }
}

run().catch((e) => {
  console.error(e);
  process.exit(1);
});

/**
 * `npm run bench:webhooks`: what one webhook delivery costs the gateway process, alone.
 *
 * The e2e benchmark mixes accepts, submits, reports and two webhooks per message, and its rate moves ±25 % from
 * run to run on this VM. This one isolates the delivery worker: a gateway (dispatcher off) with one tenant whose
 * endpoint is a local receiver answering 204; ROUNDS times, N `message.status` deliveries (a real envelope,
 * ~1 KB) are queued in one INSERT, and the gateway's CPU time (utime + stime from /proc) is read from the insert
 * until the receiver has all N. Printed: deliveries/s and gateway CPU µs per delivery (claim, signing, the POST,
 * recording the outcome), each round and the median.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { Client } from 'pg';
import { ADMIN, ROOT, baseGatewayEnv, gatewayApi, gitCommit, recreateDb, sleep, waitHttp } from './lib';

const DB_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/gerbang_bench_webhooks';
const N = Number(process.env.N ?? 10_000);
const ROUNDS = Number(process.env.ROUNDS ?? 3);
const GW_PORT = 3910;

/** utime and stime of a process, in seconds (clock ticks of 10 ms). */
function cpuTimes(pid: number): { user: number; sys: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { user: Number(f[11]) / 100, sys: Number(f[12]) / 100 };
}

const api = gatewayApi(GW_PORT);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function run(): Promise<void> {
  await recreateDb(DB_URL);
  let received = 0;
  const receiver = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      received++;
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  const receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;

  const gateway: ChildProcess = spawn(
    process.execPath,
    [
      ...(process.env.GATEWAY_NODE_ARGS ?? '').split(' ').filter(Boolean),
      '--max-old-space-size=192',
      join(ROOT, 'dist/src/main.js'),
    ],
    {
      env: {
        ...process.env,
        ...baseGatewayEnv(DB_URL, GW_PORT),
        DISPATCHER: 'false',
        WEBHOOK_ALLOW_PRIVATE: 'true',
        WORKERS: '1',
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  // Its log is kept (the last lines) and shown if it stops before it is ready: a failed start says why.
  let log = '';
  gateway.stdout!.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-8_000)));
  const exited = new Promise<never>((_, reject) =>
    gateway.once('exit', (code) => reject(new Error(`the gateway exited (${code}) before it was ready:\n${log}`))),
  );
  exited.catch(() => {}); // only awaited while starting
  const db = new Client({ connectionString: DB_URL });
  try {
    await Promise.race([waitHttp(`http://127.0.0.1:${GW_PORT}/health/ready`, 120_000), exited]);
    const { accessToken } = await api('/v1/auth/login', { method: 'POST', body: JSON.stringify(ADMIN) });
    const pac = await api('/v1/admin/provider-accounts', {
      method: 'POST',
      token: accessToken,
      body: JSON.stringify({ name: 'bench', baseUrl: 'http://127.0.0.1:9/masking', username: 'b', password: 'b-pass' }),
    });
    const tenant = await api('/v1/admin/tenants', {
      method: 'POST',
      token: accessToken,
      body: JSON.stringify({ name: 'webhook bench', providerAccountId: pac.id, pricePerSegment: 1 }),
    });
    const { key } = await api(`/v1/admin/tenants/${tenant.id}/api-keys`, {
      method: 'POST',
      token: accessToken,
      body: JSON.stringify({ name: 'bench' }),
    });
    const put = await fetch(`http://127.0.0.1:${GW_PORT}/v1/webhook`, {
      method: 'PUT',
      headers: { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ url: receiverUrl, events: ['message.status'] }),
    });
    if (!put.ok) throw new Error(`PUT /v1/webhook: ${put.status}`);
    await db.connect();
    const [{ tenant_id: tenantId }] = (await db.query<{ tenant_id: string }>(`SELECT tenant_id FROM webhook_endpoints`))
      .rows;

    const rates: number[] = [];
    const costs: number[] = [];
    for (let round = 0; round <= ROUNDS; round++) {
      const before = received;
      const cpu0 = cpuTimes(gateway.pid!);
      const t0 = performance.now();
      // What the relay queues for a message.status event: the Message as the API shows it, in the envelope.
      await db.query(
        `INSERT INTO webhook_deliveries (id, tenant_id, event_id, event_type, payload, status, next_attempt_at,
                                         created_at, sequence, event_at, endpoint_generation)
         SELECT gen_random_uuid(), e.tenant_id, gen_random_uuid(), 'message.status',
                jsonb_build_object('type', 'message.status', 'id', 'evt_' || md5(g::text), 'createdAt', now(),
                  'sequence', g, 'data', jsonb_build_object(
                    'id', 'msg_' || md5(g::text), 'to', '6281234567890', 'from', 'GERBANG',
                    'text', 'Bench message number ' || g, 'reference', 'webhooks-' || g, 'status', 'delivered',
                    'segments', 1, 'encoding', 'GSM-7', 'price', 1, 'providerMessageId', (1000000 + g)::text,
                    'providerStatusCode', 22, 'failureReason', null, 'refunded', false, 'sendAt', null,
                    'createdAt', now(), 'submittedAt', now(), 'finalizedAt', now())),
                'pending', now(), now(), g, now(), e.generation
           FROM generate_series($2::int * $3::int + 1, ($2::int + 1) * $3::int) g, webhook_endpoints e
          WHERE e.tenant_id = $1`,
        [tenantId, round, N],
      );
      while (received - before < N) await sleep(20);
      const seconds = (performance.now() - t0) / 1000;
      const cpu1 = cpuTimes(gateway.pid!);
      const sys = cpu1.sys - cpu0.sys;
      const cpu = cpu1.user - cpu0.user + sys;
      if (round === 0) {
        console.log(`warm-up: ${N} deliveries in ${seconds.toFixed(1)} s`);
        continue;
      }
      rates.push(N / seconds);
      costs.push((cpu / N) * 1e6);
      console.log(
        `round ${round}: ${N} deliveries in ${seconds.toFixed(1)} s = ${Math.round(N / seconds)}/s, ` +
          `gateway CPU ${cpu.toFixed(2)} s (${Math.round((sys / cpu) * 100)} % in the kernel) = ` +
          `${Math.round((cpu / N) * 1e6)} µs per delivery`,
      );
      await sleep(1000); // the outcome of the last ones is recorded before the next round's CPU is read
    }
    console.log(
      `webhooks (commit ${gitCommit()}, N=${N}): median ${Math.round(median(rates))} deliveries/s, ` +
        `${Math.round(median(costs))} µs of gateway CPU per delivery`,
    );
  } finally {
    await db.end().catch(() => undefined);
    gateway.kill('SIGTERM');
    receiver.close();
  }
}

run().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

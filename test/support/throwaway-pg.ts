/**
 * A private PostgreSQL server for tests that stop and start the database (outage, chaos): its own
 * data directory under the temp folder, its own port, never the shared server on 5432. Uses the
 * Debian binaries (`/usr/lib/postgresql/<v>/bin`); as root the server runs as the `postgres` user.
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closedPort } from './processes';

function binDir(): string {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) throw new Error(`no PostgreSQL binaries under ${root}`);
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'pg_ctl')))
    .sort((a, b) => Number(b) - Number(a));
  if (versions.length === 0) throw new Error(`no pg_ctl under ${root}/*/bin`);
  return join(root, versions[0], 'bin');
}

const isRoot = () => process.getuid?.() === 0;

function run(cmd: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const [file, argv] = isRoot() ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
  return new Promise((resolve, reject) =>
    execFile(file, argv, { timeout: timeoutMs, cwd: tmpdir() }, (err, stdout, stderr) =>
      err ? reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}\n${stdout}\n${stderr}`)) : resolve(stdout),
    ),
  );
}

export class ThrowawayPostgres {
  private constructor(
    readonly dir: string,
    readonly port: number,
    private readonly bin: string,
  ) {}

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  /** postgres://… of database `db` on this server (trust auth, loopback only). */
  url(db = 'gerbang'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${db}`;
  }

  /** initdb, start, create database `gerbang`. About 2-4 s. */
  static async create(): Promise<ThrowawayPostgres> {
    const dir = mkdtempSync(join(tmpdir(), 'gerbang-pg-'));
    chmodSync(dir, 0o755);
    if (isRoot()) {
      const id = (flag: string) => Number(execFileSync('id', [flag, 'postgres'], { encoding: 'utf8' }).trim());
      chownSync(dir, id('-u'), id('-g'));
    }
    const pg = new ThrowawayPostgres(dir, await closedPort(), binDir());
    await run(join(pg.bin, 'initdb'), [
      '-D',
      pg.dataDir,
      '-U',
      'postgres',
      '--auth=trust',
      '--no-sync',
      '-E',
      'UTF8',
      '--locale=C',
    ]);
    await pg.start();
    await run(join(pg.bin, 'createdb'), ['-h', '127.0.0.1', '-p', String(pg.port), '-U', 'postgres', 'gerbang']);
    return pg;
  }

  async start(): Promise<void> {
    const opts = [
      `-p ${this.port}`,
      '-c listen_addresses=127.0.0.1',
      `-c unix_socket_directories=${this.dir}`,
      // fsync off is safe here: the tests crash the server process, never the machine (the page cache
      // keeps what was written). synchronous_commit stays on: an immediate stop must not lose a commit.
      '-c fsync=off',
      '-c max_connections=200',
    ].join(' ');
    await run(join(this.bin, 'pg_ctl'), ['-D', this.dataDir, '-o', opts, '-l', join(this.dir, 'log'), '-w', 'start']);
  }

  /**
   * Stops the server. `fast` terminates every session (clients see 57P01 admin_shutdown) and
   * checkpoints; `immediate` is a crash (no checkpoint, recovery on the next start).
   */
  async stop(mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    await run(join(this.bin, 'pg_ctl'), ['-D', this.dataDir, '-m', mode, '-w', 'stop']);
  }

  async destroy(): Promise<void> {
    await this.stop('immediate').catch(() => undefined);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

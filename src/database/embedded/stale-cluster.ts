/**
 * Leftovers of a previous run in the data folder: a server still running as an orphan or a stale
 * `postmaster.pid` (Node was SIGKILLed), and a cluster an interrupted initdb left without `PG_VERSION`.
 */

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedLog, EmbeddedPostgresError } from './reporting';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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
export async function stopLeftoverServer(databaseDir: string, log: EmbeddedLog): Promise<void> {
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
export function moveAsideBrokenCluster(databaseDir: string, log: EmbeddedLog): void {
  if (!existsSync(databaseDir) || existsSync(join(databaseDir, 'PG_VERSION'))) return;
  if (readdirSync(databaseDir).length === 0) return;
  const aside = `${databaseDir}.broken-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  renameSync(databaseDir, aside);
  log(
    'warn',
    `${databaseDir} held no complete PostgreSQL cluster (no PG_VERSION); moved it to ${aside} and initialising afresh`,
  );
}

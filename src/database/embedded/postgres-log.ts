/** PostgreSQL's own log: its last lines for error messages, and what of it reaches ours while serving. */

import type { EmbeddedLog } from './reporting';

/** The last lines PostgreSQL wrote, for error messages. */
export class LogTail {
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
export function forwardSevere(chunk: string, log: EmbeddedLog): void {
  for (const line of chunk.split('\n')) {
    if (!/\b(FATAL|PANIC):/.test(line)) continue;
    if (/terminating connection due to administrator command|the database system is shutting down/.test(line)) continue;
    log('warn', `embedded PostgreSQL: ${line.trim()}`);
  }
}

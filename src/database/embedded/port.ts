/** The embedded PostgreSQL's port: EMBEDDED_PG_PORT or 54329 if free, else one the OS picks. */

import { createServer } from 'node:net';
import { EmbeddedPostgresError } from './reporting';

export const DEFAULT_EMBEDDED_PG_PORT = 54329;

export function preferredPortFromEnv(): number {
  const raw = process.env.EMBEDDED_PG_PORT;
  if (raw === undefined || raw.trim() === '') return DEFAULT_EMBEDDED_PG_PORT;
  const n = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || n < 1 || n > 65535) {
    throw new EmbeddedPostgresError(`EMBEDDED_PG_PORT must be a port number (1-65535), got "${raw}"`);
  }
  return n;
}

/** `preferred` if it can be bound on 127.0.0.1, else a free port the OS picks (0: any). */
export function freePort(preferred: number): Promise<number> {
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

/** How the embedded database reports: the caller's log function, the error it throws, an error's text. */

import { inspect } from 'node:util';

export type EmbeddedLog = (level: 'info' | 'warn' | 'error', msg: string, extra?: Record<string, unknown>) => void;

export class EmbeddedPostgresError extends Error {}

export function reason(e: unknown): string {
  if (e instanceof Error) return e.message;
  if (e === undefined) return 'the server exited';
  return typeof e === 'string' ? e : inspect(e);
}

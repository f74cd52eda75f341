import { LoggerService } from '@nestjs/common';
import pino, { Logger } from 'pino';
import type { AppConfig } from './config/config';

/**
 * Paths pino removes from every log line. Secrets must never reach a log: API keys (headers),
 * provider passwords, webhook secrets, JWTs, and request bodies (which may hold passwords).
 */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  'req.body',
  'password',
  'passwordEnc',
  'secret',
  'key',
  'accessToken',
  '*.password',
  '*.passwordEnc',
  '*.secret',
  '*.key',
  '*.accessToken',
  '*.authorization',
];

export function createRootLogger(config: Pick<AppConfig, 'logLevel'>): Logger {
  return pino({ level: config.logLevel, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}

/**
 * Nest's LoggerService on pino: JSON lines, one logger for the framework and our code.
 * (Not nestjs-pino: its per-request AsyncLocalStorage context costs every promise on the hot path,
 * measured at several percent of CPU per send; request lines are written by the HTTP middleware.)
 */
export class PinoNestLogger implements LoggerService {
  constructor(readonly root: Logger) {}

  private write(level: 'error' | 'warn' | 'info' | 'debug' | 'trace', message: unknown, params: unknown[]): void {
    if (!this.root.isLevelEnabled(level)) return;
    const context = typeof params[params.length - 1] === 'string' ? (params.pop() as string) : undefined;
    if (message !== null && typeof message === 'object') {
      const msg = typeof params[0] === 'string' ? String(params.shift()) : undefined;
      this.root[level]({ context, ...message }, msg);
      return;
    }
    const extra = params.length && level === 'error' && typeof params[0] === 'string' ? { stack: params[0] } : {};
    this.root[level]({ context, ...extra }, String(message));
  }

  log(message: unknown, ...params: unknown[]) {
    this.write('info', message, params);
  }
  error(message: unknown, ...params: unknown[]) {
    this.write('error', message, params);
  }
  warn(message: unknown, ...params: unknown[]) {
    this.write('warn', message, params);
  }
  debug(message: unknown, ...params: unknown[]) {
    this.write('debug', message, params);
  }
  verbose(message: unknown, ...params: unknown[]) {
    this.write('trace', message, params);
  }
  fatal(message: unknown, ...params: unknown[]) {
    this.write('error', message, params);
  }
}

/**
 * Drops the query string and masks the DLR token, which is a secret in the path: every segment after a `dlr`
 * segment, however it is spelled. A callback URL copied with a doubled slash, in upper case or with an encoded
 * letter misses the route (a 404 logged at info) or reaches it, and its line carried the token in clear.
 */
export function redactUrl(url: string | undefined): string | undefined {
  if (url === undefined) return undefined;
  const segments = url.split('?')[0].split('/');
  const dlr = segments.findIndex((segment) => decodedSegment(segment).toLowerCase() === 'dlr');
  if (dlr < 0) return segments.join('/');
  return [...segments.slice(0, dlr + 1), ...segments.slice(dlr + 1).map((s) => (s ? '[redacted]' : s))].join('/');
}

function decodedSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

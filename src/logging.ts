import { randomUUID } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Params } from 'nestjs-pino';
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

export function loggerOptions(config: AppConfig): Params {
  return {
    pinoHttp: {
      level: config.logLevel,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      genReqId: (req: IncomingMessage) => {
        const given = req.headers['x-request-id'];
        return typeof given === 'string' && /^[\w.-]{1,100}$/.test(given) ? given : randomUUID();
      },
      // Successful requests at debug: at thousands of sends per second an info line each is noise.
      customLogLevel: (_req, res, err) => (err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'info' : 'debug'),
      serializers: {
        req: (req: { id: string; method: string; url: string }) => ({ id: req.id, method: req.method, url: redactUrl(req.url) }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
    },
  };
}

/** Drops the query string and masks the DLR token, which is a secret in the path. */
export function redactUrl(url: string | undefined): string | undefined {
  return url?.split('?')[0].replace(/^\/v1\/dlr\/[^/]+/, '/v1/dlr/[redacted]');
}

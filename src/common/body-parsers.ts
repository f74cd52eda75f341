import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyRequest } from 'fastify';
import { parse as parseForm } from 'node:querystring';
import { Problem } from './problem';

/**
 * The request bodies the API reads, on Fastify, with the semantics the API has always had:
 * - `application/json`: any JSON value (the validation pipe refuses what is not an object where a DTO
 *   is expected), an empty body is `{}`; UTF-8 unless `charset` names another UTF; any other charset
 *   is 415 `unsupported_media_type`; malformed JSON is 400 `validation_failed`;
 * - `application/x-www-form-urlencoded` (the provider's callbacks may post forms): flat string fields,
 *   64 kB at most, UTF-8 only;
 * - anything else is read (within the limit) and ignored: the handler sees no body, and a write that
 *   needs one answers 400 naming the missing fields, as it does for no body at all.
 * A body over its limit is 413 `payload_too_large` (raised by Fastify before a parser runs).
 */
export function registerBodyParsers(app: NestFastifyApplication, limits: { jsonLimit: number; formLimit: number }) {
  const fastify = app.getHttpAdapter().getInstance();
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser(
    'application/json',
    { parseAs: 'buffer', bodyLimit: limits.jsonLimit },
    (req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: unknown) => void) => {
      let text: string;
      try {
        text = decode(req, body, true);
      } catch (e) {
        return done(e as Error);
      }
      if (text.length === 0) return done(null, {});
      try {
        done(null, JSON.parse(text));
      } catch {
        done(new Problem('validation_failed', 'The request body is not valid JSON'));
      }
    },
  );
  fastify.addContentTypeParser(
    'application/x-www-form-urlencoded',
    { parseAs: 'buffer', bodyLimit: limits.formLimit },
    (req: FastifyRequest, body: Buffer, done: (err: Error | null, body?: unknown) => void) => {
      try {
        // A plain object (not querystring's null-prototype one): `__proto__` stays an ordinary field.
        done(null, { ...parseForm(decode(req, body, false)) });
      } catch (e) {
        done(e as Error);
      }
    },
  );
  fastify.addContentTypeParser(
    '*',
    { parseAs: 'buffer', bodyLimit: limits.jsonLimit },
    (_req: FastifyRequest, _body: Buffer, done: (err: Error | null, body?: unknown) => void) => done(null, undefined),
  );
}

/** The body as text in its declared charset: UTF-8 by default; JSON may name another UTF, forms may not. */
function decode(req: FastifyRequest, body: Buffer, otherUtfs: boolean): string {
  const charset = /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(req.headers['content-type'] ?? '')?.[1]?.toLowerCase();
  if (charset === undefined || charset === 'utf-8' || charset === 'utf8') return body.toString('utf8');
  if (otherUtfs && charset.startsWith('utf-')) {
    try {
      return new TextDecoder(charset).decode(body);
    } catch {
      // an unknown label: below
    }
  }
  throw new Problem('unsupported_media_type', `Unsupported charset "${charset}"`);
}

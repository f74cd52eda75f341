import { applyDecorators } from '@nestjs/common';
import { ApiExtraModels, ApiResponse, getSchemaPath } from '@nestjs/swagger';
import { ProblemDto } from './api-problem.dto';

/** What each status means in this API, and the `code`s it carries (API.md "Conventions"). */
const PROBLEMS: Record<number, { description: string; code: string }> = {
  400: {
    description: 'Invalid request: `validation_failed` (one entry per field in `errors`)',
    code: 'validation_failed',
  },
  401: { description: 'Missing, unknown or revoked credential: `unauthorized`', code: 'unauthorized' },
  402: {
    description: 'Cannot be paid: `insufficient_balance`, or `balance_expired` (in grace)',
    code: 'insufficient_balance',
  },
  403: { description: 'Not allowed: `forbidden` (role), `tenant_suspended`', code: 'forbidden' },
  404: { description: 'No such object (or not yours): `not_found`', code: 'not_found' },
  409: { description: 'Conflicts with the current state: `conflict`, `idempotency_in_progress`', code: 'conflict' },
  413: { description: 'Body larger than the limit: `payload_too_large`', code: 'payload_too_large' },
  422: {
    description: 'Idempotency-Key reused with a different body: `idempotency_conflict`',
    code: 'idempotency_conflict',
  },
  429: { description: 'Rate limit reached: `rate_limited`, with `Retry-After`', code: 'rate_limited' },
  502: {
    description: 'The provider could not be reached for a live read: `provider_unavailable`',
    code: 'provider_unavailable',
  },
  503: {
    description: 'Temporarily unavailable (e.g. the database): `unavailable`, with `Retry-After`',
    code: 'unavailable',
  },
};

/** A title (as the filter renders it) and a typical `detail` per status, for the example. */
const EXAMPLES: Record<number, { title: string; detail: string }> = {
  400: { title: 'Validation failed', detail: 'text: text must be longer than or equal to 1 characters' },
  401: { title: 'Unauthorized', detail: 'Missing or invalid credentials' },
  402: { title: 'Insufficient balance', detail: 'The balance does not cover 2 segments (700)' },
  403: { title: 'Forbidden', detail: 'This role may not do this' },
  404: { title: 'Not found', detail: 'Message not found' },
  409: { title: 'Conflict', detail: 'Only a scheduled message can be canceled' },
  413: { title: 'Payload too large', detail: 'The body is larger than 1mb' },
  422: {
    title: 'Idempotency key reused with a different request',
    detail: 'Idempotency-Key was used with another body',
  },
  429: { title: 'Too many requests', detail: 'Rate limit of 100 requests per second reached' },
  502: { title: 'The provider could not be reached', detail: 'The provider could not be reached (timeout)' },
  503: { title: 'Service unavailable', detail: 'The database is unreachable; retry later' },
};

export type ProblemStatus = 400 | 401 | 402 | 403 | 404 | 409 | 413 | 422 | 429 | 502 | 503;

/**
 * Documents the problem+json error responses of an operation (or of every operation of a controller),
 * e.g. `@ApiProblems(400, 402, 403)`. Pass `[status, description]` to say more than the generic text.
 */
export function ApiProblems(...statuses: Array<ProblemStatus | [ProblemStatus, string]>) {
  return applyDecorators(
    ApiExtraModels(ProblemDto),
    ...statuses.map((entry) => {
      const [status, description] = Array.isArray(entry) ? entry : [entry, PROBLEMS[entry].description];
      return ApiResponse({
        status,
        description,
        content: {
          'application/problem+json': {
            schema: { $ref: getSchemaPath(ProblemDto) },
            example: {
              type: `urn:gerbang:problem:${PROBLEMS[status].code}`,
              title: EXAMPLES[status].title,
              status,
              code: PROBLEMS[status].code,
              detail: EXAMPLES[status].detail,
            },
          },
        },
      });
    }),
  );
}

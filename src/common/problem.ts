import { HttpStatus } from '@nestjs/common';

/** The stable machine codes of API.md. */
export type ProblemCode =
  | 'validation_failed'
  | 'invalid_msisdn'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'idempotency_conflict'
  | 'idempotency_in_progress'
  | 'insufficient_balance'
  | 'balance_expired'
  | 'tenant_suspended'
  | 'rate_limited'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'method_not_allowed'
  | 'not_acceptable'
  | 'unavailable'
  | 'provider_unavailable'
  | 'internal';

export interface FieldError {
  field: string;
  message: string;
}

const TITLES: Record<ProblemCode, string> = {
  validation_failed: 'Validation failed',
  invalid_msisdn: 'Invalid phone number',
  unauthorized: 'Unauthorized',
  forbidden: 'Forbidden',
  not_found: 'Not found',
  conflict: 'Conflict',
  idempotency_conflict: 'Idempotency key reused with a different request',
  idempotency_in_progress: 'A request with this idempotency key is in progress',
  insufficient_balance: 'Insufficient balance',
  balance_expired: 'Balance validity expired',
  tenant_suspended: 'Tenant suspended',
  rate_limited: 'Too many requests',
  payload_too_large: 'Payload too large',
  unsupported_media_type: 'Unsupported media type',
  method_not_allowed: 'Method not allowed',
  not_acceptable: 'Not acceptable',
  unavailable: 'Service temporarily unavailable',
  provider_unavailable: 'The provider could not be reached',
  internal: 'Internal server error',
};

const STATUS: Record<ProblemCode, number> = {
  validation_failed: HttpStatus.BAD_REQUEST,
  invalid_msisdn: HttpStatus.BAD_REQUEST,
  unauthorized: HttpStatus.UNAUTHORIZED,
  forbidden: HttpStatus.FORBIDDEN,
  not_found: HttpStatus.NOT_FOUND,
  conflict: HttpStatus.CONFLICT,
  idempotency_conflict: HttpStatus.UNPROCESSABLE_ENTITY,
  idempotency_in_progress: HttpStatus.CONFLICT,
  insufficient_balance: HttpStatus.PAYMENT_REQUIRED,
  balance_expired: HttpStatus.PAYMENT_REQUIRED,
  tenant_suspended: HttpStatus.FORBIDDEN,
  rate_limited: HttpStatus.TOO_MANY_REQUESTS,
  payload_too_large: HttpStatus.PAYLOAD_TOO_LARGE,
  unsupported_media_type: HttpStatus.UNSUPPORTED_MEDIA_TYPE,
  method_not_allowed: HttpStatus.METHOD_NOT_ALLOWED,
  not_acceptable: HttpStatus.NOT_ACCEPTABLE,
  unavailable: HttpStatus.SERVICE_UNAVAILABLE,
  provider_unavailable: HttpStatus.BAD_GATEWAY,
  internal: HttpStatus.INTERNAL_SERVER_ERROR,
};

/**
 * The one exception type that carries an API error. Modules throw `new Problem('not_found', ...)`;
 * the global filter renders it as RFC 9457 problem+json.
 */
export class Problem extends Error {
  readonly status: number;
  readonly title: string;
  constructor(
    readonly code: ProblemCode,
    readonly detail?: string,
    readonly errors?: FieldError[],
    readonly headers?: Record<string, string>,
  ) {
    super(detail ?? TITLES[code]);
    this.status = STATUS[code];
    this.title = TITLES[code];
  }
}

export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail?: string;
  code: ProblemCode;
  errors?: FieldError[];
  instance?: string;
}

export function problemBody(p: Problem, instance?: string): ProblemBody {
  const body: ProblemBody = {
    type: `urn:gerbang:problem:${p.code}`,
    title: p.title,
    status: p.status,
    code: p.code,
  };
  if (p.detail) body.detail = p.detail;
  if (p.errors && p.errors.length) body.errors = p.errors;
  if (instance) body.instance = instance;
  return body;
}

export const notFound = (what = 'Resource') => new Problem('not_found', `${what} not found`);

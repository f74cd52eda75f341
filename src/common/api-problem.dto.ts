/** The RFC 9457 body every error is sent as (`application/problem+json`), as documented in OpenAPI. */
export class FieldErrorDto {
  /**
   * The request field, dotted for nested ones.
   * @example "messages.0.to"
   */
  field: string;
  /** @example "to must be an Indonesian mobile number" */
  message: string;
}

export class ProblemDto {
  /**
   * A URN naming the problem kind: `urn:gerbang:problem:<code>`.
   * @example "urn:gerbang:problem:validation_failed"
   */
  type: string;
  /** @example "Validation failed" */
  title: string;
  /**
   * The HTTP status, repeated.
   * @example 400
   */
  status: number;
  /** @example "text: text must be longer than or equal to 1 characters" */
  detail?: string;
  /**
   * Stable machine word (API.md "Conventions"): validation_failed, invalid_msisdn, unauthorized, forbidden,
   * not_found, conflict, idempotency_conflict, idempotency_in_progress, insufficient_balance,
   * balance_expired, tenant_suspended, rate_limited, payload_too_large, unavailable, provider_unavailable, internal.
   * @example "validation_failed"
   */
  code: string;
  /** One entry per invalid field (`validation_failed`). */
  errors?: FieldErrorDto[];
  /** For `internal`: the error id to quote to support (the log line carries it). */
  instance?: string;
}

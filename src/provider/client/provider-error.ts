/**
 * Thrown by the non-send operations when no answer was obtained from the provider, and by the
 * client's constructor on bad configuration. `send` never throws (it returns an outcome).
 *
 * Invariant: `message` is built by this module from redacted text only, and the original
 * transport error is deliberately NOT attached as `cause` (undici errors can carry request
 * options, and a GET URL carries the password).
 */
export type ProviderErrorCode =
  /** Nothing was written: refused, DNS, connect timeout, TLS, timed out while queued. */
  | 'unreachable'
  /** The request was written, the total timeout passed before a complete answer. */
  | 'timeout'
  /** The request was written, the connection broke before a complete answer. */
  | 'connection_lost'
  /** The answer exceeded the size limit of the operation. */
  | 'response_too_large'
  /** `close()` was called on the client. */
  | 'client_closed'
  /** Bad account configuration (no part of it is echoed). */
  | 'invalid_config'
  /** An argument the provider cannot take (e.g. a non-numeric message id); nothing was sent. */
  | 'invalid_argument';

export class ProviderError extends Error {
  override readonly name = 'ProviderError';

  constructor(
    readonly code: ProviderErrorCode,
    message: string,
    readonly accountId?: string,
    readonly operation?: string,
  ) {
    super(message);
  }

  /** A log/JSON form that cannot pick up anything else hanging off the object. */
  toJSON(): { name: string; code: ProviderErrorCode; message: string; accountId?: string; operation?: string } {
    return {
      name: this.name,
      code: this.code,
      message: this.message,
      accountId: this.accountId,
      operation: this.operation,
    };
  }
}

/**
 * Is this error "the database is not there right now" (as opposed to a bug or bad data)? Such errors
 * become 503 `unavailable` with Retry-After in the API, readiness 503, and a logged back-off in the
 * background loops; the pg pool reconnects by itself once the server answers again.
 *
 * Recognised: socket errors (ECONNREFUSED, ECONNRESET, ETIMEDOUT, EPIPE, …); SQLSTATE class 08
 * (connection exception), 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
 * 53300 too_many_connections; node-postgres's own messages for a dropped connection or a pool wait
 * that timed out. TypeORM wraps driver errors (QueryFailedError.driverError), and pg sometimes
 * wraps the socket error (`cause`), so both are looked into.
 */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
const SQLSTATES = new Set(['57P01', '57P02', '57P03', '53300']);
const MESSAGES = [
  /Connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /Client has encountered a connection error and is not queryable/i,
  /Client was closed and is not queryable/i,
  /terminating connection due to administrator command/i,
  /the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)/i,
  /Connection is not established/i,
  /connect ECONNREFUSED/i,
  /read ECONNRESET/i,
  // TypeORM: the transaction's connection died under it (an outage) and the runner was released;
  // the second is what a query through that transaction's EntityManager then throws.
  /Query runner already released/i,
  /connection provided by a query runner was already released/i,
];

export function isConnectionError(e: unknown, depth = 0): boolean {
  if (!e || typeof e !== 'object' || depth > 4) return false;
  const err = e as { code?: unknown; message?: unknown; driverError?: unknown; cause?: unknown; errors?: unknown };
  const code = typeof err.code === 'string' ? err.code : '';
  if (SOCKET_CODES.has(code) || SQLSTATES.has(code) || /^08[0-9A-Z]{3}$/.test(code)) return true;
  // A SQLSTATE of any other class is an answer from a live server: not an outage.
  if (/^[0-9A-Z]{5}$/.test(code) && !/^08/.test(code)) return false;
  const message = typeof err.message === 'string' ? err.message : '';
  if (MESSAGES.some((re) => re.test(message))) return true;
  if (Array.isArray(err.errors) && err.errors.some((x) => isConnectionError(x, depth + 1))) return true; // AggregateError
  return isConnectionError(err.driverError, depth + 1) || isConnectionError(err.cause, depth + 1);
}

/** Seconds a client should wait before retrying while the database is unreachable. */
export const UNAVAILABLE_RETRY_AFTER_S = 5;

/**
 * A transaction PostgreSQL rolled back because it collided with another one (40001 serialization
 * failure, 40P01 deadlock detected): nothing was written and the same request may succeed when
 * retried. Looked up like isConnectionError (through driverError and cause).
 */
export function isTransientConflict(e: unknown, depth = 0): boolean {
  if (!e || typeof e !== 'object' || depth > 4) return false;
  const err = e as { code?: unknown; driverError?: unknown; cause?: unknown };
  if (err.code === '40001' || err.code === '40P01') return true;
  return isTransientConflict(err.driverError, depth + 1) || isTransientConflict(err.cause, depth + 1);
}

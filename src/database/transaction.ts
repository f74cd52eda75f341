import { Logger } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';

/** SQLSTATEs after which PostgreSQL has rolled the whole transaction back and a rerun may succeed. */
export const RETRYABLE_SQLSTATES: ReadonlySet<string> = new Set([
  '40P01', // deadlock_detected
  '40001', // serialization_failure
]);

export interface TransactionOptions {
  /** Total runs, the first included (default 5). */
  attempts?: number;
  /** Backoff before retry n is random in [0, min(maxDelayMs, baseDelayMs * 2^(n-1))] ("full jitter"). */
  baseDelayMs?: number;
  maxDelayMs?: number;
  isolation?: 'READ COMMITTED' | 'REPEATABLE READ' | 'SERIALIZABLE';
  /** Called before each retry (logging, tests). */
  onRetry?: (attempt: number, err: unknown) => void;
}

const logger = new Logger('inTransaction');

/** The SQLSTATE of a pg / TypeORM error (QueryFailedError copies it and keeps driverError), if any. */
export function sqlState(err: unknown): string | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const e = err as { code?: unknown; driverError?: { code?: unknown } };
  if (typeof e.driverError?.code === 'string') return e.driverError.code;
  return typeof e.code === 'string' ? e.code : undefined;
}

export function isRetryable(err: unknown): boolean {
  const state = sqlState(err);
  return state !== undefined && RETRYABLE_SQLSTATES.has(state);
}

/**
 * Runs `fn` in one transaction; if PostgreSQL aborts it with a deadlock (40P01) or a serialization
 * failure (40001), runs `fn` again from the start with the same inputs (bounded attempts, jittered
 * exponential backoff). Such an abort rolled everything back, so the rerun cannot double anything
 * written inside the transaction. Any other error, or the last retryable one, is thrown as is.
 *
 * `fn` must not have side effects outside the transaction that a rerun would repeat (no HTTP calls,
 * no events emitted before the commit). Must not be nested: only a top-level transaction can be rerun.
 */
export async function inTransaction<T>(
  dataSource: DataSource,
  fn: (m: EntityManager) => Promise<T>,
  opts: TransactionOptions = {},
): Promise<T> {
  const attempts = Math.max(1, opts.attempts ?? 5);
  const base = opts.baseDelayMs ?? 10;
  const max = opts.maxDelayMs ?? 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return opts.isolation ? await dataSource.transaction(opts.isolation, fn) : await dataSource.transaction(fn);
    } catch (err) {
      if (attempt >= attempts || !isRetryable(err)) throw err;
      opts.onRetry?.(attempt, err);
      logger.warn({ attempt, sqlState: sqlState(err) }, 'transaction aborted by PostgreSQL; retrying');
      const delay = Math.random() * Math.min(max, base * 2 ** (attempt - 1));
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

import type { SelectQueryBuilder } from 'typeorm';
import { Problem } from './problem';

/** Moved to list-query.dto.ts (the Swagger plugin reads only `*.dto.ts`); re-exported for existing imports. */
export { ListQueryDto } from './list-query.dto';

export interface Page<T> {
  data: T[];
  nextCursor: string | null;
}

export function encodeCursor(value: Record<string, string | number>): string {
  return Buffer.from(JSON.stringify(value), 'utf8').toString('base64url');
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** Cursors carry times of rows this gateway wrote: anything outside these years is forged. */
const EARLIEST = Date.UTC(2000, 0, 1);
const LATEST = Date.UTC(9999, 11, 31);

/** What a cursor field may hold: checked before the value reaches PostgreSQL (a bad cast there would be a 500). */
export const cursorField = {
  uuid: (v: unknown): v is string => typeof v === 'string' && UUID.test(v),
  /** A `Date.toISOString()` value (UTC, milliseconds) between 2000 and 9999. */
  time: (v: unknown): v is string => {
    if (typeof v !== 'string' || !ISO_UTC.test(v)) return false;
    const ms = Date.parse(v);
    return ms >= EARLIEST && ms <= LATEST && new Date(ms).toISOString() === v;
  },
  /** A positive integer PostgreSQL's bigint holds exactly. */
  seq: (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v > 0,
} as const;

type FieldCheck = (v: unknown) => boolean;

/**
 * Decodes a cursor made by encodeCursor. It must be an object with exactly the keys of `fields`, each
 * passing its check; anything else (garbage, another list's cursor, forged values) is a 400, never a 500.
 */
export function decodeCursor<T extends Record<string, string | number>>(
  cursor: string | undefined,
  fields: Record<keyof T & string, FieldCheck>,
): T | null {
  if (!cursor) return null;
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    value = undefined;
  }
  const keys = Object.keys(fields);
  if (
    value !== null &&
    typeof value === 'object' &&
    !Array.isArray(value) &&
    Object.keys(value).length === keys.length &&
    keys.every((k) => Object.hasOwn(value, k) && fields[k as keyof T & string]((value as T)[k]))
  )
    return value as T;
  throw new Problem('validation_failed', 'cursor is not valid', [{ field: 'cursor', message: 'cursor is not valid' }]);
}

/**
 * One page of a list ordered by its UUIDv7 primary key, newest first: `limit` rows after `cursor` (API.md
 * "Lists"). `query` is the list's own query builder on its own table (alias `alias`, any scoping condition
 * already on it); `view` turns a row into what the API shows.
 */
export async function pageByIdDesc<E extends { id: string }, T>(
  query: SelectQueryBuilder<E>,
  alias: string,
  limit: number,
  cursor: string | undefined,
  view: (row: E) => T,
): Promise<Page<T>> {
  const after = decodeCursor<{ id: string }>(cursor, { id: cursorField.uuid });
  query.orderBy(`${alias}.id`, 'DESC').limit(limit + 1);
  if (after) query.andWhere(`${alias}.id < :afterId`, { afterId: after.id });
  const rows = await query.getMany();
  const page = rows.slice(0, limit);
  return {
    data: page.map(view),
    nextCursor: rows.length > limit ? encodeCursor({ id: page[page.length - 1].id }) : null,
  };
}

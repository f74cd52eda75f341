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

/** Decodes a cursor made by encodeCursor; anything else is a 400, never a 500. */
export function decodeCursor<T extends Record<string, string | number>>(
  cursor: string | undefined,
  keys: (keyof T)[],
): T | null {
  if (!cursor) return null;
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as T;
    if (value && typeof value === 'object' && keys.every((k) => ['string', 'number'].includes(typeof value[k])))
      return value;
  } catch {
    /* fall through */
  }
  throw new Problem('validation_failed', 'cursor is not valid', [{ field: 'cursor', message: 'cursor is not valid' }]);
}

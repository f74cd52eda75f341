import { createHash } from 'node:crypto';
import type { Pool, PoolClient, QueryResult } from 'pg';
import type { DataSource, EntityManager } from 'typeorm';
import type { PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver.js';

/**
 * Runs raw SQL and returns its rows. TypeORM's postgres driver returns `[rows, affectedCount]`
 * for UPDATE and DELETE but plain rows for SELECT/INSERT; this hides the difference.
 */
export async function rows<T>(db: DataSource | EntityManager, text: string, params: unknown[] = []): Promise<T[]> {
  const r: unknown = await db.query(text, params);
  if (Array.isArray(r) && r.length === 2 && Array.isArray(r[0]) && typeof r[1] === 'number') return r[0] as T[];
  return r as T[];
}

const names = new Map<string, string>();

/** A name per statement text: the same text is the same prepared statement on every connection. */
function statementName(text: string): string {
  let name = names.get(text);
  if (name === undefined) {
    name = `g_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`;
    names.set(text, name);
  }
  return name;
}

/** The texts run through `prepared` in this process so far (for the test that checks their generic plans). */
export function preparedTexts(): string[] {
  return [...names.keys()];
}

/**
 * `rows`, as a named prepared statement: each connection parses the text once, and PostgreSQL may keep
 * a generic plan for it after five runs (plan_cache_mode `auto`: only if it costs no more than the
 * custom plans did). For hot statements whose planning over the partitioned tables cost as much as
 * their execution (docs/benchmark.md, round 4), and only for fixed texts (no values pasted in): one
 * prepared statement per text and connection. Inside a transaction, `db` is its EntityManager and the
 * statement runs on its connection. Errors are pg's own (`sqlState`, `isConnectionError` read both).
 *
 * Only for statements whose generic plan is right even when planned on empty tables (a new database,
 * a new month's partition): inserts from `unnest`, and claims that reach their rows through a LIMITed
 * index scan. A join of an `unnest` list against a growing table is planned there as a hash join over
 * a sequential scan, and a cached plan keeps that until the next ANALYZE: such statements stay
 * unprepared. `test/integration/prepared.test.ts` EXPLAINs every text run through here as a generic
 * plan on an empty database and fails on any access to a growing table that is not by an index condition.
 */
export async function prepared<T>(db: DataSource | EntityManager, text: string, params: unknown[] = []): Promise<T[]> {
  const config = { name: statementName(text), text, values: params };
  const runner = (db as EntityManager).queryRunner;
  let result: QueryResult;
  if (runner) {
    const client = (await runner.connect()) as PoolClient;
    result = await client.query(config);
  } else {
    const dataSource = 'driver' in db ? db : db.connection;
    result = await ((dataSource.driver as PostgresDriver).master as Pool).query(config);
  }
  return result.rows as T[];
}

import type { LoggerService } from '@nestjs/common';
import type { DataSource, EntityManager } from 'typeorm';
import { rows } from './raw-rows';
import { sqlState } from './transaction';

/**
 * DDL mechanics of the monthly partitions (docs/scaling.md "Retention and time partitioning"). The owner
 * of each partitioned table (messaging: `messages`, `message_events`; dlr: `delivery_reports`) runs
 * `maintainMonths` for its own tables from its own job; this file knows nothing about what the rows mean.
 *
 * Months are UTC calendar months, partitions are named `<table>_pYYYYMM`, and every table keeps a
 * `<table>_default` partition, so an insert never fails for lack of a partition.
 */

/** How a table's partition key expresses time. */
export type PartitionKey =
  /** a UUIDv7 column: its first 48 bits are Unix milliseconds, so month bounds are uuids */
  { kind: 'uuidv7'; column: string } | { kind: 'timestamptz'; column: string };

export interface PartitionedTable {
  table: string;
  key: PartitionKey;
  /**
   * Indexes each partition carries on its own: uniqueness that a partitioned index cannot give without
   * including the partition key (e.g. provider message ids per month of messages).
   */
  localIndexes?: (partition: string) => string[];
  /** A month is never dropped while one of its rows matches this condition (SQL over the partition's columns). */
  keepWhile?: string;
}

/**
 * Tables partitioned alike and created or dropped together, referenced table first: a month of them is
 * attached referenced-first and emptied or dropped referencing-first, so a foreign key between them
 * (message_events → messages) holds at every statement.
 */
export interface PartitionGroup {
  name: string;
  tables: PartitionedTable[];
}

export interface MaintenanceResult {
  created: string[];
  dropped: string[];
  /** Months left alone this run, with why (another process held the group, rows still in use, a lock timeout). */
  skipped: string[];
}

/**
 * PostgreSQL lets only a table's owner create, attach, detach or drop its partitions. In production the
 * gateway runs as a role that owns nothing (docs/operations.md), so there the same code runs from
 * `npm run partitions:maintain` as the migration role; inserts never wait for it (DEFAULT partitions).
 */
export const NOT_OWNER =
  'partition maintenance needs the role that owns the tables: run `npm run partitions:maintain` as the migration role (docs/operations.md)';

/** Months created around now: one back (late rows of last month) and three ahead (a job that stops for weeks). */
export const MONTHS_BEHIND = 1;
export const MONTHS_AHEAD = 3;
/**
 * How long a DDL step waits for a lock. Short, and below PostgreSQL's `deadlock_timeout` (1 s): a detach or
 * drop holds `messages` exclusively and then needs `tenants` (the foreign key), while a send holds its tenant
 * row and then inserts into `messages`. Waiting longer than `deadlock_timeout` let the deadlock detector
 * abort one of the two, possibly the send, and stalled sends for over a second (test: "a drop racing a
 * send"); giving up at 200 ms releases the send, and the step is tried again after a pause (then next run).
 */
const LOCK_TIMEOUT = '200ms';

/** The first instant of the UTC month `add` months after the month of `at`. */
export function monthStart(at: Date, add = 0): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth() + add, 1));
}

export function partitionName(table: string, month: Date): string {
  return `${table}_p${month.getUTCFullYear()}${String(month.getUTCMonth() + 1).padStart(2, '0')}`;
}

/** The smallest UUIDv7 of millisecond `ms` (all other bits zero): the bound between months of ids. */
export function uuidv7Floor(ms: number): string {
  const h = ms.toString(16).padStart(12, '0') + '0'.repeat(20);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

/** The SQL literal of a month bound for `key`. Built from numbers only, so it is safe to inline into DDL. */
export function boundLiteral(key: PartitionKey, at: Date): string {
  return key.kind === 'uuidv7' ? `'${uuidv7Floor(at.getTime())}'::uuid` : `'${at.toISOString()}'::timestamptz`;
}

/** The month a partition of ours covers, from its name; null for the default partition or a stranger. */
export function monthOf(table: string, partition: string): Date | null {
  const m = new RegExp(`^${table}_p(\\d{4})(\\d{2})$`).exec(partition);
  return m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1)) : null;
}

/**
 * Creates the months around `now` that are missing and, unless `retentionMonths` is null, drops every
 * month whose whole range ended at least `retentionMonths` months before the start of now's month.
 * Each month is one transaction, under a transaction-level advisory lock of the group taken with
 * try-lock: when another process is at it, this one skips (it runs again on its next tick).
 */
export async function maintainMonths(
  dataSource: DataSource,
  group: PartitionGroup,
  now: Date,
  retentionMonths: number | null,
  logger: LoggerService,
): Promise<MaintenanceResult> {
  const result: MaintenanceResult = { created: [], dropped: [], skipped: [] };
  for (let add = -MONTHS_BEHIND; add <= MONTHS_AHEAD; add++) {
    const month = monthStart(now, add);
    const missing: PartitionedTable[] = [];
    for (const t of group.tables) if (!(await exists(dataSource, partitionName(t.table, month)))) missing.push(t);
    if (missing.length === 0) continue;
    try {
      const outcome = await withGroupLock(dataSource, group, (m) => createMonth(m, missing, month));
      if (outcome === 'busy') result.skipped.push(`${partitionName(group.name, month)}: busy`);
      else result.created.push(...outcome);
    } catch (e) {
      if (sqlState(e) === '42501') throw new Error(NOT_OWNER, { cause: e });
      // Never fatal and never lossy: the rows stay where they are (DEFAULT), the next run tries again.
      logger.warn({ err: (e as Error).message, month: month.toISOString() }, 'could not create partitions');
      result.skipped.push(`${partitionName(group.name, month)}: ${(e as Error).message}`);
    }
  }
  if (retentionMonths === null) return result;

  const cutoff = monthStart(now, -retentionMonths);
  const months = new Map<number, Date>();
  for (const t of group.tables)
    for (const p of await partitionsOf(dataSource, t.table)) {
      const month = monthOf(t.table, p);
      if (month && monthStart(month, 1) <= cutoff) months.set(month.getTime(), month);
    }
  for (const month of [...months.values()].sort((a, b) => a.getTime() - b.getTime())) {
    try {
      const outcome = await withGroupLock(dataSource, group, (m) => dropMonth(m, group, month));
      if (typeof outcome === 'string') {
        logger.warn({ month: month.toISOString(), why: outcome }, 'retention left a month in place');
        result.skipped.push(`${partitionName(group.name, month)}: ${outcome}`);
      } else result.dropped.push(...outcome);
    } catch (e) {
      if (sqlState(e) === '42501') throw new Error(NOT_OWNER, { cause: e });
      logger.warn({ err: (e as Error).message, month: month.toISOString() }, 'could not drop partitions');
      result.skipped.push(`${partitionName(group.name, month)}: ${(e as Error).message}`);
    }
  }
  if (result.dropped.length > 0) logger.log({ dropped: result.dropped }, 'retention dropped partitions');
  return result;
}

/** Tries of one month's step within a run when its locks are not free within LOCK_TIMEOUT. */
const LOCK_TRIES = 5;

/**
 * One month's step in a transaction under the group's advisory lock ('busy' when another process holds it).
 * A lock timeout is tried again after a pause (up to LOCK_TRIES times): each try holds up the inserts
 * queued behind it for at most LOCK_TIMEOUT, and the pause lets them through. So is a deadlock (40P01: a
 * transaction that waited behind this step's locks for `deadlock_timeout` found the cycle and aborted this
 * step, as it should), and "relation does not exist" (42P01): a partition another process dropped just before this one took the group lock can still
 * be in this backend's catalog cache (an advisory lock does not refresh it, a new transaction does), and
 * the next try sees it gone.
 */
async function withGroupLock<T>(
  dataSource: DataSource,
  group: PartitionGroup,
  fn: (m: EntityManager) => Promise<T>,
): Promise<T | 'busy'> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await groupLocked(dataSource, group, fn);
    } catch (e) {
      if (!['55P03', '40P01', '42P01'].includes(sqlState(e) ?? '') || attempt >= LOCK_TRIES) throw e;
      await new Promise((r) => setTimeout(r, 200 + Math.random() * 300));
    }
  }
}

async function groupLocked<T>(
  dataSource: DataSource,
  group: PartitionGroup,
  fn: (m: EntityManager) => Promise<T>,
): Promise<T | 'busy'> {
  return dataSource.transaction(async (m) => {
    await m.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
    const [{ locked }] = await rows<{ locked: boolean }>(
      m,
      `SELECT pg_try_advisory_xact_lock(hashtextextended('partitions:' || $1, 0)) AS locked`,
      [group.name],
    );
    return locked ? fn(m) : 'busy';
  });
}

/**
 * Creates one month of `tables` (the group's tables that lack it, referenced first). Rows of that month
 * already in DEFAULT (CREATE … PARTITION OF would fail on them) are moved in the same transaction: each
 * partition is built as a plain table, the month's rows are moved out of DEFAULT referencing-first (so
 * deleting a referenced row never finds a referencing row still in the parent), then the partitions are
 * attached referenced-first (so the foreign key validates against rows already in place).
 */
async function createMonth(m: EntityManager, wanted: PartitionedTable[], month: Date): Promise<string[]> {
  // Looked at again under the lock: another process may have created them since this one looked.
  const tables: PartitionedTable[] = [];
  for (const t of wanted) if (!(await exists(m, partitionName(t.table, month)))) tables.push(t);
  const from = monthStart(month);
  const to = monthStart(month, 1);
  const range = (t: PartitionedTable) =>
    `${t.key.column} >= ${boundLiteral(t.key, from)} AND ${t.key.column} < ${boundLiteral(t.key, to)}`;
  for (const t of tables) {
    await m.query(
      `CREATE TABLE ${partitionName(t.table, month)} (LIKE ${t.table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)`,
    );
  }
  for (const t of [...tables].reverse()) {
    await m.query(
      `WITH moved AS (DELETE FROM ${t.table}_default WHERE ${range(t)} RETURNING *)
       INSERT INTO ${partitionName(t.table, month)} SELECT * FROM moved`,
    );
  }
  for (const t of tables) {
    const p = partitionName(t.table, month);
    for (const ddl of t.localIndexes?.(p) ?? []) await m.query(ddl);
    await m.query(
      `ALTER TABLE ${t.table} ATTACH PARTITION ${p}
         FOR VALUES FROM (${boundLiteral(t.key, from)}) TO (${boundLiteral(t.key, to)})`,
    );
  }
  return tables.map((t) => partitionName(t.table, month));
}

/** Detaches and drops one month of the group, referencing tables first; refused while `keepWhile` rows remain. */
async function dropMonth(m: EntityManager, group: PartitionGroup, month: Date): Promise<string[] | string> {
  for (const t of group.tables) {
    const p = partitionName(t.table, month);
    if (!t.keepWhile || !(await exists(m, p))) continue;
    const live = await rows(m, `SELECT 1 FROM ${p} WHERE ${t.keepWhile} LIMIT 1`);
    if (live.length > 0) return `${p} still has rows where ${t.keepWhile}`;
  }
  const dropped: string[] = [];
  for (const t of [...group.tables].reverse()) {
    const p = partitionName(t.table, month);
    if (!(await exists(m, p))) continue;
    // DETACH first: PostgreSQL refuses to DROP a partition that a foreign key references, and DETACH
    // checks that no referencing row is left (the referencing month went first).
    await m.query(`ALTER TABLE ${t.table} DETACH PARTITION ${p}`);
    await m.query(`DROP TABLE ${p}`);
    dropped.push(p);
  }
  return dropped;
}

async function exists(db: DataSource | EntityManager, relation: string): Promise<boolean> {
  const [r] = await rows<{ oid: string | null }>(db, `SELECT to_regclass($1)::oid::text AS oid`, [relation]);
  return r.oid !== null;
}

async function partitionsOf(db: DataSource | EntityManager, table: string): Promise<string[]> {
  const found = await rows<{ name: string }>(
    db,
    `SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = $1::regclass`,
    [table],
  );
  return found.map((r) => r.name);
}

/**
 * `npm run bench:writes`: what PostgreSQL writes per message, counted from the WAL instead of timed.
 *
 * Throughput on this 2-core VM moves ±25 % from run to run, so a change that saves 5–10 % of the
 * database's work cannot be seen in messages/s. The write volume can: this runs one end-to-end scenario
 * of `../shared/bench/run-gateway.sh` (accept → provider → report → signed `message.status` webhooks,
 * N messages, its database kept), then reads every WAL record written meanwhile with `pg_walinspect`
 * and counts, per message and per table (partitions folded into their parent):
 *   - heap row versions: inserts, non-HOT updates (each writes one entry into every index whose
 *     predicate holds), HOT updates (no index entries), deletes;
 *   - B-tree leaf insertions per index (the index entries those versions cost);
 *   - WAL bytes, full-page images included.
 * Counts depend on the code, not on the machine's speed: two runs of one commit agree within a few
 * tenths of a per-message unit (how the batches happened to group), so an A/B of a structural change
 * needs one run per side.
 *
 * Needs a local PostgreSQL ≥ 15 with the `pg_walinspect` contrib extension (Debian's postgresql-15 has
 * it) and a superuser connection (the harness's `postgres`). It issues a CHECKPOINT before the run so
 * that the run's WAL is not recycled before it is read (a run must end within `checkpoint_timeout`).
 *
 * Env: N (10000), SCENARIO (e2e; any one scenario of run-gateway.sh), SHARED_BENCH_DIR (../shared/bench),
 * PGHOST/PGPORT/PGUSER/PGPASSWORD (127.0.0.1/5432/postgres/postgres), and run-gateway.sh's own knobs.
 * Prints a table and writes bench/results/write-cost-<time>.json.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Client } from 'pg';
import { gitCommit, ROOT } from './lib';

const N = Number(process.env.N ?? 10_000);
const SCENARIO = process.env.SCENARIO ?? 'e2e';
const SHARED = resolve(ROOT, process.env.SHARED_BENCH_DIR ?? '../shared/bench');
const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: process.env.PGUSER ?? 'postgres',
  password: process.env.PGPASSWORD ?? 'postgres',
};

/** One kind of write to one relation, as counted from the WAL (partitions folded into their parent). */
interface WalRow {
  rmgr: string;
  type: string;
  relation: string;
  kind: 'table' | 'index';
  table: string;
  n: number;
  bytes: number;
}

async function connect(database: string): Promise<Client> {
  const c = new Client({ ...PG, database });
  await c.connect();
  return c;
}

/** Runs run-gateway.sh for one scenario with its database kept; returns the database's name. */
function runScenario(): Promise<string> {
  return new Promise((done, fail) => {
    const child = spawn('bash', [join(SHARED, 'run-gateway.sh'), '1'], {
      cwd: ROOT,
      env: {
        ...process.env,
        SCENARIOS: SCENARIO,
        N: String(N),
        KEEP_DB: '1',
        GATEWAY_DIR: ROOT,
        PROVIDER_SEND_RATE_PER_SECOND: process.env.PROVIDER_SEND_RATE_PER_SECOND ?? '0',
      },
      stdio: ['ignore', 'inherit', 'pipe'],
    });
    let db = '';
    child.stderr.on('data', (d: Buffer) => {
      const text = d.toString();
      process.stderr.write(text);
      db ||= /\(db (gwbench_[0-9_]+)/.exec(text)?.[1] ?? '';
    });
    child.on('exit', (code) =>
      code === 0 && db ? done(db) : fail(new Error(`run-gateway.sh exited ${code}${db ? '' : ' (no database seen)'}`)),
    );
  });
}

/** Every heap and B-tree record of this database's own relations between two LSNs, grouped. */
async function walWrites(c: Client, start: string, end: string): Promise<WalRow[]> {
  await c.query('CREATE EXTENSION IF NOT EXISTS pg_walinspect');
  const { rows } = await c.query<{
    rmgr: string;
    type: string;
    relation: string;
    relkind: string;
    table: string;
    n: string;
    bytes: string;
  }>(
    `WITH rec AS (
       SELECT resource_manager AS rmgr, record_type AS type, record_length + fpi_length AS bytes,
              (regexp_match(block_ref, 'blkref #0: rel \\d+/(\\d+)/(\\d+)')) AS ref
         FROM pg_get_wal_records_info($1::pg_lsn, $2::pg_lsn)
        WHERE resource_manager IN ('Heap', 'Heap2', 'Btree')),
     mine AS (
       SELECT rmgr, type, ref[2]::oid AS filenode, count(*) AS n, sum(bytes) AS bytes
         FROM rec
        WHERE ref[1]::oid = (SELECT oid FROM pg_database WHERE datname = current_database())
        GROUP BY 1, 2, 3),
     rel AS (
       -- A partition (or a partition's index) is counted under its partitioned parent.
       SELECT pg_relation_filenode(c.oid) AS filenode, coalesce(p.relname, c.relname) AS relation, c.relkind,
              coalesce(tp.relname, t.relname, p.relname, c.relname) AS "table"
         FROM pg_class c
         LEFT JOIN pg_inherits i ON i.inhrelid = c.oid
         LEFT JOIN pg_class p ON p.oid = i.inhparent
         LEFT JOIN pg_index x ON x.indexrelid = c.oid
         LEFT JOIN pg_class t ON t.oid = x.indrelid
         LEFT JOIN pg_inherits ti ON ti.inhrelid = t.oid
         LEFT JOIN pg_class tp ON tp.oid = ti.inhparent
        WHERE c.relnamespace = 'public'::regnamespace AND pg_relation_filenode(c.oid) IS NOT NULL)
     SELECT m.rmgr, m.type, rel.relation, rel.relkind, rel."table", sum(m.n) AS n, sum(m.bytes) AS bytes
       FROM mine m JOIN rel USING (filenode)
      GROUP BY 1, 2, 3, 4, 5`,
    [start, end],
  );
  return rows.map((r) => ({
    rmgr: r.rmgr,
    type: r.type,
    relation: r.relation,
    kind: r.relkind === 'i' ? 'index' : 'table',
    table: r.table,
    n: Number(r.n),
    bytes: Number(r.bytes),
  }));
}

/** Heap record types by what they did to a row (`+INIT`: the same on a fresh page). */
function heapKind(rmgr: string, type: string): 'insert' | 'update' | 'hot' | 'delete' | null {
  const t = type.replace('+INIT', '');
  if (rmgr === 'Heap' && t === 'INSERT') return 'insert';
  if (rmgr === 'Heap2' && t === 'MULTI_INSERT') return 'insert';
  if (rmgr === 'Heap' && t === 'UPDATE') return 'update';
  if (rmgr === 'Heap' && t === 'HOT_UPDATE') return 'hot';
  if (rmgr === 'Heap' && t === 'DELETE') return 'delete';
  return null;
}

const per = (x: number) => Math.round((x / N) * 100) / 100;

async function main(): Promise<void> {
  if (!existsSync(join(SHARED, 'run-gateway.sh'))) {
    console.log(`bench:writes skipped: ${SHARED}/run-gateway.sh not found (set SHARED_BENCH_DIR)`);
    return;
  }
  const admin = await connect('postgres');
  let db: string;
  let start: string;
  let end: string;
  try {
    const ext = await admin.query(`SELECT 1 FROM pg_available_extensions WHERE name = 'pg_walinspect'`);
    if (ext.rowCount === 0) {
      console.log('bench:writes skipped: pg_walinspect is not available (PostgreSQL 15+ contrib)');
      return;
    }
    await admin.query('CHECKPOINT');
    start = (await admin.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
    db = await runScenario();
    end = (await admin.query<{ lsn: string }>('SELECT pg_current_wal_lsn()::text AS lsn')).rows[0].lsn;
  } finally {
    await admin.end();
  }

  const c = await connect(db);
  let rows: WalRow[];
  try {
    rows = await walWrites(c, start, end);
  } finally {
    await c.end();
  }

  const tables = new Map<
    string,
    { insert: number; update: number; hot: number; delete: number; indexEntries: number; walBytes: number }
  >();
  const indexes = new Map<string, { table: string; entries: number }>();
  for (const r of rows) {
    const t = tables.get(r.table) ?? { insert: 0, update: 0, hot: 0, delete: 0, indexEntries: 0, walBytes: 0 };
    tables.set(r.table, t);
    t.walBytes += r.bytes;
    const k = r.kind === 'table' ? heapKind(r.rmgr, r.type) : null;
    if (k) t[k] += r.n;
    if (r.kind === 'index' && r.rmgr === 'Btree' && r.type === 'INSERT_LEAF') {
      t.indexEntries += r.n;
      const i = indexes.get(r.relation) ?? { table: r.table, entries: 0 };
      i.entries += r.n;
      indexes.set(r.relation, i);
    }
  }
  const total = { rowVersions: 0, nonHotUpdates: 0, indexEntries: 0, walBytes: 0 };
  const perTable = [...tables]
    .map(([table, t]) => {
      total.rowVersions += t.insert + t.update + t.hot;
      total.nonHotUpdates += t.update;
      total.indexEntries += t.indexEntries;
      total.walBytes += t.walBytes;
      return {
        table,
        inserts: per(t.insert),
        updates: per(t.update),
        hotUpdates: per(t.hot),
        deletes: per(t.delete),
        indexEntries: per(t.indexEntries),
        walKB: per(t.walBytes / 1024),
      };
    })
    .filter((t) => t.inserts + t.updates + t.hotUpdates + t.deletes + t.indexEntries >= 0.01)
    .sort((a, b) => b.indexEntries - a.indexEntries || b.walKB - a.walKB);
  const perIndex = [...indexes]
    .map(([index, i]) => ({ index, table: i.table, entries: per(i.entries) }))
    .filter((i) => i.entries >= 0.01)
    .sort((a, b) => b.entries - a.entries);
  const result = {
    at: new Date().toISOString(),
    commit: gitCommit(),
    scenario: SCENARIO,
    messages: N,
    walRange: [start, end],
    perMessage: {
      rowVersions: per(total.rowVersions),
      nonHotUpdates: per(total.nonHotUpdates),
      indexEntries: per(total.indexEntries),
      walKB: per(total.walBytes / 1024),
    },
    perTable,
    perIndex,
  };

  console.log(
    `\nwrites per message (${SCENARIO}, ${N} messages, commit ${result.commit}; heap and B-tree WAL of this database):`,
  );
  console.table(perTable);
  console.table(perIndex);
  console.log(
    `per message: ${result.perMessage.rowVersions} row versions (${result.perMessage.nonHotUpdates} non-HOT updates), ` +
      `${result.perMessage.indexEntries} index entries, ${result.perMessage.walKB} KB of WAL`,
  );
  const dir = join(ROOT, 'bench', 'results');
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
  const file = join(dir, `write-cost-${result.at.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(result, null, 2));
  console.log(`written to ${file}`);

  const drop = await connect('postgres');
  try {
    await drop.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`);
  } finally {
    await drop.end();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});

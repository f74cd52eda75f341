import { Inject, Injectable } from '@nestjs/common';
import type { FastifyReply } from 'fastify';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { toPublicId } from '../common/ids';
import { Problem } from '../common/problem';
import { rows as sqlRows } from '../database/raw-rows';
import { BILLING_ZONE } from './validity';
import { Granularity, jakartaDayRange, jakartaMonth, jakartaToday, PG_PERIOD_FORMAT } from './billing-calendar';
import { AdminUsageRecordDto, UsageQueryDto } from './usage.dto';
import { streamRecords } from './usage-stream';

export interface UsageRange {
  from: string;
  to: string;
  start: Date;
  end: Date;
  granularity: Granularity;
}

interface UsageRow {
  tenant_id: string;
  period: string;
  messages: string;
  segments: string;
  amount: string;
  delivered: string;
  failed: string;
  refunded: string;
  expired: string;
  pending: string;
}

/** Rows fetched from the server-side cursor per round trip: the most the process holds at once. */
export const USAGE_FETCH_ROWS = 500;

/** Retry-After of the 429 when every export slot of this process is taken (a year's export takes ~2 s). */
export const USAGE_EXPORT_RETRY_AFTER_S = 5;

/** Message statuses that are not final yet; the API shows `submitting`/`uncertain` as queued/submitted. */
const OPEN_STATUSES = `('scheduled', 'queued', 'submitting', 'uncertain', 'submitted', 'pending')`;

/**
 * Usage records: per tenant and Asia/Jakarta day or month (docs/billing.md "Usage").
 *
 * Two sources, each aggregated by PostgreSQL and joined per (tenant, period):
 * - message counts (messages, segments, delivered, failed, expired, pending) are of the messages accepted
 *   in the period (`created_at`, the moment of their debit), by their status now;
 * - money (`amount`, `refunded`) is the ledger's debits and refunds booked in the period, so the sum of
 *   `amount` over any range equals minus the ledger's debit and refund rows in it.
 * The aggregation runs in the database and the result is read through a server-side cursor
 * (DECLARE … FETCH) in one REPEATABLE READ, READ ONLY transaction: a year of millions of messages never
 * enters this process, and the JSON or CSV rows that come out all see one snapshot.
 */
@Injectable()
export class UsageService {
  /** Exports streaming now in this process (each holds a pooled connection and a transaction). */
  private exporting = 0;
  /** How long an export waits for a client that does not drain its buffer (USAGE_EXPORT_STALL_SECONDS). */
  private readonly stallMs: number;
  private readonly maxExports: number;

  constructor(
    private readonly dataSource: DataSource,
    private readonly clock: Clock,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.stallMs = config.usageExport.stallSeconds * 1000;
    this.maxExports = config.usageExport.concurrency;
  }

  /**
   * Streams the range's usage records to `res` (CSV or JSON, usage-stream.ts) in one of this process's export
   * slots (429 when all are taken), cut if the client stops reading for `stallMs`.
   */
  async export(
    res: FastifyReply,
    range: UsageRange,
    tenantId: string | null,
    opts: { csv: boolean; columns: readonly (keyof AdminUsageRecordDto)[] },
  ): Promise<void> {
    const release = this.claimExport();
    try {
      await streamRecords<AdminUsageRecordDto>(
        res,
        { ...opts, filename: `usage-${range.from}-${range.to}.csv`, stallMs: this.stallMs },
        this.records(range, tenantId),
      );
    } finally {
      release();
    }
  }

  /**
   * Takes one of this process's USAGE_EXPORT_CONCURRENCY export slots, or refuses with 429
   * `rate_limited` (Retry-After) when all are taken: stalled or slow exports can hold only that many
   * of the pool's connections. Call the returned function once the export has ended.
   */
  private claimExport(): () => void {
    if (this.exporting >= this.maxExports) {
      throw new Problem(
        'rate_limited',
        `${this.maxExports} usage exports are already running in this process; retry shortly`,
        undefined,
        { 'Retry-After': String(USAGE_EXPORT_RETRY_AFTER_S) },
      );
    }
    this.exporting++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.exporting--;
    };
  }

  /** Validates and completes the query (defaults: this Jakarta month up to today, per day). */
  resolve(q: UsageQueryDto): UsageRange {
    const now = this.clock.now();
    const granularity = q.granularity ?? 'day';
    const from = q.from ?? `${jakartaMonth(now)}-01`;
    const to = q.to ?? jakartaToday(now);
    const range = jakartaDayRange(from, to);
    if (!range) {
      const bad = jakartaDayRange(from, from) ? 'to' : 'from';
      throw new Problem('validation_failed', `${bad} is not a calendar date`, [
        { field: bad, message: 'must be a real calendar date YYYY-MM-DD' },
      ]);
    }
    if (range.end <= range.start) {
      throw new Problem('validation_failed', 'from must not be after to', [
        { field: 'from', message: 'must not be after to' },
      ]);
    }
    if (from < '2000-01-01' || to > '2999-12-31') {
      throw new Problem('validation_failed', 'dates must be between 2000-01-01 and 2999-12-31', [
        { field: from < '2000-01-01' ? 'from' : 'to', message: 'out of range' },
      ]);
    }
    return { from, to, ...range, granularity };
  }

  /**
   * Yields usage records in batches of at most USAGE_FETCH_ROWS, ordered by tenant then period.
   * `tenantId` null: every tenant. Stopping the iteration early (client gone) closes the cursor and
   * returns the connection.
   */
  async *records(range: UsageRange, tenantId: string | null): AsyncGenerator<AdminUsageRecordDto[]> {
    const period = (col: string) =>
      `to_char(${col} AT TIME ZONE '${BILLING_ZONE}', '${PG_PERIOD_FORMAT[range.granularity]}')`;
    const tenantFilter = tenantId === null ? '' : 'AND tenant_id = $3';
    const params: unknown[] = [range.start, range.end];
    if (tenantId !== null) params.push(tenantId);
    const sql = `
      WITH msg AS (
        SELECT tenant_id, ${period('created_at')} AS period,
               count(*) AS messages,
               sum(segments) AS segments,
               count(*) FILTER (WHERE status = 'delivered') AS delivered,
               count(*) FILTER (WHERE status = 'failed') AS failed,
               count(*) FILTER (WHERE status = 'expired') AS expired,
               count(*) FILTER (WHERE status IN ${OPEN_STATUSES}) AS pending
          FROM messages
         WHERE created_at >= $1 AND created_at < $2 ${tenantFilter}
         GROUP BY 1, 2
      ), money AS (
        SELECT tenant_id, ${period('created_at')} AS period,
               -sum(amount) AS amount,
               count(*) FILTER (WHERE kind = 'refund') AS refunded
          FROM ledger_entries
         WHERE kind IN ('debit', 'refund') AND created_at >= $1 AND created_at < $2 ${tenantFilter}
         GROUP BY 1, 2
      )
      SELECT tenant_id, period,
             coalesce(msg.messages, 0) AS messages, coalesce(msg.segments, 0) AS segments,
             coalesce(money.amount, 0) AS amount,
             coalesce(msg.delivered, 0) AS delivered, coalesce(msg.failed, 0) AS failed,
             coalesce(money.refunded, 0) AS refunded,
             coalesce(msg.expired, 0) AS expired, coalesce(msg.pending, 0) AS pending
        FROM msg FULL JOIN money USING (tenant_id, period)
       ORDER BY tenant_id, period`;

    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    let open = false;
    try {
      await runner.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      open = true;
      await runner.query(`DECLARE usage_records NO SCROLL CURSOR FOR ${sql}`, params);
      for (;;) {
        const rows = await sqlRows<UsageRow>(runner.manager, `FETCH ${USAGE_FETCH_ROWS} FROM usage_records`);
        if (rows.length === 0) break;
        yield rows.map(toRecord);
        if (rows.length < USAGE_FETCH_ROWS) break;
      }
      await runner.query('COMMIT');
      open = false;
    } finally {
      // Also reached when the consumer stops early (generator return) or a query failed.
      if (open) await runner.query('ROLLBACK').catch(() => undefined);
      await runner.release();
    }
  }
}

function toRecord(r: UsageRow): AdminUsageRecordDto {
  return {
    tenantId: toPublicId('tenant', r.tenant_id),
    period: r.period,
    messages: Number(r.messages),
    segments: Number(r.segments),
    amount: Number(r.amount),
    delivered: Number(r.delivered),
    failed: Number(r.failed),
    refunded: Number(r.refunded),
    expired: Number(r.expired),
    pending: Number(r.pending),
  };
}

export const USAGE_COLUMNS = [
  'period',
  'messages',
  'segments',
  'amount',
  'delivered',
  'failed',
  'refunded',
  'expired',
  'pending',
] as const;

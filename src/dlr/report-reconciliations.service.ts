import { Injectable } from '@nestjs/common';
import { DateTime } from 'luxon';
import { DataSource } from 'typeorm';
import { fromPublicId, toPublicId } from '../common/ids';
import { cursorField, decodeCursor, encodeCursor, ListQueryDto, Page } from '../common/pagination';
import { notFound, Problem } from '../common/problem';
import { ProviderError } from '../provider/client';
import { ProviderAccountsService } from '../provider/provider-accounts.service';
import { ReportMismatches } from './report-match';
import { ProviderReportDto, ReconciliationDto, ReconciliationSummaryDto } from './report-reconciliations.dto';
import {
  Reconciliation,
  ReconcileTrigger,
  ReportNotReturned,
  ReportReconcilerService,
} from './report-reconciler.service';

const ZONE = 'Asia/Jakarta';

interface ReconciliationRow {
  id: string;
  provider_account_id: string;
  start_day: string;
  end_day: string;
  trigger: ReconcileTrigger;
  created_at: Date;
  listed: number;
  applied: number;
  unknown: number;
  missing: number;
  status_differs: number;
  more_parts: number;
  mismatches?: ReportMismatches;
}

const SUMMARY_COLUMNS = `id, provider_account_id, start_day::text AS start_day, end_day::text AS end_day, trigger,
  created_at, listed, applied, unknown, missing, status_differs, more_parts`;

/** The admin routes of the report reconciliation: run one now (on demand), and read the kept ones. */
@Injectable()
export class ReportReconciliationsService {
  constructor(
    private readonly reconciler: ReportReconcilerService,
    private readonly accounts: ProviderAccountsService,
    private readonly dataSource: DataSource,
  ) {}

  /** Reconciles the account's Jakarta days `start`..`end` now: fills, compares, keeps, and returns the summary. */
  async report(publicId: string, start: string, end: string): Promise<ProviderReportDto> {
    const from = DateTime.fromISO(start, { zone: ZONE });
    const to = DateTime.fromISO(end, { zone: ZONE });
    if (!from.isValid || !to.isValid || to < from || to.diff(from, 'days').days > 31) {
      throw new Problem(
        'validation_failed',
        'start and end must be valid dates, end not before start, at most 31 days apart',
      );
    }
    const account = await this.accounts.findEntity(publicId);
    const done = await this.reconciler.reconcile(account.id, start, end, 'on_demand').catch(answerProblem);
    return {
      ...reconciliationDto(done.reconciliation),
      header: done.header,
      providerRows: done.rows.length,
      rows: done.rows.slice(0, 500),
    };
  }

  /** The account's kept reconciliations (daily and on demand), newest first, without their rows. */
  async list(publicId: string, q: ListQueryDto): Promise<Page<ReconciliationSummaryDto>> {
    const account = await this.accounts.findEntity(publicId);
    const limit = q.limit ?? 50;
    // Each field is checked before it can reach PostgreSQL (a forged cursor is a 400, never a 500).
    const cursor = decodeCursor<{ t: string; id: string }>(q.cursor, { t: cursorField.time, id: cursorField.uuid });
    const params: unknown[] = [account.id, limit + 1];
    if (cursor) params.push(new Date(cursor.t), cursor.id);
    const rows: ReconciliationRow[] = await this.dataSource.query(
      `SELECT ${SUMMARY_COLUMNS} FROM report_reconciliations
        WHERE provider_account_id = $1 ${cursor ? 'AND (created_at, id) < ($3, $4)' : ''}
        ORDER BY created_at DESC, id DESC LIMIT $2`,
      params,
    );
    const page = rows.slice(0, limit);
    const last = page[page.length - 1];
    return {
      data: page.map((r) => summaryDto(fromRow(r))),
      nextCursor: rows.length > limit ? encodeCursor({ t: last.created_at.toISOString(), id: last.id }) : null,
    };
  }

  /** One kept reconciliation with its mismatch rows. */
  async get(publicId: string, reconciliationId: string): Promise<ReconciliationDto> {
    const account = await this.accounts.findEntity(publicId);
    const id = fromPublicId('reconciliation', reconciliationId);
    const [row]: ReconciliationRow[] = id
      ? await this.dataSource.query(
          `SELECT ${SUMMARY_COLUMNS}, mismatches FROM report_reconciliations WHERE id = $1 AND provider_account_id = $2`,
          [id, account.id],
        )
      : [];
    if (!row) throw notFound('Reconciliation');
    return reconciliationDto(fromRow(row));
  }
}

function fromRow(r: ReconciliationRow): Reconciliation {
  return {
    id: r.id,
    providerAccountId: r.provider_account_id,
    start: r.start_day,
    end: r.end_day,
    trigger: r.trigger,
    createdAt: r.created_at,
    counts: {
      listed: r.listed,
      applied: r.applied,
      unknown: r.unknown,
      missing: r.missing,
      statusDiffers: r.status_differs,
      moreParts: r.more_parts,
    },
    mismatches: r.mismatches ?? { unknown: [], statusDiffers: [], moreParts: [], missing: [] },
  };
}

function summaryDto(r: Reconciliation): ReconciliationSummaryDto {
  return {
    id: toPublicId('reconciliation', r.id),
    providerAccountId: toPublicId('providerAccount', r.providerAccountId),
    start: r.start,
    end: r.end,
    trigger: r.trigger,
    createdAt: r.createdAt,
    counts: r.counts,
  };
}

function reconciliationDto(r: Reconciliation): ReconciliationDto {
  const m = r.mismatches;
  const message = <T extends { messageId: string }>(x: T): T => ({
    ...x,
    messageId: toPublicId('message', x.messageId),
  });
  return {
    ...summaryDto(r),
    // Kept as JSON: a time comes back as its ISO string.
    unknown: m.unknown.map((u) => ({ ...u, sentAt: u.sentAt === null ? null : new Date(u.sentAt) })),
    statusDiffers: m.statusDiffers.map(message),
    moreParts: m.moreParts.map(message),
    missing: m.missing.map(message),
  };
}

/**
 * The provider gave no answer (refused, timed out, connection lost: a thrown ProviderError): a 502
 * `provider_unavailable` with the error's redacted code, never a 500. An answer that is not a report: 409.
 */
function answerProblem(e: unknown): never {
  if (e instanceof ProviderError) {
    throw new Problem('provider_unavailable', `The provider could not be reached (${e.code})`);
  }
  if (e instanceof ReportNotReturned)
    throw new Problem('conflict', `The provider did not return a report: ${e.reason}`);
  throw e;
}

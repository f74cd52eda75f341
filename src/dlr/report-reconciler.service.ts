import type { ReconciliationCountsDto } from './report-reconciliations.dto';
import { Injectable, Logger } from '@nestjs/common';
import { DateTime } from 'luxon';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { uuidv7 } from '../common/ids';
import { MessageFollowUpService } from '../messaging/message-follow-up.service';
import type { ProviderClient } from '../provider/client';
import { ProviderClients } from '../provider/provider-clients.service';
import { DeliveryReportsService } from './delivery-reports.service';
import { reconcileMismatches } from './report-metrics';
import { compareReport, finalCode, ReportMismatches, reportedSends, unlistedNearEdges } from './report-match';

export type ReconcileTrigger = 'daily' | 'on_demand';

/** Mismatch rows kept (and returned) per kind; the counts are always complete. */
export const MISMATCH_ROWS = 1000;

/** The counts of one run: the shape the admin routes return (`ReconciliationCountsDto`). */
export type ReconciliationCounts = ReconciliationCountsDto;

/** One kept run of the reconciliation (a `report_reconciliations` row; ids are the rows' uuids). */
export interface Reconciliation {
  id: string;
  providerAccountId: string;
  /** Asia/Jakarta days, `YYYY-MM-DD`, both inclusive. */
  start: string;
  end: string;
  trigger: ReconcileTrigger;
  createdAt: Date;
  counts: ReconciliationCounts;
  /** The first MISMATCH_ROWS of each kind. */
  mismatches: ReportMismatches;
}

/** The provider's answer was not a report (an error page, a sentence): nothing was reconciled or kept. */
export class ReportNotReturned extends Error {
  constructor(readonly reason: string) {
    super(`reports_post.php: ${reason}`);
  }
}

const JAKARTA = 'Asia/Jakarta';

/**
 * The one reconciliation of the provider's report (reports_post.php) against our records, for the daily job
 * (ReportPollerService, one Jakarta day at a time) and the on-demand admin route (any range): final codes of
 * messages still open here go through the report path (source 'report': stored raw, applied like a
 * callback), then the report is compared with our messages (report-match.ts `compareReport`), and the
 * summary is kept in `report_reconciliations` (this module's table) and counted in metrics.
 */
@Injectable()
export class ReportReconcilerService {
  private readonly logger = new Logger(ReportReconcilerService.name);

  constructor(
    private readonly messages: MessageFollowUpService,
    private readonly reports: DeliveryReportsService,
    private readonly clients: ProviderClients,
    private readonly dataSource: DataSource,
    private readonly clock: Clock,
  ) {}

  /**
   * Reconciles one provider account's Jakarta days `start`..`end` (`YYYY-MM-DD`, inclusive). Returns the kept
   * summary and the provider's file as read (not kept). Throws a ProviderError when the provider did not
   * answer, ReportNotReturned when its answer was not a report: then nothing is kept. The same for the day before
   * or after the range, downloaded only when one of our sends near that edge is not in the range's file.
   */
  async reconcile(
    accountId: string,
    start: string,
    end: string,
    trigger: ReconcileTrigger,
  ): Promise<{ reconciliation: Reconciliation; header: string[]; rows: Array<Record<string, string>> }> {
    const first = DateTime.fromISO(start, { zone: JAKARTA });
    const last = DateTime.fromISO(end, { zone: JAKARTA });
    const found = await this.clients.forAccount(accountId);
    if (!found) throw new Error('provider account not found');
    const report = await download(found.client, first, last);
    // One row per id (the last, should the provider list one twice).
    const sends = [...new Map(reportedSends(report.rows).map((s) => [s.providerMessageId, s])).values()];
    const before = await this.messages.reportFacts(
      accountId,
      sends.map((s) => s.providerMessageId),
    );
    const filled: string[] = [];
    for (const send of sends) {
      const code = finalCode(send.statusCode);
      if (code === undefined || !before.get(send.providerMessageId)?.open) continue;
      await this.reports.receive(
        accountId,
        { sessionId: send.providerMessageId, code, text: send.statusText ?? null, msisdn: send.msisdn },
        'report',
      );
      filled.push(send.providerMessageId);
    }
    // Compared as they stand now: a status just filled agrees with the provider (unless the report was not applied).
    const facts = new Map([...before, ...(await this.messages.reportFacts(accountId, filled))]);
    const from = first.toJSDate();
    const to = last.plus({ days: 1 }).toJSDate();
    const submitted = await this.messages.submittedBetween(accountId, from, to);
    // Our last (first) sends of the range that its file does not list may be in the next (previous) day's: the
    // provider dates them by its own clock, a few minutes off ours. They are `missing` only if that day's file
    // does not list them either; it is downloaded only when there is such a send (docs/dlr.md "Missing near midnight").
    const near = unlistedNearEdges(submitted, new Set(sends.map((s) => s.providerMessageId)), from, to);
    const filedNextDoor = new Set<string>();
    for (const [day, edge] of [
      [first.minus({ days: 1 }), near.before],
      [last.plus({ days: 1 }), near.after],
    ] as const) {
      if (edge.length === 0) continue;
      const adjacent = new Set(
        reportedSends((await download(found.client, day, day)).rows).map((s) => s.providerMessageId),
      );
      for (const m of edge) if (adjacent.has(m.providerMessageId)) filedNextDoor.add(m.providerMessageId);
    }
    const all = compareReport(
      sends,
      facts,
      submitted.filter((m) => !filedNextDoor.has(m.providerMessageId)),
    );
    const counts: ReconciliationCounts = {
      listed: sends.length,
      applied: filled.length,
      unknown: all.unknown.length,
      missing: all.missing.length,
      statusDiffers: all.statusDiffers.length,
      moreParts: all.moreParts.length,
    };
    const reconciliation: Reconciliation = {
      id: uuidv7(),
      providerAccountId: accountId,
      start,
      end,
      trigger,
      createdAt: this.clock.now(),
      counts,
      mismatches: {
        unknown: all.unknown.slice(0, MISMATCH_ROWS),
        statusDiffers: all.statusDiffers.slice(0, MISMATCH_ROWS),
        moreParts: all.moreParts.slice(0, MISMATCH_ROWS),
        missing: all.missing.slice(0, MISMATCH_ROWS),
      },
    };
    await this.keep(reconciliation);
    for (const [kind, n] of [
      ['unknown', counts.unknown],
      ['status_differs', counts.statusDiffers],
      ['more_parts', counts.moreParts],
      ['missing', counts.missing],
    ] as const)
      if (n > 0) reconcileMismatches.inc({ kind, trigger }, n);
    if (counts.unknown || counts.missing || counts.statusDiffers || counts.moreParts)
      this.logger.warn({ accountId, start, end, trigger, ...counts }, 'provider report differs from our records');
    return { reconciliation, header: report.header, rows: report.rows };
  }

  private async keep(r: Reconciliation): Promise<void> {
    const c = r.counts;
    await this.dataSource.query(
      `INSERT INTO report_reconciliations (id, provider_account_id, start_day, end_day, trigger, created_at,
                                           listed, applied, unknown, missing, status_differs, more_parts, mismatches)
       VALUES ($1, $2, $3::date, $4::date, $5, $6, $7, $8, $9, $10, $11, $12, $13::jsonb)`,
      [
        r.id,
        r.providerAccountId,
        r.start,
        r.end,
        r.trigger,
        r.createdAt,
        c.listed,
        c.applied,
        c.unknown,
        c.missing,
        c.statusDiffers,
        c.moreParts,
        JSON.stringify(r.mismatches),
      ],
    );
  }
}

/**
 * reports_post.php for the Jakarta days `first`..`last` (noon of each: the client writes the calendar day,
 * whatever the time). A ProviderError when the provider did not answer, ReportNotReturned when its answer was
 * not a report.
 */
async function download(client: ProviderClient, first: DateTime, last: DateTime) {
  const report = await client.downloadReport(first.plus({ hours: 12 }).toJSDate(), last.plus({ hours: 12 }).toJSDate());
  if (report.kind !== 'report') throw new ReportNotReturned(report.reason.slice(0, 200));
  return report;
}

import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { PeriodicJob } from '../common/periodic-job';
import { Clock } from '../common/clock';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { DeliveryReportsService } from './delivery-reports.service';
import { reportsReapplied } from './report-metrics';

const INTERVAL_NAME = 'dlr.report-reapply';
/**
 * Younger reports are left to the request that stored them (it applies them before answering); the
 * sweep would only repeat its work (harmlessly: both apply under the same advisory key).
 */
const MIN_AGE_MS = 10_000;
/**
 * Older ones are left alone: a message without a final report expires 72 h after submission, and an
 * unknown id that has not turned up by then never will. Bounds what every sweep reads again.
 */
const MAX_AGE_MS = 72 * 3_600_000;
/** Reports per page (one transaction each), and pages per sweep: the work of one tick is bounded. */
const PAGE = 500;
const MAX_PAGES = 20;

/**
 * Applies stored delivery reports that are still unapplied (not flagged): those whose apply failed
 * when they arrived (a database fault after the raw row was committed), through the same code as the
 * callback (`DeliveryReportsService.applyStoredFor`), so the provider never has to call again.
 *
 * Reports of an id no message carries yet stay unapplied: the dispatcher applies an early report when
 * it records the id (`applyPendingFor`); one that never matches ages out after 72 h. So that they cannot
 * keep the sweep busy, it walks the table with a cursor (keyset on seq) that only moves forward: each
 * report is looked at once per pass; a pass ends at the newest report (the cursor starts again at the
 * beginning on the next tick); one tick reads at most MAX_PAGES pages and continues where it stopped.
 * Every DLR_REAPPLY_SECONDS (default 30), on an @nestjs/schedule interval; several processes may sweep
 * at once (the apply is serialised per report by its advisory key, and reads again what is still unapplied).
 */
@Injectable()
export class ReportReapplyService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ReportReapplyService.name);
  private readonly intervalMs: number;
  private readonly nodeEnv: string;
  private cursor = 0;
  private readonly job: PeriodicJob;

  constructor(
    private readonly reports: DeliveryReportsService,
    scheduler: SchedulerRegistry,
    private readonly clock: Clock,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.job = new PeriodicJob(
      scheduler,
      INTERVAL_NAME,
      () => this.reapplyDue(),
      (e) => this.logger.warn({ err: e.message }, 'delivery report sweep failed'),
    );
    this.intervalMs = config.dlr.reapplySeconds * 1000;
    this.nodeEnv = config.nodeEnv;
  }

  onApplicationBootstrap(): void {
    if (this.nodeEnv === 'test') return; // tests call reapplyDue(), or start()
    this.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  start(tickMs = this.intervalMs): void {
    this.job.start(tickMs);
  }

  /** Stops the interval and waits for a sweep in progress. */
  async stop(): Promise<void> {
    await this.job.stop();
  }

  /**
   * One sweep: up to MAX_PAGES pages of unapplied reports received between 72 h and 10 s ago, from the
   * cursor on. Returns how many reports it looked at, applied, and failed to apply (logged and counted
   * by the apply; they are looked at again on the next pass).
   */
  async reapplyDue(): Promise<{ examined: number; applied: number; failed: number }> {
    const now = this.clock.now().getTime();
    const from = new Date(now - MAX_AGE_MS);
    const to = new Date(now - MIN_AGE_MS);
    const totals = { examined: 0, applied: 0, failed: 0 };
    for (let page = 0; page < MAX_PAGES; page++) {
      const due = await this.reports.unappliedAfter(this.cursor, from, to, PAGE);
      if (due.length === 0) {
        this.cursor = 0; // end of the pass
        break;
      }
      const { applied, failed } = await this.reports.applyStoredFor(
        due.map((d) => d.key),
        'sweep',
      );
      totals.examined += due.length;
      totals.applied += applied;
      totals.failed += failed;
      this.cursor = due[due.length - 1].seq;
      if (due.length < PAGE) {
        this.cursor = 0;
        break;
      }
    }
    if (totals.applied > 0) {
      reportsReapplied.inc(totals.applied);
      this.logger.log(totals, 'stored delivery reports applied by the sweep');
    }
    return totals;
  }
}

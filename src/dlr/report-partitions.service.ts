import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { PeriodicJob } from '../common/periodic-job';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { maintainMonths, MaintenanceResult, PartitionGroup } from '../database/monthly-partitions';

/** Hourly, as the messages' partitions (months are created three ahead). */
const REPORT_PARTITION_MAINTENANCE_MS = 3_600_000;

/**
 * Raw delivery reports by month of arrival. A report may be for no message at all (an unknown id), so
 * it is filed by received_at, not by its message; its message_id is a plain column (no foreign key: the
 * message's month may be dropped while this report's month is not, and the other way round).
 */
export const REPORT_PARTITIONS: PartitionGroup = {
  name: 'delivery_reports',
  tables: [{ table: 'delivery_reports', key: { kind: 'timestamptz', column: 'received_at' } }],
};

/**
 * Keeps the monthly partitions of `delivery_reports` (owner: dlr): creates last month to three months
 * ahead by the injected Clock, and drops months older than RETENTION_MONTHS. Unapplied reports older than
 * 72 h are never looked at again (the re-apply sweep's window), so nothing live is dropped.
 */
@Injectable()
export class ReportPartitionsService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ReportPartitionsService.name);
  private readonly job: PeriodicJob;
  private readonly retentionMonths: number | null;
  private readonly nodeEnv: string;

  constructor(
    private readonly dataSource: DataSource,
    private readonly clock: Clock,
    scheduler: SchedulerRegistry,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.retentionMonths = config.retentionMonths;
    this.nodeEnv = config.nodeEnv;
    this.job = new PeriodicJob(
      scheduler,
      'dlr.partitions',
      () => this.maintain(),
      (e) => this.logger.warn({ err: e.message }, 'delivery report partition maintenance failed'),
    );
  }

  onApplicationBootstrap(): void {
    if (this.nodeEnv === 'test') return; // tests call maintain()
    this.job.start(REPORT_PARTITION_MAINTENANCE_MS);
    void this.job.runNow();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.job.stop();
  }

  maintain(): Promise<MaintenanceResult> {
    return maintainMonths(this.dataSource, REPORT_PARTITIONS, this.clock.now(), this.retentionMonths, this.logger);
  }
}

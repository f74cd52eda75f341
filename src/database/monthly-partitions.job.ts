import { BeforeApplicationShutdown, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { PeriodicJob } from '../common/periodic-job';
import type { AppConfig } from '../config/config';
import { maintainMonths, MaintenanceResult, PartitionGroup } from './monthly-partitions';

/** Hourly: months are created three ahead, so a missed hour or a day of downtime changes nothing. */
export const PARTITION_MAINTENANCE_MS = 3_600_000;

/**
 * The hourly job that keeps one table group's monthly partitions: creates last month to three months ahead by
 * the injected Clock and drops months older than RETENTION_MONTHS. Each owner module runs it for its own
 * tables (a subclass that names the group); tests call `maintain()` themselves.
 */
export abstract class MonthlyPartitionsJob implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly job: PeriodicJob;
  private readonly retentionMonths: number | null;
  private readonly nodeEnv: string;

  protected constructor(
    private readonly group: PartitionGroup,
    jobName: string,
    private readonly logger: Logger,
    private readonly dataSource: DataSource,
    private readonly clock: Clock,
    scheduler: SchedulerRegistry,
    config: AppConfig,
  ) {
    this.retentionMonths = config.retentionMonths;
    this.nodeEnv = config.nodeEnv;
    this.job = new PeriodicJob(
      scheduler,
      jobName,
      () => this.maintain(),
      (e) => this.logger.warn({ err: e.message, group: group.name }, 'partition maintenance failed'),
    );
  }

  onApplicationBootstrap(): void {
    if (this.nodeEnv === 'test') return; // tests call maintain()
    this.job.start(PARTITION_MAINTENANCE_MS);
    void this.job.runNow();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.job.stop();
  }

  maintain(): Promise<MaintenanceResult> {
    return maintainMonths(this.dataSource, this.group, this.clock.now(), this.retentionMonths, this.logger);
  }
}

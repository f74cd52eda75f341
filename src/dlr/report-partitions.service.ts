import { Inject, Injectable, Logger } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PartitionGroup } from '../database/monthly-partitions';
import { MonthlyPartitionsJob } from '../database/monthly-partitions.job';

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
export class ReportPartitionsService extends MonthlyPartitionsJob {
  constructor(
    dataSource: DataSource,
    clock: Clock,
    scheduler: SchedulerRegistry,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    super(
      REPORT_PARTITIONS,
      'dlr.partitions',
      new Logger(ReportPartitionsService.name),
      dataSource,
      clock,
      scheduler,
      config,
    );
  }
}

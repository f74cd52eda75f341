import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { PeriodicJob } from '../common/periodic-job';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { maintainMonths, MaintenanceResult, PartitionGroup } from '../database/monthly-partitions';

/** Hourly: months are created three ahead, so a missed hour or a day of downtime changes nothing. */
export const PARTITION_MAINTENANCE_MS = 3_600_000;

/**
 * Messaging's two partitioned tables, one month of both at a time: message_events is partitioned by
 * message_id on the same bounds as messages (an event lives in its message's month), so its foreign key
 * to messages stays and the two are dropped together (events first).
 */
export const MESSAGE_PARTITIONS: PartitionGroup = {
  name: 'messages',
  tables: [
    {
      table: 'messages',
      key: { kind: 'uuidv7', column: 'id' },
      // A provider message id is unique per account within a month of messages (docs/data-model.md
      // "Partitioning": why that is enough).
      localIndexes: (p) => [
        `CREATE UNIQUE INDEX ${p}_provider_id_uq ON ${p} (provider_account_id, provider_message_id)
           WHERE provider_message_id IS NOT NULL`,
      ],
      // Never drop a message that can still change (and so still move money): only final ones go.
      keepWhile: `status NOT IN ('delivered', 'failed', 'canceled', 'expired')`,
    },
    { table: 'message_events', key: { kind: 'uuidv7', column: 'message_id' } },
  ],
};

/**
 * Keeps the monthly partitions of `messages` and `message_events` (owner: messaging): creates last month
 * to three months ahead by the injected Clock, and drops months older than RETENTION_MONTHS. The ledger
 * keeps its rows of dropped messages (billing's books never depend on a message row still existing).
 */
@Injectable()
export class MessagePartitionsService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(MessagePartitionsService.name);
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
      'messaging.partitions',
      () => this.maintain(),
      (e) => this.logger.warn({ err: e.message }, 'message partition maintenance failed'),
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
    return maintainMonths(this.dataSource, MESSAGE_PARTITIONS, this.clock.now(), this.retentionMonths, this.logger);
  }
}

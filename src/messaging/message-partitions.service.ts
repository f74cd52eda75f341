import { Inject, Injectable, Logger } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { PartitionGroup } from '../database/monthly-partitions';
import { MonthlyPartitionsJob } from '../database/monthly-partitions.job';

/**
 * Messaging's two partitioned tables, one month of both at a time: message_events is partitioned by
 * message_id on the same bounds as messages (an event lives in its message's month), so the two are
 * dropped together (events first). Its message_id is checked at insert by a statement trigger, not a
 * foreign key (docs/data-model.md "Partitioning").
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
export class MessagePartitionsService extends MonthlyPartitionsJob {
  constructor(
    dataSource: DataSource,
    clock: Clock,
    scheduler: SchedulerRegistry,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    super(
      MESSAGE_PARTITIONS,
      'messaging.partitions',
      new Logger(MessagePartitionsService.name),
      dataSource,
      clock,
      scheduler,
      config,
    );
  }
}

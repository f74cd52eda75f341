import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { parseRetention } from './config/config';
import { dataSourceOptions } from './database/data-source';
import { maintainMonths } from './database/monthly-partitions';
import { REPORT_PARTITIONS } from './dlr/report-partitions.service';
import { MESSAGE_PARTITIONS } from './messaging/message-partitions.service';

/**
 * `npm run partitions:maintain`: the gateway's hourly partition maintenance (each owner's months ahead,
 * RETENTION_MONTHS' drops), run once against DATABASE_URL. For deployments where the gateway's role
 * owns no table (docs/operations.md): run this as the migration role, e.g. daily from cron.
 * Exit code 0 when every month was handled, 1 when one was skipped or the run failed.
 */
async function main(): Promise<number> {
  const url = process.env.DATABASE_URL;
  if (!url) {
    console.error('partitions:maintain: DATABASE_URL is not set');
    return 1;
  }
  const problems: string[] = [];
  const retentionMonths = parseRetention(process.env.RETENTION_MONTHS, problems);
  if (problems.length > 0) {
    console.error(`partitions:maintain: ${problems.join('; ')}`);
    return 1;
  }
  const dataSource = new DataSource({ ...dataSourceOptions(url, 2), migrations: [] });
  await dataSource.initialize();
  try {
    const logger = new Logger('partitions:maintain');
    let skipped = 0;
    for (const group of [MESSAGE_PARTITIONS, REPORT_PARTITIONS]) {
      const result = await maintainMonths(dataSource, group, new Date(), retentionMonths, logger);
      for (const p of result.created) console.log(`created ${p}`);
      for (const p of result.dropped) console.log(`dropped ${p}`);
      for (const why of result.skipped) console.log(`skipped ${why}`);
      skipped += result.skipped.length;
    }
    return skipped === 0 ? 0 : 1;
  } finally {
    await dataSource.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (err: Error) => {
    console.error(`partitions:maintain: ${err.message}`);
    process.exit(1);
  },
);

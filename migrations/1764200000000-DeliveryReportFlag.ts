import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A delivery report that cannot be trusted for its message (today: its `msisdn` is not the message's
 * number) is kept but flagged, and never applied (issue 7 item 6). `flagged` holds the reason.
 */
export class DeliveryReportFlag1764200000000 implements MigrationInterface {
  name = 'DeliveryReportFlag1764200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE delivery_reports ADD COLUMN flagged text NULL;
      CREATE INDEX delivery_reports_flagged_idx ON delivery_reports (received_at) WHERE flagged IS NOT NULL;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP INDEX delivery_reports_flagged_idx;
      ALTER TABLE delivery_reports DROP COLUMN flagged;
    `);
  }
}

import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Catch-up of the daily report reconciliation (docs/dlr.md "Daily reconciliation"; owner: src/dlr). A round
 * tries every open day of the last CATCH_UP_DAYS Jakarta days, not only the previous one; a day still open
 * after that is given up: `given_up_at` is stamped once (the process whose guarded UPDATE stamps it logs it),
 * `done_at` stays NULL, and nothing tries the day again (an admin can run it on demand). The partial index
 * keeps the open rows, the only ones the give-up statement looks for, cheap to find.
 */
export class ReportDaysGivenUp1765500000000 implements MigrationInterface {
  name = 'ReportDaysGivenUp1765500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE report_days ADD COLUMN given_up_at timestamptz NULL;
      CREATE INDEX report_days_open_idx ON report_days (day) WHERE done_at IS NULL AND given_up_at IS NULL;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP INDEX report_days_open_idx;
      ALTER TABLE report_days DROP COLUMN given_up_at;
    `);
  }
}

import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Daily reconciliation (issue 9, optional part): once per provider account and Asia/Jakarta day, the
 * previous day's reports_post.php is compared with our records (owner: src/dlr). The row is the claim:
 * inserted (or re-taken after `claimed_until`) by the process that does the day; `done_at` ends it.
 */
export class DailyReportReconcile1764800000001 implements MigrationInterface {
  name = 'DailyReportReconcile1764800000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE report_days (
        provider_account_id uuid NOT NULL REFERENCES provider_accounts (id),
        day date NOT NULL,
        claimed_until timestamptz NOT NULL,
        done_at timestamptz NULL,
        listed integer NULL,
        applied integer NULL,
        unknown integer NULL,
        missing integer NULL,
        last_error text NULL,
        PRIMARY KEY (provider_account_id, day)
      );
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE report_days`);
  }
}

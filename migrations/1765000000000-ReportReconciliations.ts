import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Kept reconciliation summaries (issue 9, docs/dlr.md "Reconciliation summaries"; owner: src/dlr): one row
 * per run of the report reconciliation, daily (the previous Jakarta day) or on demand (an admin's range).
 * Append-only history: a range may be reconciled any number of times, so this is not keyed by day
 * (`report_days` stays the daily job's claim). The counts are complete; `mismatches` holds the first
 * 1,000 rows of each kind (`unknown`, `statusDiffers`, `moreParts`, `missing`).
 */
export class ReportReconciliations1765000000000 implements MigrationInterface {
  name = 'ReportReconciliations1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE report_reconciliations (
        id uuid PRIMARY KEY,
        provider_account_id uuid NOT NULL REFERENCES provider_accounts (id),
        start_day date NOT NULL,
        end_day date NOT NULL,
        trigger text NOT NULL CHECK (trigger IN ('daily', 'on_demand')),
        created_at timestamptz NOT NULL,
        listed integer NOT NULL CHECK (listed >= 0),
        applied integer NOT NULL CHECK (applied >= 0),
        unknown integer NOT NULL CHECK (unknown >= 0),
        missing integer NOT NULL CHECK (missing >= 0),
        status_differs integer NOT NULL CHECK (status_differs >= 0),
        more_parts integer NOT NULL CHECK (more_parts >= 0),
        mismatches jsonb NOT NULL,
        CHECK (end_day >= start_day)
      );
      -- The admin list: an account's summaries, newest first.
      CREATE INDEX report_reconciliations_account_idx ON report_reconciliations (provider_account_id, created_at DESC, id DESC);
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE report_reconciliations`);
  }
}

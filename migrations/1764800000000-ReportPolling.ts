import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Issue 9: the report loop closes (docs/dlr.md "Report pipeline").
 * - `next_poll_at`: when a submitted message without a final report is polled with report.php next. NULL =
 *   never polled yet (first poll at `submitted_at` + DLR_POLL_AFTER_SECONDS). A poller moves it past a lease
 *   under FOR UPDATE SKIP LOCKED before it asks, so several gateway processes never poll one message at once.
 * - `polls`: report.php polls made for the message (the backoff exponent).
 * - `next_reconcile_at`: when an `uncertain` submit is looked up in reports_post.php next (NULL = not yet:
 *   first look RECONCILE_AFTER_SECONDS after the attempt); also the claim of that look.
 * - `reconcile_looks`, `first_absent_at`: looks that did not find it, and when the first of them was made.
 */
export class ReportPolling1764800000000 implements MigrationInterface {
  name = 'ReportPolling1764800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE messages
        ADD COLUMN next_poll_at timestamptz NULL,
        ADD COLUMN polls integer NOT NULL DEFAULT 0 CHECK (polls >= 0),
        ADD COLUMN next_reconcile_at timestamptz NULL,
        ADD COLUMN reconcile_looks integer NOT NULL DEFAULT 0 CHECK (reconcile_looks >= 0),
        ADD COLUMN first_absent_at timestamptz NULL;
      CREATE INDEX messages_poll_due_idx ON messages (provider_account_id, next_poll_at) WHERE status IN ('submitted', 'pending');
      CREATE INDEX messages_uncertain_idx ON messages (next_reconcile_at) WHERE status = 'uncertain';
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP INDEX messages_uncertain_idx;
      DROP INDEX messages_poll_due_idx;
      ALTER TABLE messages DROP COLUMN first_absent_at, DROP COLUMN reconcile_looks, DROP COLUMN next_reconcile_at,
        DROP COLUMN polls, DROP COLUMN next_poll_at;
    `);
  }
}

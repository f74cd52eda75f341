import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The dispatcher claims per provider account (each account's rate tokens and in-flight room, issue 7
 * item 3): its due work is read by account, oldest first. The old index on `next_attempt_at` alone made
 * an account without due work scan every other account's due rows on each claim; it had no other user.
 */
export class DispatchAccountIndex1764200000001 implements MigrationInterface {
  name = 'DispatchAccountIndex1764200000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE INDEX messages_dispatch_account_idx ON messages (provider_account_id, next_attempt_at)
        WHERE status IN ('queued', 'scheduled');
      DROP INDEX messages_dispatch_idx;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE INDEX messages_dispatch_idx ON messages (next_attempt_at) WHERE status IN ('queued', 'scheduled');
      DROP INDEX messages_dispatch_account_idx;
    `);
  }
}

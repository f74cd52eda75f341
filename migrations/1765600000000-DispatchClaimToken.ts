import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The dispatcher claim's token (docs/data-model.md "Message states", "A claim whose commit is in doubt"; owner:
 * src/messaging). Each claim writes a fresh uuid into the rows it moves to `submitting` and holds a
 * transaction-level advisory lock on it until it ends. When the claim's answer is lost (the connection dropped
 * while it committed), the dispatcher waits for that lock (the claim's transaction has ended, committed or not)
 * and puts the rows still `submitting` under its token back to `queued`: this process never sent them.
 *
 * `messages` is partitioned (1765100000000-Partitioning): the column is added to the parent and so to every
 * partition, present and future. Nullable, no default: adding it rewrites nothing; rows claimed before the
 * upgrade keep NULL. No index: the release looks among the `submitting` rows (`messages_lease_idx`).
 */
export class DispatchClaimToken1765600000000 implements MigrationInterface {
  name = 'DispatchClaimToken1765600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE messages ADD COLUMN claim_token uuid NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE messages DROP COLUMN claim_token`);
  }
}

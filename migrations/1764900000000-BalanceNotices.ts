import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Tenants' balance notices (issue 10, docs/billing.md "Notices"): the state that makes each one fire once.
 * - `low_balance_notified`: true from the balance write that took the balance below `low_balance_threshold`
 *   (and queued `balance.low`) until a balance write at or above it re-arms the notice. Written only by
 *   billing/ledger.service.ts, in the statement that writes `balance`.
 * - `expiring_notice_at`: the notice point (validUntil − 7 d or − 1 d) of the last `balance.expiring` queued.
 *   Notice points only move forward (validity is never shortened), so "a later notice point is due" is
 *   `expiring_notice_at IS NULL OR expiring_notice_at < point`. The event id (tenant, validUntil, notice) is
 *   the backstop: webhook_deliveries is unique per (tenant, event id).
 * Tenants already below their threshold at upgrade get one `balance.low` at their next balance change.
 */
export class BalanceNotices1764900000000 implements MigrationInterface {
  name = 'BalanceNotices1764900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE tenants
        ADD COLUMN low_balance_notified boolean NOT NULL DEFAULT false,
        ADD COLUMN expiring_notice_at timestamptz NULL;
      -- The notice job's scan: tenants with money whose validity ends soon.
      CREATE INDEX tenants_valid_until_idx ON tenants (valid_until) WHERE balance > 0;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP INDEX tenants_valid_until_idx;
      ALTER TABLE tenants DROP COLUMN expiring_notice_at, DROP COLUMN low_balance_notified;
    `);
  }
}

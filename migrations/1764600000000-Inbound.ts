import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Inbound SMS (docs/dlr.md): routing columns on `inbound_messages`, the per-account inbox poll
 * schedule (`inbox_polls`), and the index the "last sender to this number" routing rule reads.
 */
export class Inbound1764600000000 implements MigrationInterface {
  name = 'Inbound1764600000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      -- route: how tenant_id was chosen. 'account': the only tenant on the provider account;
      -- 'last_sender': of several tenants on the account, the last that sent to this number within 7 days;
      -- 'unrouted': nobody (visible to admins only). A routed row always names its tenant.
      ALTER TABLE inbound_messages
        ADD COLUMN tenant_id uuid NULL REFERENCES tenants (id),
        ADD COLUMN route text NOT NULL DEFAULT 'unrouted' CHECK (route IN ('account', 'last_sender', 'unrouted')),
        ADD COLUMN routed_at timestamptz NULL,
        ADD CONSTRAINT inbound_messages_route_ck CHECK ((tenant_id IS NULL) = (route = 'unrouted')),
        ADD CONSTRAINT inbound_messages_routed_at_ck CHECK ((tenant_id IS NULL) = (routed_at IS NULL));
      CREATE INDEX inbound_messages_tenant_idx ON inbound_messages (tenant_id, created_at DESC, id DESC)
        WHERE tenant_id IS NOT NULL;
      CREATE INDEX inbound_messages_created_idx ON inbound_messages (created_at DESC, id DESC);
      CREATE INDEX inbound_messages_unrouted_idx ON inbound_messages (created_at DESC, id DESC)
        WHERE tenant_id IS NULL;

      -- One row per provider account whose inbox is read. A poller claims due rows by moving
      -- next_poll_at past a lease and stamping claim_id (FOR UPDATE SKIP LOCKED), so several gateway
      -- processes never read the same inbox at once; only the claim's holder may write the result.
      CREATE TABLE inbox_polls (
        provider_account_id uuid PRIMARY KEY REFERENCES provider_accounts (id),
        next_poll_at timestamptz NOT NULL,
        claim_id uuid NULL,
        -- consecutive failed polls (backoff); 0 after a successful one
        failures integer NOT NULL DEFAULT 0 CHECK (failures >= 0),
        last_polled_at timestamptz NULL,
        last_success_at timestamptz NULL,
        last_error text NULL
      );
      CREATE INDEX inbox_polls_due_idx ON inbox_polls (next_poll_at);

      -- Routing reads "the last tenant that sent to this number on this account" (messaging's
      -- RecentRecipientsService); without it each inbound SMS on a shared account scans messages.
      CREATE INDEX messages_recipient_idx ON messages (provider_account_id, msisdn, created_at DESC);
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP INDEX messages_recipient_idx;
      DROP TABLE inbox_polls;
      DROP INDEX inbound_messages_unrouted_idx, inbound_messages_created_idx, inbound_messages_tenant_idx;
      ALTER TABLE inbound_messages
        DROP CONSTRAINT inbound_messages_routed_at_ck,
        DROP CONSTRAINT inbound_messages_route_ck,
        DROP COLUMN routed_at,
        DROP COLUMN route,
        DROP COLUMN tenant_id;
    `);
  }
}

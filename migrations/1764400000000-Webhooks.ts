import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Tenant webhooks (docs/webhooks.md): endpoint state (enabled, subscriptions, the previous secret
 * during a rotation), delivery leases with an owner, attempt outcomes and response excerpts, the
 * indexes the per-endpoint claim needs, and the durable cursor of the message-status relay.
 */
export class Webhooks1764400000000 implements MigrationInterface {
  name = 'Webhooks1764400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE webhook_endpoints
        ADD COLUMN events text[] NOT NULL
          DEFAULT ARRAY['message.status', 'message.received', 'balance.low', 'balance.expiring']
          CHECK (events <@ ARRAY['message.status', 'message.received', 'balance.low', 'balance.expiring']
                 AND cardinality(events) > 0),
        ADD COLUMN enabled boolean NOT NULL DEFAULT true,
        ADD COLUMN disabled_reason text NULL,
        ADD COLUMN disabled_at timestamptz NULL,
        -- during a rotation the previous secret signs too, until previous_secret_until
        ADD COLUMN previous_secret_enc text NULL,
        ADD COLUMN previous_secret_until timestamptz NULL,
        ADD COLUMN secret_rotated_at timestamptz NULL,
        -- round-robin among endpoints with due work: the claim takes the least recently served first
        ADD COLUMN claimed_at timestamptz NULL,
        ADD CONSTRAINT webhook_endpoints_previous_secret_ck
          CHECK ((previous_secret_enc IS NULL) = (previous_secret_until IS NULL));

      ALTER TABLE webhook_deliveries
        ADD COLUMN message_id uuid NULL,
        -- message.status: message_events.seq, increasing along one message's status changes
        ADD COLUMN sequence bigint NULL,
        ADD COLUMN event_at timestamptz NOT NULL DEFAULT now(),
        -- the claim that holds the lease; only it may record the outcome
        ADD COLUMN lease_owner uuid NULL,
        ADD CONSTRAINT webhook_deliveries_lease_ck
          CHECK ((status = 'delivering') = (lease_until IS NOT NULL AND lease_owner IS NOT NULL));
      CREATE INDEX webhook_deliveries_endpoint_due_idx ON webhook_deliveries (tenant_id, next_attempt_at, id)
        WHERE status = 'pending';
      CREATE INDEX webhook_deliveries_in_flight_idx ON webhook_deliveries (tenant_id, lease_until)
        WHERE status = 'delivering';

      ALTER TABLE webhook_attempts
        ADD COLUMN outcome text NOT NULL DEFAULT 'delivered'
          CHECK (outcome IN ('delivered', 'rejected', 'gone', 'timeout', 'unreachable', 'blocked')),
        ADD COLUMN response_excerpt text NULL CHECK (octet_length(response_excerpt) <= 4096);
      ALTER TABLE webhook_attempts ALTER COLUMN outcome DROP DEFAULT;

      -- Durable cursor of the relay that turns message_events rows into message.status deliveries.
      -- It starts at the current end: history before the webhook module existed is not replayed.
      CREATE TABLE webhook_relay_cursors (
        name text PRIMARY KEY,
        last_seq bigint NOT NULL CHECK (last_seq >= 0),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      INSERT INTO webhook_relay_cursors (name, last_seq)
        SELECT 'message_status', coalesce(max(seq), 0) FROM message_events;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TABLE webhook_relay_cursors;
      ALTER TABLE webhook_attempts DROP COLUMN response_excerpt, DROP COLUMN outcome;
      DROP INDEX webhook_deliveries_in_flight_idx;
      DROP INDEX webhook_deliveries_endpoint_due_idx;
      ALTER TABLE webhook_deliveries DROP CONSTRAINT webhook_deliveries_lease_ck,
        DROP COLUMN lease_owner, DROP COLUMN event_at, DROP COLUMN sequence, DROP COLUMN message_id;
      ALTER TABLE webhook_endpoints DROP CONSTRAINT webhook_endpoints_previous_secret_ck,
        DROP COLUMN claimed_at, DROP COLUMN secret_rotated_at, DROP COLUMN previous_secret_until,
        DROP COLUMN previous_secret_enc, DROP COLUMN disabled_at, DROP COLUMN disabled_reason,
        DROP COLUMN enabled, DROP COLUMN events;
    `);
  }
}

import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The whole data model of API.md. Invariants live in the schema (docs/data-model.md):
 * money is bigint, balances never negative, the ledger is append-only, one debit and at most
 * one refund per message, provider message ids unique per provider account.
 */
export class Initial1764000000000 implements MigrationInterface {
  name = 'Initial1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE admin_users (
        id uuid PRIMARY KEY,
        email text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
        password_hash text NOT NULL,
        role text NOT NULL CHECK (role IN ('admin', 'billing')),
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX admin_users_email_uq ON admin_users (lower(email));

      CREATE TABLE provider_accounts (
        id uuid PRIMARY KEY,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        base_url text NOT NULL CHECK (base_url ~ '^https?://'),
        username text NOT NULL,
        password_enc text NOT NULL,
        send_method text NOT NULL DEFAULT 'post' CHECK (send_method IN ('post', 'get')),
        dlr_token text NOT NULL,
        status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
        last_balance numeric NULL,
        last_balance_expires_at timestamptz NULL,
        last_balance_checked_at timestamptz NULL,
        -- set when the provider reported 50/51 for this account: dispatch holds work until then
        held_until timestamptz NULL,
        held_reason text NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX provider_accounts_dlr_token_uq ON provider_accounts (dlr_token);

      CREATE TABLE tenants (
        id uuid PRIMARY KEY,
        name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
        provider_account_id uuid NOT NULL REFERENCES provider_accounts (id),
        status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended')),
        price_per_segment bigint NOT NULL CHECK (price_per_segment >= 0),
        low_balance_threshold bigint NOT NULL DEFAULT 0 CHECK (low_balance_threshold >= 0),
        rate_limit_per_second integer NOT NULL DEFAULT 100 CHECK (rate_limit_per_second > 0),
        balance bigint NOT NULL DEFAULT 0 CHECK (balance >= 0 AND balance <= 9007199254740991),
        valid_until timestamptz NULL,
        grace_until timestamptz NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK ((valid_until IS NULL) = (grace_until IS NULL)),
        CHECK (grace_until IS NULL OR grace_until > valid_until)
      );
      CREATE INDEX tenants_provider_account_idx ON tenants (provider_account_id);
      CREATE INDEX tenants_grace_until_idx ON tenants (grace_until) WHERE balance > 0;

      CREATE TABLE api_keys (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants (id),
        name text NULL,
        prefix text NOT NULL,
        key_hash bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        revoked_at timestamptz NULL,
        last_used_at timestamptz NULL
      );
      CREATE UNIQUE INDEX api_keys_hash_uq ON api_keys (key_hash);
      CREATE INDEX api_keys_tenant_idx ON api_keys (tenant_id);

      CREATE TABLE messages (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants (id),
        provider_account_id uuid NOT NULL REFERENCES provider_accounts (id),
        msisdn text NOT NULL,
        text text NOT NULL,
        reference text NULL,
        -- public states plus two internal dispatch states:
        --   submitting: claimed by a worker, request possibly on the wire (lease_until bounds it);
        --   uncertain:  the provider may have the message; never resent, reconciled from reports.
        status text NOT NULL CHECK (status IN ('scheduled', 'queued', 'submitting', 'uncertain', 'submitted',
                                               'pending', 'delivered', 'failed', 'canceled', 'expired')),
        segments integer NOT NULL CHECK (segments > 0),
        encoding text NOT NULL CHECK (encoding IN ('GSM-7', 'UCS-2')),
        price bigint NOT NULL CHECK (price >= 0),
        provider_message_id text NULL,
        provider_status_code integer NULL,
        failure_reason text NULL,
        refunded boolean NOT NULL DEFAULT false,
        send_at timestamptz NULL,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        attempts integer NOT NULL DEFAULT 0,
        lease_until timestamptz NULL,
        last_error text NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        submitted_at timestamptz NULL,
        finalized_at timestamptz NULL
      );
      CREATE INDEX messages_tenant_created_idx ON messages (tenant_id, created_at DESC, id DESC);
      CREATE INDEX messages_dispatch_idx ON messages (next_attempt_at) WHERE status IN ('queued', 'scheduled');
      CREATE INDEX messages_lease_idx ON messages (lease_until) WHERE status = 'submitting';
      CREATE INDEX messages_open_idx ON messages (submitted_at) WHERE status IN ('submitted', 'pending', 'uncertain');
      CREATE UNIQUE INDEX messages_provider_id_uq ON messages (provider_account_id, provider_message_id)
        WHERE provider_message_id IS NOT NULL;

      CREATE TABLE ledger_entries (
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants (id),
        kind text NOT NULL CHECK (kind IN ('topup', 'debit', 'refund', 'expiry', 'adjustment')),
        amount bigint NOT NULL,
        balance_after bigint NOT NULL CHECK (balance_after >= 0),
        message_id uuid NULL REFERENCES messages (id),
        reference text NULL,
        valid_until timestamptz NULL,
        grace_until timestamptz NULL,
        created_by uuid NULL REFERENCES admin_users (id),
        created_at timestamptz NOT NULL DEFAULT now(),
        CHECK (CASE kind
                 WHEN 'topup' THEN amount > 0
                 WHEN 'refund' THEN amount > 0 AND message_id IS NOT NULL
                 WHEN 'debit' THEN amount <= 0 AND message_id IS NOT NULL
                 WHEN 'expiry' THEN amount < 0
                 ELSE amount <> 0 END)
      );
      CREATE INDEX ledger_tenant_seq_idx ON ledger_entries (tenant_id, seq DESC);
      CREATE UNIQUE INDEX ledger_one_debit_per_message_uq ON ledger_entries (message_id) WHERE kind = 'debit';
      CREATE UNIQUE INDEX ledger_one_refund_per_message_uq ON ledger_entries (message_id) WHERE kind = 'refund';
      -- Expiry rows carry the period they ended (grace_until). Not unique: credit that arrives after a
      -- period ended (a late refund) is forfeited by a further expiry row of the same period.
      CREATE INDEX ledger_expiry_period_idx ON ledger_entries (tenant_id, grace_until) WHERE kind = 'expiry';

      -- The ledger is append-only: history is corrected by new entries, never rewritten.
      CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION 'ledger_entries is append-only (% refused)', TG_OP;
      END $$;
      CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE OR DELETE ON ledger_entries
        FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();
      CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
        FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only();

      -- Every status change of a message, in order: the webhook outbox and the audit trail.
      CREATE TABLE message_events (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id uuid NOT NULL REFERENCES messages (id),
        tenant_id uuid NOT NULL REFERENCES tenants (id),
        status text NOT NULL,
        detail jsonb NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE INDEX message_events_message_idx ON message_events (message_id, seq);

      CREATE TABLE idempotency_keys (
        tenant_id uuid NOT NULL REFERENCES tenants (id),
        key text NOT NULL,
        request_hash text NOT NULL,
        state text NOT NULL CHECK (state IN ('in_progress', 'done')),
        response_status integer NULL,
        response_body jsonb NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        locked_until timestamptz NOT NULL,
        -- the claim's holder: only it may complete or release the key (a taken-over claim is not its own)
        owner uuid NOT NULL,
        PRIMARY KEY (tenant_id, key)
      );
      CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);

      -- Raw delivery reports as received (callback or poll), before and after matching.
      CREATE TABLE delivery_reports (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        provider_account_id uuid NOT NULL REFERENCES provider_accounts (id),
        provider_message_id text NOT NULL,
        code integer NOT NULL,
        text text NULL,
        msisdn text NULL,
        source text NOT NULL CHECK (source IN ('callback', 'poll', 'report')),
        message_id uuid NULL REFERENCES messages (id),
        received_at timestamptz NOT NULL DEFAULT now(),
        applied_at timestamptz NULL
      );
      CREATE INDEX delivery_reports_lookup_idx ON delivery_reports (provider_account_id, provider_message_id);
      CREATE INDEX delivery_reports_unapplied_idx ON delivery_reports (received_at) WHERE applied_at IS NULL;

      CREATE TABLE webhook_endpoints (
        tenant_id uuid PRIMARY KEY REFERENCES tenants (id),
        url text NOT NULL CHECK (url ~ '^https?://'),
        secret_enc text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );

      CREATE TABLE webhook_deliveries (
        id uuid PRIMARY KEY,
        tenant_id uuid NOT NULL REFERENCES tenants (id),
        event_id uuid NOT NULL,
        event_type text NOT NULL CHECK (event_type IN ('message.status', 'message.received', 'balance.low', 'balance.expiring')),
        payload jsonb NOT NULL,
        status text NOT NULL CHECK (status IN ('pending', 'delivering', 'succeeded', 'failed')),
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at timestamptz NOT NULL DEFAULT now(),
        lease_until timestamptz NULL,
        last_status_code integer NULL,
        last_error text NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        delivered_at timestamptz NULL
      );
      CREATE UNIQUE INDEX webhook_deliveries_event_uq ON webhook_deliveries (tenant_id, event_id);
      CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
      CREATE INDEX webhook_deliveries_tenant_idx ON webhook_deliveries (tenant_id, created_at DESC);

      CREATE TABLE webhook_attempts (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        delivery_id uuid NOT NULL REFERENCES webhook_deliveries (id),
        attempted_at timestamptz NOT NULL DEFAULT now(),
        status_code integer NULL,
        error text NULL,
        duration_ms integer NOT NULL
      );
      CREATE INDEX webhook_attempts_delivery_idx ON webhook_attempts (delivery_id, seq);

      CREATE TABLE inbound_messages (
        id uuid PRIMARY KEY,
        provider_account_id uuid NOT NULL REFERENCES provider_accounts (id),
        msisdn text NOT NULL,
        text text NOT NULL,
        received_at timestamptz NULL,
        dedupe_key text NOT NULL,
        raw jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
      );
      CREATE UNIQUE INDEX inbound_messages_dedupe_uq ON inbound_messages (provider_account_id, dedupe_key);
      CREATE INDEX inbound_messages_account_idx ON inbound_messages (provider_account_id, created_at DESC);
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TABLE inbound_messages, webhook_attempts, webhook_deliveries, webhook_endpoints, delivery_reports,
        idempotency_keys, message_events, ledger_entries, messages, api_keys, tenants, provider_accounts, admin_users;
      DROP FUNCTION ledger_entries_append_only();
    `);
  }
}

import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The provider's wallet and per-account send settings (issue 10).
 * - `send_rate_per_second`, `max_in_flight`, `low_balance_threshold`: settings of one provider account;
 *   NULL = the environment's default (PROVIDER_SEND_RATE_PER_SECOND, PROVIDER_MAX_IN_FLIGHT,
 *   PROVIDER_LOW_BALANCE_THRESHOLD). The same bounds as config.ts, in the schema too.
 * - `next_balance_poll_at`: the poll claim. A poller moves it forward before it calls balance.php, under
 *   FOR UPDATE SKIP LOCKED, so several gateway processes never poll the same account for the same turn.
 * - `balance_alert_reasons`: the alert reasons of the last poll, to log and count an alert once when it
 *   is raised rather than on every poll.
 * - `provider_balance_checks`: every balance.php read (scheduled or live), append-only history.
 */
export class ProviderWallet1764700000000 implements MigrationInterface {
  name = 'ProviderWallet1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE provider_accounts
        ADD COLUMN send_rate_per_second integer NULL CHECK (send_rate_per_second BETWEEN 0 AND 1000000),
        ADD COLUMN max_in_flight integer NULL CHECK (max_in_flight BETWEEN 1 AND 10000),
        ADD COLUMN low_balance_threshold bigint NULL
          CHECK (low_balance_threshold BETWEEN 0 AND 9007199254740991),
        ADD COLUMN next_balance_poll_at timestamptz NULL,
        ADD COLUMN balance_alert_reasons text[] NOT NULL DEFAULT '{}';

      CREATE TABLE provider_balance_checks (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        provider_account_id uuid NOT NULL REFERENCES provider_accounts (id),
        checked_at timestamptz NOT NULL,
        source text NOT NULL CHECK (source IN ('poll', 'live')),
        outcome text NOT NULL CHECK (outcome IN ('balance', 'error')),
        balance numeric NULL,
        expires_at timestamptz NULL,
        error text NULL,
        -- what this check did to dispatch through the account
        effect text NULL CHECK (effect IN ('held', 'released')),
        CHECK ((outcome = 'balance') = (balance IS NOT NULL AND expires_at IS NOT NULL)),
        CHECK ((outcome = 'error') = (error IS NOT NULL))
      );
      CREATE INDEX provider_balance_checks_account_idx ON provider_balance_checks (provider_account_id, checked_at DESC);
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TABLE provider_balance_checks;
      ALTER TABLE provider_accounts
        DROP COLUMN balance_alert_reasons,
        DROP COLUMN next_balance_poll_at,
        DROP COLUMN low_balance_threshold,
        DROP COLUMN max_in_flight,
        DROP COLUMN send_rate_per_second;
    `);
  }
}

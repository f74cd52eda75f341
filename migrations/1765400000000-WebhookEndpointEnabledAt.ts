import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * When a webhook endpoint was last enabled (docs/webhooks.md "Outcomes"; owner: src/webhooks).
 *
 * A PUT enables the endpoint (creating it, or re-enabling it after a 410) and sets `enabled_at` (database
 * clock). The claim carries the value it read with each delivery, and a 410 disables the endpoint only if
 * `enabled_at` is still that value: an answer to a request sent before the tenant's last PUT must not undo
 * it (a PUT of the same URL keeps the row and its generation, so those could not tell).
 *
 * Existing rows: the time of the migration (an attempt in flight across the upgrade is then treated as one
 * sent before a PUT: its 410 does not disable the endpoint; the next attempt's 410 does).
 */
export class WebhookEndpointEnabledAt1765400000000 implements MigrationInterface {
  name = 'WebhookEndpointEnabledAt1765400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE webhook_endpoints ADD COLUMN enabled_at timestamptz NOT NULL DEFAULT now()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE webhook_endpoints DROP COLUMN enabled_at`);
  }
}

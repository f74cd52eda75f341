import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The webhook claim as one statement (docs/webhooks.md "Delivery"; owner: src/webhooks).
 *
 * `webhook_endpoints.in_flight` counts the endpoint's deliveries in `delivering`: raised by the claim that
 * leases them, lowered by the statement that moves them out of `delivering` (outcome recorded, lease
 * released). The claim locks the endpoint row (`FOR UPDATE SKIP LOCKED`), and a locked row is re-read at its
 * newest committed version, so the per-endpoint cap holds across processes inside one statement; counting
 * the leases instead needs a second statement with a fresher snapshot (and a transaction around both).
 *
 * Queue tables churn (every delivery is updated twice within milliseconds): vacuum them at 2 % dead rows
 * instead of the default 20 %, so the partial "due" indexes do not fill up with dead entries between runs.
 */
export class WebhookInFlight1765200000000 implements MigrationInterface {
  name = 'WebhookInFlight1765200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE webhook_endpoints ADD COLUMN in_flight int NOT NULL DEFAULT 0;
      UPDATE webhook_endpoints e
         SET in_flight = (SELECT count(*) FROM webhook_deliveries d WHERE d.tenant_id = e.tenant_id AND d.status = 'delivering');
      ALTER TABLE webhook_deliveries SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02);
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE webhook_deliveries RESET (autovacuum_vacuum_scale_factor, autovacuum_analyze_scale_factor);
      ALTER TABLE webhook_endpoints DROP COLUMN in_flight;
    `);
  }
}

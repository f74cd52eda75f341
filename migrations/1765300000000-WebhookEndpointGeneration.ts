import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Webhook endpoint generations (docs/webhooks.md "Deleting an endpoint"; owner: src/webhooks).
 *
 * A tenant has at most one endpoint row, and a DELETE followed by a PUT makes a new row with the same key
 * (`tenant_id`). Each row gets its own `generation`, and each delivery carries the generation it was queued
 * for: the claim sends a delivery only to the endpoint of its generation, the statements that end a lease
 * lower only that endpoint's `in_flight`, and a delivery whose endpoint is gone is failed instead of being
 * sent to a URL registered later. A PUT that changes the URL of the same row keeps its generation (the
 * tenant moved its endpoint; its queued deliveries follow it).
 *
 * Existing rows: every endpoint gets a generation; the deliveries still pending or delivering take their
 * tenant's (they were queued for it). Finished deliveries keep NULL: a manual retry stamps the current one.
 */
export class WebhookEndpointGeneration1765300000000 implements MigrationInterface {
  name = 'WebhookEndpointGeneration1765300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE webhook_endpoints ADD COLUMN generation uuid NOT NULL DEFAULT gen_random_uuid();
      ALTER TABLE webhook_deliveries ADD COLUMN endpoint_generation uuid;
      UPDATE webhook_deliveries d SET endpoint_generation = e.generation
        FROM webhook_endpoints e
       WHERE e.tenant_id = d.tenant_id AND d.status IN ('pending', 'delivering');
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE webhook_deliveries DROP COLUMN endpoint_generation;
      ALTER TABLE webhook_endpoints DROP COLUMN generation;
    `);
  }
}

import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Usage records and statements read messages and ledger rows by time range (docs/billing.md).
 * - messages by (created_at) for all tenants (the tenant's own range uses messages_tenant_created_idx);
 * - ledger rows by (tenant_id, created_at) for statements and one tenant's usage, and by (created_at)
 *   restricted to debits and refunds for all tenants' usage.
 * The ledger indexes INCLUDE the summed columns: a statement's opening balance is a sum over the tenant's
 * whole history before the month, answered from the index alone (ledger rows are never updated, so the
 * visibility map stays set).
 */
export class UsageIndexes1764500000000 implements MigrationInterface {
  name = 'UsageIndexes1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE INDEX messages_created_idx ON messages (created_at) INCLUDE (tenant_id, segments);
      CREATE INDEX ledger_tenant_created_idx ON ledger_entries (tenant_id, created_at) INCLUDE (kind, amount);
      CREATE INDEX ledger_money_created_idx ON ledger_entries (created_at) INCLUDE (tenant_id, kind, amount)
        WHERE kind IN ('debit', 'refund');
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX ledger_money_created_idx, ledger_tenant_created_idx, messages_created_idx`);
  }
}

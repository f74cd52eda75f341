import type { DataSource } from 'typeorm';
import { uuidv7 } from '../../src/common/ids';
import { uuidOf } from './app';

/**
 * `tenants` × `days` delivered messages of price 0 (with their debits), one per tenant per Jakarta day from
 * `from`: that many usage records, written in one statement (for the usage export tests).
 */
export async function seedUsage(
  db: DataSource,
  providerAccountId: string,
  tenants: number,
  days: number,
  from = '2060-01-01',
): Promise<void> {
  await db.query(
    `WITH ten AS (
       INSERT INTO tenants (id, name, provider_account_id, price_per_segment)
       SELECT u.id, 'bulk ' || u.ord, $1, 0 FROM unnest($2::uuid[]) WITH ORDINALITY AS u(id, ord) RETURNING id),
     m AS (
       INSERT INTO messages (id, tenant_id, provider_account_id, msisdn, text, status, segments, encoding, price, created_at)
       SELECT gen_random_uuid(), ten.id, $1, '6281234567890', 'bulk', 'delivered', 1, 'GSM-7', 0,
              ($4::date + d)::timestamp AT TIME ZONE 'Asia/Jakarta'
         FROM ten, generate_series(0, $3 - 1) d
       RETURNING id, tenant_id, created_at)
     INSERT INTO ledger_entries (id, tenant_id, kind, amount, balance_after, message_id, created_at)
     SELECT gen_random_uuid(), m.tenant_id, 'debit', 0, 0, m.id, m.created_at FROM m`,
    // Time-ordered ids like the gateway's own (other suites list tenants newest first by id).
    [uuidOf(providerAccountId), Array.from({ length: tenants }, () => uuidv7()), days, from],
  );
}

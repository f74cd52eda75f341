import { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Money invariants that only code enforced so far, now enforced by PostgreSQL (docs/data-model.md):
 *
 * - a refund belongs to its message's tenant and is exactly minus that message's debit (and so needs
 *   one); a message-scoped expiry (a refund forfeited because it landed after its period ended)
 *   belongs to its message's tenant and is exactly minus that refund: trigger on INSERT;
 * - one `expiry` per tenant and validity period (unique index on (tenant_id, grace_until) over the
 *   period rows), every expiry names its period, and at most one forfeiture per refunded message.
 *
 * Before this migration a refund into an ended period was forfeited by a second period row; such
 * legacy duplicates (append-only, so they stay) are left out of the unique index by their seq.
 */
export class MoneyConstraints1764100000000 implements MigrationInterface {
  name = 'MoneyConstraints1764100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION ledger_entries_check_message() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        msg_tenant uuid;
        booked bigint;
      BEGIN
        SELECT tenant_id INTO msg_tenant FROM messages WHERE id = NEW.message_id;
        IF msg_tenant IS DISTINCT FROM NEW.tenant_id THEN
          RAISE EXCEPTION 'ledger %: message % belongs to tenant %, not to tenant %',
            NEW.kind, NEW.message_id, msg_tenant, NEW.tenant_id
            USING ERRCODE = 'check_violation', TABLE = 'ledger_entries', CONSTRAINT = 'ledger_message_same_tenant';
        END IF;
        IF NEW.kind = 'refund' THEN
          SELECT amount INTO booked FROM ledger_entries
           WHERE message_id = NEW.message_id AND kind = 'debit' AND tenant_id = NEW.tenant_id;
          IF booked IS NULL OR NEW.amount <> -booked THEN
            RAISE EXCEPTION 'ledger refund of message % is %, but its debit is %', NEW.message_id, NEW.amount,
              coalesce(booked::text, 'missing')
              USING ERRCODE = 'check_violation', TABLE = 'ledger_entries', CONSTRAINT = 'ledger_refund_equals_debit';
          END IF;
        ELSE -- a message-scoped expiry forfeits that message's refund
          SELECT amount INTO booked FROM ledger_entries
           WHERE message_id = NEW.message_id AND kind = 'refund' AND tenant_id = NEW.tenant_id;
          IF booked IS NULL OR NEW.amount <> -booked THEN
            RAISE EXCEPTION 'ledger expiry of message % is %, but its refund is %', NEW.message_id, NEW.amount,
              coalesce(booked::text, 'missing')
              USING ERRCODE = 'check_violation', TABLE = 'ledger_entries', CONSTRAINT = 'ledger_expiry_equals_refund';
          END IF;
        END IF;
        RETURN NEW;
      END $$;
      CREATE TRIGGER ledger_entries_message_check BEFORE INSERT ON ledger_entries
        FOR EACH ROW WHEN (NEW.kind IN ('refund', 'expiry') AND NEW.message_id IS NOT NULL)
        EXECUTE FUNCTION ledger_entries_check_message();

      ALTER TABLE ledger_entries ADD CONSTRAINT ledger_expiry_names_period
        CHECK (kind <> 'expiry' OR grace_until IS NOT NULL) NOT VALID;
      ALTER TABLE ledger_entries VALIDATE CONSTRAINT ledger_expiry_names_period;
      CREATE UNIQUE INDEX ledger_one_expiry_per_refund_uq ON ledger_entries (message_id) WHERE kind = 'expiry';
    `);
    // Legacy duplicate period rows (see above) stay outside the unique index.
    const [{ legacy }] = (await q.query(
      `SELECT coalesce(max(seq), 0)::text AS legacy FROM (
         SELECT seq, row_number() OVER (PARTITION BY tenant_id, grace_until ORDER BY seq) AS n
           FROM ledger_entries WHERE kind = 'expiry' AND message_id IS NULL) d
        WHERE n > 1`,
    )) as { legacy: string }[];
    const legacyClause = legacy === '0' ? '' : ` AND seq > ${BigInt(legacy).toString()}`;
    await q.query(
      `CREATE UNIQUE INDEX ledger_one_expiry_per_period_uq ON ledger_entries (tenant_id, grace_until)
        WHERE kind = 'expiry' AND message_id IS NULL${legacyClause}`,
    );
    await q.query(`DROP INDEX ledger_expiry_period_idx`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE INDEX ledger_expiry_period_idx ON ledger_entries (tenant_id, grace_until) WHERE kind = 'expiry';
      DROP INDEX ledger_one_expiry_per_period_uq;
      DROP INDEX ledger_one_expiry_per_refund_uq;
      ALTER TABLE ledger_entries DROP CONSTRAINT ledger_expiry_names_period;
      DROP TRIGGER ledger_entries_message_check ON ledger_entries;
      DROP FUNCTION ledger_entries_check_message();
    `);
  }
}

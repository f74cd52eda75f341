import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { toPublicId } from '../common/ids';
import { rows as sqlRows } from '../database/raw-rows';
import { LedgerProblemCode, LedgerProblemDto, LedgerVerifyDto } from './ledger-verify.dto';

/** Per check, at most this many problems are listed (a badly broken database would list millions). */
export const MAX_PROBLEMS_PER_CHECK = 1000;

/**
 * A message is refundable when it ended `failed` (provider codes 50, 51, 52, submit_rejected, submit_failed:
 * every failure is refunded in full, API.md "Message") or `canceled` (a scheduled message canceled by the
 * tenant), and it cost something (MessageRefundsService refunds only `price > 0`). Nothing else is
 * ever refunded: delivered, expired (72 h without a final report), pending and open messages keep their charge.
 */
export const REFUNDABLE = `(m.status IN ('failed', 'canceled') AND m.price > 0)`;

interface Check {
  code: LedgerProblemCode;
  /** Returns rows of tenant_id, message_id?, ledger_id?, detail. */
  sql: string;
}

/**
 * The proof of the books (docs/billing.md "Proof of the books"), one SQL query per check, set-based so it
 * runs over the whole database in a consistent snapshot (REPEATABLE READ, READ ONLY). Used by
 * `GET /v1/admin/ledger/verify` and by `npm run ledger:verify`.
 */
const CHECKS: Check[] = [
  {
    code: 'balance_mismatch',
    sql: `SELECT t.id AS tenant_id, NULL::uuid AS message_id, NULL::uuid AS ledger_id,
                 format('balance %s but the ledger sums to %s', t.balance, coalesce(l.s, 0)) AS detail
            FROM tenants t LEFT JOIN (SELECT tenant_id, sum(amount) AS s FROM ledger_entries GROUP BY tenant_id) l
              ON l.tenant_id = t.id
           WHERE t.balance <> coalesce(l.s, 0)`,
  },
  {
    code: 'negative_balance',
    sql: `SELECT id AS tenant_id, NULL::uuid AS message_id, NULL::uuid AS ledger_id,
                 format('balance %s is negative', balance) AS detail
            FROM tenants WHERE balance < 0
          UNION ALL
          SELECT tenant_id, NULL::uuid, id, format('balance_after %s is negative (seq %s)', balance_after, seq)
            FROM ledger_entries WHERE balance_after < 0`,
  },
  {
    // Each row's balance_after continues the previous row of its tenant, in the ledger's own order (seq).
    code: 'chain_broken',
    sql: `SELECT tenant_id, NULL::uuid AS message_id, id AS ledger_id,
                 format('seq %s: balance_after %s, expected %s + %s = %s', seq, balance_after, prev, amount, prev + amount)
                   AS detail
            FROM (SELECT tenant_id, id, seq, amount, balance_after,
                         coalesce(lag(balance_after) OVER (PARTITION BY tenant_id ORDER BY seq), 0) AS prev
                    FROM ledger_entries) c
           WHERE balance_after <> prev + amount`,
  },
  {
    // Every accepted message is charged once, at its price (a price of 0 is still a debit row of 0).
    code: 'missing_debit',
    sql: `SELECT m.tenant_id, m.id AS message_id, NULL::uuid AS ledger_id,
                 format('message (status %s, price %s) has no debit', m.status, m.price) AS detail
            FROM messages m
           WHERE NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.message_id = m.id AND e.kind = 'debit')`,
  },
  {
    code: 'duplicate_debit',
    sql: `SELECT min(e.tenant_id::text)::uuid AS tenant_id, e.message_id, NULL::uuid AS ledger_id,
                 format('message debited %s times', count(*)) AS detail
            FROM ledger_entries e WHERE e.kind = 'debit' GROUP BY e.message_id HAVING count(*) > 1`,
  },
  {
    code: 'wrong_debit',
    sql: `SELECT e.tenant_id, e.message_id, e.id AS ledger_id,
                 format('debit of %s for a message priced %s', -e.amount, m.price) AS detail
            FROM ledger_entries e JOIN messages m ON m.id = e.message_id
           WHERE e.kind = 'debit' AND e.amount <> -m.price`,
  },
  {
    code: 'foreign_message',
    sql: `SELECT e.tenant_id, e.message_id, e.id AS ledger_id,
                 format('%s entry for a message of another tenant', e.kind) AS detail
            FROM ledger_entries e JOIN messages m ON m.id = e.message_id
           WHERE e.tenant_id <> m.tenant_id`,
  },
  {
    code: 'missing_refund',
    sql: `SELECT m.tenant_id, m.id AS message_id, NULL::uuid AS ledger_id,
                 format('%s message (price %s) was not refunded', m.status, m.price) AS detail
            FROM messages m
           WHERE ${REFUNDABLE}
             AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.message_id = m.id AND e.kind = 'refund')`,
  },
  {
    code: 'duplicate_refund',
    sql: `SELECT min(e.tenant_id::text)::uuid AS tenant_id, e.message_id, NULL::uuid AS ledger_id,
                 format('message refunded %s times', count(*)) AS detail
            FROM ledger_entries e WHERE e.kind = 'refund' GROUP BY e.message_id HAVING count(*) > 1`,
  },
  {
    code: 'wrong_refund',
    sql: `SELECT e.tenant_id, e.message_id, e.id AS ledger_id,
                 format('refund of %s for a message priced %s', e.amount, m.price) AS detail
            FROM ledger_entries e JOIN messages m ON m.id = e.message_id
           WHERE e.kind = 'refund' AND e.amount <> m.price`,
  },
  {
    code: 'unexpected_refund',
    sql: `SELECT e.tenant_id, e.message_id, e.id AS ledger_id,
                 format('refund of %s for a %s message, which is not refundable', e.amount, m.status) AS detail
            FROM ledger_entries e JOIN messages m ON m.id = e.message_id
           WHERE e.kind = 'refund' AND NOT ${REFUNDABLE}`,
  },
  {
    // messages.refunded is the guard of exactly-once refunds: it must agree with the ledger.
    code: 'refund_flag_mismatch',
    sql: `SELECT m.tenant_id, m.id AS message_id, NULL::uuid AS ledger_id,
                 format('refunded flag is %s but the ledger has %s refund rows', m.refunded, coalesce(r.n, 0)) AS detail
            FROM messages m
            LEFT JOIN (SELECT message_id, count(*) AS n FROM ledger_entries WHERE kind = 'refund' GROUP BY message_id) r
              ON r.message_id = m.id
           WHERE m.refunded <> (coalesce(r.n, 0) > 0)`,
  },
  {
    // A period's own expiry row (message_id NULL) forfeits it once (ledger_one_expiry_per_period_uq): money
    // the tenant holds again in that same period (graceUntil unchanged, so no top-up started a new one) can
    // never be forfeited, and every later write of the tenant fails on that index (the "wedged" tenant an
    // adjustment racing a forfeiture could leave, fixed in 3d58d29). No legitimate write credits an ended
    // period (a late refund is forfeited at once by its own expiry row), so this holds whatever the clock says.
    code: 'balance_after_expiry',
    sql: `SELECT t.id AS tenant_id, NULL::uuid AS message_id, x.id AS ledger_id,
                 format('balance %s in the period ending %s, already forfeited (its expiry row exists): it cannot be forfeited again and the tenant''s writes fail',
                        t.balance, to_char(t.grace_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')) AS detail
            FROM tenants t
            CROSS JOIN LATERAL (
              SELECT e.id FROM ledger_entries e
               WHERE e.tenant_id = t.id AND e.kind = 'expiry' AND e.message_id IS NULL AND e.grace_until = t.grace_until
               ORDER BY e.seq DESC LIMIT 1) x
           WHERE t.balance > 0`,
  },
];

@Injectable()
export class LedgerVerifyService {
  constructor(private readonly dataSource: DataSource) {}

  async verify(): Promise<LedgerVerifyDto> {
    const runner = this.dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      const problems: LedgerProblemDto[] = [];
      for (const check of CHECKS) {
        const found = await sqlRows<{
          tenant_id: string;
          message_id: string | null;
          ledger_id: string | null;
          detail: string;
        }>(runner.manager, `SELECT * FROM (${check.sql}) p ORDER BY tenant_id, detail LIMIT ${MAX_PROBLEMS_PER_CHECK}`);
        for (const f of found) {
          const problem: LedgerProblemDto = {
            code: check.code,
            tenantId: toPublicId('tenant', f.tenant_id),
            detail: f.detail,
          };
          if (f.message_id) problem.messageId = toPublicId('message', f.message_id);
          if (f.ledger_id) problem.ledgerEntryId = toPublicId('ledgerEntry', f.ledger_id);
          problems.push(problem);
        }
      }
      const [counts] = await sqlRows<{ tenants: string; entries: string }>(
        runner.manager,
        `SELECT (SELECT count(*) FROM tenants) AS tenants, (SELECT count(*) FROM ledger_entries) AS entries`,
      );
      await runner.query('COMMIT');
      return { ok: problems.length === 0, tenants: Number(counts.tenants), entries: Number(counts.entries), problems };
    } catch (err) {
      await runner.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      await runner.release();
    }
  }
}

/** One line per problem, as the CLI prints it. */
export function problemLine(p: LedgerProblemDto): string {
  const where = [p.tenantId, p.messageId, p.ledgerEntryId].filter(Boolean).join(' ');
  return `${p.code} ${where}: ${p.detail}`;
}

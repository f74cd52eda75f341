import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { Problem } from '../common/problem';
import { jakartaMonth, jakartaMonthRange } from './billing-calendar';
import { LedgerService } from './ledger.service';
import { StatementDto } from './statement.dto';

interface Sums {
  opening: string;
  topups: string;
  debits: string;
  refunds: string;
  adjustments: string;
  expired: string;
  closing: string;
}

/**
 * Monthly statements (docs/billing.md "Statements"). Every figure is a sum of ledger amounts by
 * `created_at` against the Asia/Jakarta month's `[start, end)`: the opening balance is the sum of
 * everything before `start`, the closing balance the sum of everything before `end`, and the movements
 * the sums by kind in between. So `opening + movements = closing` holds by construction, one month's
 * closing is the next month's opening, and (because balance == sum(ledger), checked by ledger:verify)
 * the closing balance of the current month is the balance.
 */
@Injectable()
export class StatementService {
  constructor(
    private readonly dataSource: DataSource,
    private readonly ledger: LedgerService,
    private readonly clock: Clock,
  ) {}

  async statement(tenantId: string, month: string): Promise<StatementDto> {
    const range = jakartaMonthRange(month);
    if (!range) {
      throw new Problem('validation_failed', 'month is not a calendar month', [
        { field: 'month', message: 'must be YYYY-MM with a month from 01 to 12' },
      ]);
    }
    const now = this.clock.now();
    if (month > jakartaMonth(now)) {
      throw new Problem('validation_failed', 'month is in the future', [
        { field: 'month', message: 'must not be after the current Asia/Jakarta month' },
      ]);
    }
    // A forfeiture that is due is booked before the books are read, as GET /v1/balance does.
    await this.ledger.expireIfDue(tenantId);
    const [sums]: Sums[] = await this.dataSource.query(
      `SELECT coalesce(sum(amount) FILTER (WHERE created_at < $2), 0) AS opening,
              coalesce(sum(amount) FILTER (WHERE created_at >= $2 AND kind = 'topup'), 0) AS topups,
              coalesce(sum(amount) FILTER (WHERE created_at >= $2 AND kind = 'debit'), 0) AS debits,
              coalesce(sum(amount) FILTER (WHERE created_at >= $2 AND kind = 'refund'), 0) AS refunds,
              coalesce(sum(amount) FILTER (WHERE created_at >= $2 AND kind = 'adjustment'), 0) AS adjustments,
              coalesce(sum(amount) FILTER (WHERE created_at >= $2 AND kind = 'expiry'), 0) AS expired,
              coalesce(sum(amount), 0) AS closing
         FROM ledger_entries
        WHERE tenant_id = $1 AND created_at < $3`,
      [tenantId, range.start, range.end],
    );
    // The validity in force at the end of the month: set by the last top-up booked before it.
    const validity: { valid_until: Date; grace_until: Date }[] = await this.dataSource.query(
      `SELECT valid_until, grace_until FROM ledger_entries
        WHERE tenant_id = $1 AND kind = 'topup' AND created_at < $2
        ORDER BY created_at DESC, seq DESC LIMIT 1`,
      [tenantId, range.end],
    );
    return {
      month,
      openingBalance: Number(sums.opening),
      topups: Number(sums.topups),
      debits: Number(sums.debits),
      refunds: Number(sums.refunds),
      adjustments: Number(sums.adjustments),
      expired: Number(sums.expired),
      closingBalance: Number(sums.closing),
      validUntil: validity[0]?.valid_until ?? null,
      graceUntil: validity[0]?.grace_until ?? null,
    };
  }
}

export const STATEMENT_COLUMNS = [
  'month',
  'openingBalance',
  'topups',
  'debits',
  'refunds',
  'adjustments',
  'expired',
  'closingBalance',
  'validUntil',
  'graceUntil',
] as const;

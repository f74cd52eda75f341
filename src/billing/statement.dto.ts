import { Matches } from 'class-validator';

export class StatementQueryDto {
  /**
   * The Asia/Jakarta calendar month, `YYYY-MM`. Not after the current month.
   * @example 2031-11
   */
  @Matches(/^\d{4}-\d{2}$/, { message: 'month must be YYYY-MM' })
  month: string;
}

/**
 * One month of a tenant's balance, in Asia/Jakarta time. Movements are signed as in the ledger, so
 * `openingBalance + topups + debits + refunds + adjustments + expired = closingBalance`, and a month's
 * closing balance is the next month's opening balance.
 */
export class StatementDto {
  /** `YYYY-MM` (Asia/Jakarta). */
  month: string;
  /** The balance at the start of the month (00:00 Jakarta on the 1st). */
  openingBalance: number;
  /** Sum of top-ups booked in the month (≥ 0). */
  topups: number;
  /** Sum of message charges booked in the month (≤ 0). */
  debits: number;
  /** Sum of refunds booked in the month (≥ 0). */
  refunds: number;
  /** Sum of admin adjustments booked in the month (signed). */
  adjustments: number;
  /** Balance forfeited at the end of grace in the month (≤ 0). */
  expired: number;
  /** The balance at the end of the month (or now, for the current month). */
  closingBalance: number;
  /** The validity in force at the end of the month (or now): set by the last top-up before it. */
  validUntil: Date | null;
  /** The end of grace in force at the end of the month (or now). */
  graceUntil: Date | null;
}

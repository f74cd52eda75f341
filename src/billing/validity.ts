import { DateTime } from 'luxon';

/** Calendar months are counted in Asia/Jakarta time (API.md "Balance validity"). */
export const BILLING_ZONE = 'Asia/Jakarta';
export const VALIDITY_MONTHS = 3;
export const GRACE_MONTHS = 1;

export type BalanceState = 'active' | 'grace' | 'expired' | 'empty';

function addMonthsJakarta(date: Date, months: number): Date {
  // Luxon clamps to the month's last day (31 Jan + 1 month = 28/29 Feb), as calendars do.
  return DateTime.fromJSDate(date, { zone: BILLING_ZONE }).plus({ months }).toJSDate();
}

/**
 * A top-up sets validUntil = max(validUntil, now + 3 months): it never shortens validity and never
 * stacks beyond three months from now. graceUntil = validUntil + 1 month.
 */
export function validityAfterTopup(now: Date, currentValidUntil: Date | null): { validUntil: Date; graceUntil: Date } {
  const fresh = addMonthsJakarta(now, VALIDITY_MONTHS);
  const validUntil = currentValidUntil && currentValidUntil > fresh ? currentValidUntil : fresh;
  return { validUntil, graceUntil: addMonthsJakarta(validUntil, GRACE_MONTHS) };
}

/**
 * `empty` when nothing is left to spend or keep; otherwise by time: spendable before validUntil,
 * kept but not spendable in grace, forfeited from graceUntil on.
 */
export function balanceState(
  now: Date,
  balance: number,
  validUntil: Date | null,
  graceUntil: Date | null,
): BalanceState {
  // From graceUntil on the period is over: whatever was left is (or is about to be) forfeited. After the
  // forfeiture the balance is 0, and `expired` (not `empty`) is what tells the tenant why (API.md, BalanceDto).
  if (graceUntil && now >= graceUntil) return 'expired';
  if (balance <= 0) return 'empty';
  // Credit that never came with a top-up (an adjustment) carries no validity: spendable.
  if (!validUntil) return 'active';
  if (now < validUntil) return 'active';
  return 'grace';
}

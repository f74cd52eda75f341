import { DateTime } from 'luxon';
import { BILLING_ZONE } from './validity';

/**
 * The billing calendar: days and months are Asia/Jakarta days and months (UTC+7, no daylight saving),
 * the same calendar as the validity rule (API.md "Balance validity"). A Jakarta day starts at 17:00 UTC of
 * the previous UTC day. Pure functions, table-tested in billing-calendar.spec.ts.
 */

export type Granularity = 'day' | 'month';

const DAY_RE = /^\d{4}-\d{2}-\d{2}$/;
const MONTH_RE = /^\d{4}-\d{2}$/;

/** The instant a Jakarta calendar day `YYYY-MM-DD` starts, or null if it is not a real date (2031-02-29). */
export function jakartaDayStart(day: string): Date | null {
  if (!DAY_RE.test(day)) return null;
  const d = DateTime.fromISO(day, { zone: BILLING_ZONE });
  return d.isValid && d.toISODate() === day ? d.toJSDate() : null;
}

/** `[start, end)` of a Jakarta calendar month `YYYY-MM`, or null if malformed. */
export function jakartaMonthRange(month: string): { start: Date; end: Date } | null {
  if (!MONTH_RE.test(month)) return null;
  const d = DateTime.fromISO(`${month}-01`, { zone: BILLING_ZONE });
  if (!d.isValid || d.toFormat('yyyy-MM') !== month) return null;
  return { start: d.toJSDate(), end: d.plus({ months: 1 }).toJSDate() };
}

/**
 * `[start, end)` for an inclusive range of Jakarta days: `end` is the start of the day after `to`.
 * Null when either date is not a real date.
 */
export function jakartaDayRange(from: string, to: string): { start: Date; end: Date } | null {
  const start = jakartaDayStart(from);
  const last = jakartaDayStart(to);
  if (!start || !last) return null;
  return { start, end: DateTime.fromJSDate(last, { zone: BILLING_ZONE }).plus({ days: 1 }).toJSDate() };
}

/** The Jakarta period label of an instant: `YYYY-MM-DD` for days, `YYYY-MM` for months. */
export function jakartaPeriod(at: Date, granularity: Granularity): string {
  const d = DateTime.fromJSDate(at, { zone: BILLING_ZONE });
  return granularity === 'day' ? d.toFormat('yyyy-MM-dd') : d.toFormat('yyyy-MM');
}

/** Today's Jakarta date `YYYY-MM-DD` and month `YYYY-MM` at `now`. */
export function jakartaToday(now: Date): string {
  return jakartaPeriod(now, 'day');
}
export function jakartaMonth(now: Date): string {
  return jakartaPeriod(now, 'month');
}

/** The month after `YYYY-MM` (for the statement chain). */
export function nextMonth(month: string): string {
  return DateTime.fromISO(`${month}-01`, { zone: BILLING_ZONE }).plus({ months: 1 }).toFormat('yyyy-MM');
}

/** The format string PostgreSQL's to_char uses for a period label, matching jakartaPeriod. */
export const PG_PERIOD_FORMAT: Record<Granularity, string> = { day: 'YYYY-MM-DD', month: 'YYYY-MM' };

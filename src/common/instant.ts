/**
 * The API's instants (`sendAt`, `createdFrom`, `createdTo`): ISO 8601 calendar dates and times, UTC unless they
 * carry an offset (`Z`, `+07:00`, `+0700`, `+07`). `new Date(text)` reads a date-time without an offset in the
 * host's time zone (TZ=Asia/Jakarta moves it seven hours) and cannot read several valid ISO 8601 forms, so
 * the API reads them here.
 *
 * Accepted: `YYYY`, `YYYY-MM`, `YYYY-MM-DD`, and `YYYY-MM-DD` + `T` (or a space) + `HH:MM[:SS[.fraction]]` with
 * an optional offset; `24:00` is the end of the day. Anything else (week and ordinal dates, the basic format, an
 * hour alone, a comma before the fraction, a day the month does not have) is null.
 */
const INSTANT =
  /^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d+))?)?(Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?$/i;

export function parseInstant(text: string): Date | null {
  const m = INSTANT.exec(text);
  if (!m) return null;
  const [year, month, day, hour, minute, second] = [1, 2, 3, 4, 5, 6].map((i, k) =>
    m[i] === undefined ? (k === 1 || k === 2 ? 1 : 0) : Number(m[i]),
  );
  const millis = m[7] ? Number(m[7].padEnd(3, '0').slice(0, 3)) : 0;
  if (month < 1 || month > 12 || day < 1 || minute > 59 || second > 59) return null;
  if (hour > 24 || (hour === 24 && (minute > 0 || second > 0 || millis > 0))) return null;
  const date = new Date(0);
  date.setUTCFullYear(year, month - 1, day); // not Date.UTC: it reads years 0-99 as 1900-1999
  if (date.getUTCMonth() !== month - 1) return null; // 31 April, 29 February of a common year
  let time = date.getTime() + ((hour * 60 + minute) * 60 + second) * 1000 + millis;
  const zone = m[8];
  if (zone && zone.toUpperCase() !== 'Z') {
    const sign = zone.startsWith('-') ? -1 : 1;
    const digits = zone.slice(1).replace(':', '');
    const offsetHours = Number(digits.slice(0, 2));
    const offsetMinutes = digits.length > 2 ? Number(digits.slice(2)) : 0;
    if (offsetHours > 23 || offsetMinutes > 59) return null;
    time -= sign * (offsetHours * 60 + offsetMinutes) * 60_000;
  }
  return new Date(time);
}

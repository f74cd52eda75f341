// Day-boundary runs (issue 12): when GERBANG_FAKE_NOW is set (an ISO instant), this test file's
// wall clock starts at that instant (when the run started) and then runs at normal speed. Only `Date` moves: timers,
// performance.now() and PostgreSQL's own clock are untouched, so the code under test sees the same
// shift everywhere it reads "now" in this process (the injected Clock reads Date.now()).
// scripts/day-boundary.sh runs the date-dependent suites at 16:59:59, 17:00:00 and 23:59:59 UTC
// (Asia/Jakarta is UTC+7) and on the last day of a month.
const target = process.env.GERBANG_FAKE_NOW;
if (target) {
  const RealDate = Date;
  const start = RealDate.parse(target);
  if (Number.isNaN(start)) throw new Error(`GERBANG_FAKE_NOW is not a date: ${target}`);
  // One timeline for the whole jest run: every test file's clock is shifted by the same amount
  // (GERBANG_FAKE_NOW_FROM = the real time the run started), so ids and times keep their order
  // across files as they would in one process.
  const from = Number(process.env.GERBANG_FAKE_NOW_FROM) || RealDate.now();
  const offset = start - from;
  const now = () => RealDate.now() + offset;
  function ShiftedDate(...args) {
    if (!new.target) return new RealDate(now()).toString();
    return args.length === 0 ? new RealDate(now()) : new RealDate(...args);
  }
  ShiftedDate.prototype = RealDate.prototype;
  ShiftedDate.now = now;
  ShiftedDate.parse = RealDate.parse;
  ShiftedDate.UTC = RealDate.UTC;
  globalThis.Date = ShiftedDate;
}

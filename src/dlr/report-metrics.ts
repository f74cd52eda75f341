import { Counter, register } from 'prom-client';

function counter(name: string, help: string, labelNames: string[] = []): Counter<string> {
  return (register.getSingleMetric(name) as Counter<string> | undefined) ?? new Counter({ name, help, labelNames });
}

/** report.php polls by outcome: `final` (a final code), `progress` (20), `none` (no status yet), `error`. */
export const reportPolls = counter('gerbang_dlr_polls_total', 'report.php polls of open messages by outcome', [
  'outcome',
]);
/** Looks for uncertain submits in reports_post.php: `found`, `absent` (first look), `failed` (second), `error`. */
export const reconcileLooks = counter(
  'gerbang_dlr_reconcile_total',
  'Uncertain submits looked up in the provider report, by result',
  ['result'],
);
export const messagesExpired = counter(
  'gerbang_messages_expired_total',
  'Messages expired without a final report 72 hours after submission',
);
/**
 * Daily reconciliations (one provider account, one Jakarta day) by outcome: `done`, `failed`, or `given_up` (a day
 * still open after the catch-up window, counted once: it is never reconciled by the daily job).
 */
export const dailyReconciles = counter(
  'gerbang_dlr_daily_reconcile_total',
  'Daily report reconciliations per provider account by outcome',
  ['outcome'],
);
/**
 * Mismatches found by report reconciliations (daily or on demand), by `kind` (`unknown`, `status_differs`,
 * `more_parts`, `missing`) and `trigger` (`daily`, `on_demand`). Counted per run: an on-demand run over days
 * already reconciled counts their mismatches again, so alert on `trigger="daily"`.
 */
export const reconcileMismatches = counter(
  'gerbang_dlr_reconcile_mismatches_total',
  'Mismatches between the provider report and our records found by reconciliations, by kind and trigger',
  ['kind', 'trigger'],
);
/**
 * Stored delivery reports whose apply failed (they stay stored, unapplied; the sweep tries again), by
 * `stage`: `receive` (right after storing, before the answer) or `sweep`.
 */
export const applyFailures = counter(
  'gerbang_dlr_apply_failed_total',
  'Stored delivery reports whose apply to their message failed (kept for the sweep), by stage',
  ['stage'],
);
/** Stored reports applied by the sweep (their apply had failed, or their message appeared later). */
export const reportsReapplied = counter(
  'gerbang_dlr_reapplied_total',
  'Stored delivery reports applied by the re-apply sweep',
);

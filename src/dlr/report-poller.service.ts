import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { PeriodicJob } from '../common/periodic-job';
import { DateTime } from 'luxon';
import { DataSource } from 'typeorm';
import { rows as sqlRows } from '../database/raw-rows';
import { Clock } from '../common/clock';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { MessageFollowUpService, PollTarget, UncertainTarget } from '../messaging/message-follow-up.service';
import { ProviderError } from '../provider/client';
import { ProviderAccountsService } from '../provider/provider-accounts.service';
import { ProviderClients } from '../provider/provider-clients.service';
import { DeliveryReportsService } from './delivery-reports.service';
import { dailyReconciles, messagesExpired, reconcileLooks, reportPolls } from './report-metrics';
import { findSubmit, MATCH_SLACK_MS, nextPollDelayMs, reportedSends } from './report-match';
import { ReconciliationCounts, ReportReconcilerService } from './report-reconciler.service';

export type PollOutcome = { messageId: string; outcome: 'final' | 'progress' | 'none' | 'error' };
export type DayOutcome =
  | ({ providerAccountId: string; day: string; kind: 'done'; reconciliationId: string } & ReconciliationCounts)
  | { providerAccountId: string; day: string; kind: 'failed'; reason: string };
export type ReconcileOutcome = {
  messageId: string;
  /** `deferred`: the matching row may be another send's whose outcome is not recorded yet; looked at again later. */
  result: 'found' | 'absent' | 'failed' | 'gone' | 'error' | 'deferred';
};

const INTERVAL_NAME = 'dlr.report-poll';
const TICK_MS = 5_000;
/** Messages claimed per round, and per provider account per round (the per-account rate limit). */
const POLL_BATCH = 200;
const POLL_PER_ACCOUNT = 20;
const RECONCILE_BATCH = 100;
/** report.php requests one process has in flight at once. */
const CONCURRENCY = 8;
/** No final report this long after submission → `expired` (API.md). */
export const EXPIRE_AFTER_MS = 72 * 3_600_000;
/** The last poll of a message that stays open is this long before it expires. */
export const LAST_POLL_BEFORE_EXPIRY_MS = 15 * 60_000;
/**
 * How many Jakarta days, up to the previous one, the daily reconciliation keeps trying a day it could not finish
 * (the provider down, its download failing): a day still open after that is given up (`report_days.given_up_at`,
 * logged once). Not configurable: API.md defines no environment variable for it.
 */
export const CATCH_UP_DAYS = 7;
/**
 * Closes the report loop (docs/dlr.md "Report pipeline"): polls report.php for submitted messages whose
 * callback did not come, expires those still open after 72 h, and looks uncertain submits up in
 * reports_post.php. Messages are claimed through MessageFollowUpService (FOR UPDATE SKIP LOCKED plus a
 * lease in next_poll_at / next_reconcile_at), so several gateway processes never poll one message for
 * the same turn. Poll answers go through DeliveryReportsService like callbacks (stored raw with source
 * 'poll', then applied). Time is the injected Clock.
 */
@Injectable()
export class ReportPollerService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ReportPollerService.name);
  private readonly pollAfterMs: number;
  private readonly reconcileAfterMs: number;
  private readonly leaseMs: number;
  private readonly job: PeriodicJob;

  constructor(
    private readonly messages: MessageFollowUpService,
    private readonly reports: DeliveryReportsService,
    private readonly reconciler: ReportReconcilerService,
    private readonly clients: ProviderClients,
    private readonly dataSource: DataSource,
    private readonly providerAccounts: ProviderAccountsService,
    scheduler: SchedulerRegistry,
    private readonly clock: Clock,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.job = new PeriodicJob(
      scheduler,
      INTERVAL_NAME,
      () => this.round(),
      (e) => this.logger.warn({ err: e.message }, 'report poll round failed'),
    );
    this.pollAfterMs = config.dlr.pollAfterSeconds * 1000;
    this.reconcileAfterMs = config.dlr.reconcileAfterSeconds * 1000;
    // Longer than any one provider request (a download may take longer: its own timeout is bounded too).
    this.leaseMs = config.provider.totalTimeoutMs + 5 * 60_000;
    this.nodeEnv = config.nodeEnv;
  }
  private readonly nodeEnv: string;

  onApplicationBootstrap(): void {
    if (this.nodeEnv === 'test') return; // tests call the rounds, or start()
    this.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  start(tickMs = TICK_MS): void {
    this.job.start(tickMs);
  }

  async stop(): Promise<void> {
    await this.job.stop();
  }

  /** One full round: reconcile, poll, expire; then the Jakarta days whose reports are not reconciled yet. */
  async round(): Promise<void> {
    await this.reconcileDue();
    await this.pollDue();
    await this.expireDue();
    const window = catchUpWindow(this.clock.now());
    if (this.settledThrough !== window.last) {
      await this.reconcileOpenDays();
      // Settled only when every day of the window is done for every active account, whichever process did it: a
      // round that found an account's day still claimed (by a failed run waiting 15 minutes, or by another
      // process) must not settle the window for this process, or a failed run would never be run again.
      if ((await this.openDays(window, this.clock.now(), { claimedToo: true })).length === 0)
        this.settledThrough = window.last;
    }
  }
  private settledThrough: string | undefined;

  /**
   * Daily reconciliation: for every active provider account, each Jakarta day of the catch-up window
   * (`catchUpWindow`: the last CATCH_UP_DAYS days, up to the previous one) that is not done yet goes once
   * (claimed in `report_days`: several processes never do one account's day twice) through
   * ReportReconcilerService, the routine the on-demand route uses too: final codes of messages still open (or
   * expired) are applied through the report path, and the summary (counts and mismatches) is kept in
   * `report_reconciliations`; `report_days` records the day as done with its counts. A failed day is claimed
   * again 15 minutes later, as long as it is in the window: a day that failed until the next one began (the
   * provider down, its download failing) is reconciled once the provider answers again, oldest first. An open
   * day older than the window is given up (`giveUpBefore`).
   */
  async reconcileOpenDays(): Promise<DayOutcome[]> {
    const now = this.clock.now();
    const window = catchUpWindow(now);
    await this.giveUpBefore(window.first, now);
    const open = await this.openDays(window, now, { claimedToo: false });
    const outcomes: DayOutcome[] = [];
    const failing = new Set<string>();
    // Each (account, day) is claimed when its turn comes, its lease counted from then: one claim for all of them
    // ran out for the later accounts while the earlier ones were reconciled (a slow download each), and another
    // process's round then claimed and ran those days as well.
    for (const { accountId, day } of open) {
      // After a failed day, the account's later days wait for a later round (a few seconds): a provider that is
      // down would otherwise hold this round for one timeout per open day, and the polls of every account with it.
      if (failing.has(accountId)) continue;
      const at = this.clock.now();
      const claimed: { provider_account_id: string }[] = await this.dataSource.query(
        `INSERT INTO report_days (provider_account_id, day, claimed_until) VALUES ($1, $2::date, $3)
         ON CONFLICT (provider_account_id, day) DO UPDATE SET claimed_until = EXCLUDED.claimed_until
           WHERE report_days.done_at IS NULL AND report_days.given_up_at IS NULL AND report_days.claimed_until <= $4
         RETURNING provider_account_id`,
        [accountId, day, new Date(at.getTime() + this.leaseMs), at],
      );
      if (claimed.length === 0) continue;
      const outcome = await this.reconcileDay(accountId, day);
      outcomes.push(outcome);
      if (outcome.kind === 'failed') failing.add(accountId);
    }
    return outcomes;
  }

  /**
   * The active accounts' days of the window still to be reconciled, by account and then oldest first: a day not
   * done and, unless `claimedToo`, not claimed now; a day without a row only if it is the window's last day (the
   * first day the job meets an account, or the newest day) or later than the account's first day in
   * `report_days` (a day no round reached, the gateway down for longer than a day). An account new to the job
   * therefore starts with the previous day, not with days before it existed.
   */
  private async openDays(
    window: { first: string; last: string },
    now: Date,
    { claimedToo }: { claimedToo: boolean },
  ): Promise<{ accountId: string; day: string }[]> {
    const accountIds = await this.providerAccounts.activeIds();
    if (accountIds.length === 0) return [];
    const open = await sqlRows<{ account_id: string; day: string }>(
      this.dataSource,
      `WITH days AS (SELECT g::date AS day FROM generate_series($2::date, $3::date, interval '1 day') AS g)
       SELECT a.id AS account_id, days.day::text AS day
         FROM unnest($1::uuid[]) AS a(id) CROSS JOIN days
         LEFT JOIN report_days r ON r.provider_account_id = a.id AND r.day = days.day
        WHERE CASE WHEN r.provider_account_id IS NULL
                   THEN days.day = $3::date
                     OR days.day > (SELECT min(f.day) FROM report_days f WHERE f.provider_account_id = a.id)
                   ELSE r.done_at IS NULL AND ($5 OR r.claimed_until <= $4) END
        ORDER BY a.id, days.day`,
      [accountIds, window.first, window.last, now, claimedToo],
    );
    return open.map((r) => ({ accountId: r.account_id, day: r.day }));
  }

  /**
   * Days still open and older than the catch-up window are given up: `given_up_at` stamped by one guarded
   * statement, so the day is logged (warn) and counted once, whichever process gets there first. `done_at` stays
   * NULL (the day was never reconciled) and nothing tries it again; the on-demand route still can.
   */
  private async giveUpBefore(first: string, now: Date): Promise<void> {
    const given = await sqlRows<{ provider_account_id: string; day: string; last_error: string | null }>(
      this.dataSource,
      `UPDATE report_days SET given_up_at = $2
        WHERE done_at IS NULL AND given_up_at IS NULL AND day < $1::date
        RETURNING provider_account_id, day::text AS day, last_error`,
      [first, now],
    );
    for (const g of given) {
      dailyReconciles.inc({ outcome: 'given_up' });
      this.logger.warn(
        { accountId: g.provider_account_id, day: g.day, lastError: g.last_error, catchUpDays: CATCH_UP_DAYS },
        'daily report reconciliation given up: the day is older than the catch-up window and was never reconciled; run it on demand',
      );
    }
  }

  private async reconcileDay(accountId: string, day: string): Promise<DayOutcome> {
    try {
      const { reconciliation } = await this.reconciler.reconcile(accountId, day, day, 'daily');
      const c = reconciliation.counts;
      await this.dataSource.query(
        `UPDATE report_days SET done_at = $3, listed = $4, applied = $5, unknown = $6, missing = $7, last_error = NULL
          WHERE provider_account_id = $1 AND day = $2::date`,
        [accountId, day, this.clock.now(), c.listed, c.applied, c.unknown, c.missing],
      );
      dailyReconciles.inc({ outcome: 'done' });
      return { providerAccountId: accountId, day, kind: 'done', reconciliationId: reconciliation.id, ...c };
    } catch (e) {
      const reason = (e as Error).message.slice(0, 500);
      dailyReconciles.inc({ outcome: 'failed' });
      this.logger.warn({ accountId, day, err: reason }, 'daily report reconciliation failed; claimed again later');
      await this.dataSource
        .query(
          `UPDATE report_days SET last_error = $3, claimed_until = $4 WHERE provider_account_id = $1 AND day = $2::date`,
          [accountId, day, reason, new Date(this.clock.now().getTime() + 15 * 60_000)],
        )
        .catch(() => undefined);
      return { providerAccountId: accountId, day, kind: 'failed', reason };
    }
  }

  /** Polls report.php for the due open messages; one outcome per claimed message. */
  async pollDue(): Promise<PollOutcome[]> {
    const now = this.clock.now();
    const claimed = await this.messages.claimForPoll(now, {
      pollAfterMs: this.pollAfterMs,
      claimUntil: new Date(now.getTime() + this.leaseMs),
      limit: POLL_BATCH,
      perAccount: POLL_PER_ACCOUNT,
    });
    const outcomes: PollOutcome[] = [];
    const queue = [...claimed];
    const worker = async () => {
      for (let next = queue.shift(); next; next = queue.shift()) outcomes.push(await this.pollOne(next));
    };
    await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, worker));
    return outcomes;
  }

  private async pollOne(target: PollTarget): Promise<PollOutcome> {
    let outcome: PollOutcome['outcome'] = 'error';
    try {
      const found = await this.clients.forAccount(target.providerAccountId);
      if (!found) throw new Error('provider account not found');
      const answer = await found.client.report(target.providerMessageId);
      if (answer.kind === 'report') {
        // The same path as a callback: stored raw (source 'poll'), then applied under the same rules.
        await this.reports.receive(
          target.providerAccountId,
          { sessionId: target.providerMessageId, code: answer.resolvedCode, text: answer.text, msisdn: null },
          'poll',
        );
        outcome = answer.resolvedCode === 20 ? 'progress' : 'final';
      } else if (answer.kind === 'none') outcome = 'none';
      else this.logger.warn({ messageId: target.id, reason: answer.reason.slice(0, 200) }, 'report.php error');
    } catch (e) {
      const category = e instanceof ProviderError ? e.code : 'internal';
      this.logger.warn({ messageId: target.id, category, err: (e as Error).message }, 'report poll failed');
    }
    reportPolls.inc({ outcome });
    await this.messages
      .polled(target, this.nextPollAt(target))
      .catch((e: Error) => this.logger.warn({ messageId: target.id, err: e.message }, 'poll not recorded'));
    return { messageId: target.id, outcome };
  }

  /**
   * The backoff's next poll, but never past the last one before expiry: polls back off to 6 h apart, so
   * without it a message could expire up to 6 h after its last look, missing a final code the provider
   * learned meanwhile (its callback lost). The last poll is LAST_POLL_BEFORE_EXPIRY_MS before the 72 h.
   */
  private nextPollAt(target: PollTarget): Date {
    const now = this.clock.now().getTime();
    const next = now + nextPollDelayMs(this.pollAfterMs, target.polls + 1);
    const last = target.submittedAt.getTime() + EXPIRE_AFTER_MS - LAST_POLL_BEFORE_EXPIRY_MS;
    return new Date(last > now ? Math.min(next, last) : next);
  }

  /** Expires messages without a final report 72 h after submission; returns how many. */
  async expireDue(): Promise<number> {
    const n = await this.messages.expireOverdue(this.clock.now(), EXPIRE_AFTER_MS);
    if (n > 0) {
      messagesExpired.inc(n);
      this.logger.log({ expired: n }, 'messages expired without a final report');
    }
    return n;
  }

  /** Looks the due uncertain submits up in their accounts' report downloads (one download per account). */
  async reconcileDue(): Promise<ReconcileOutcome[]> {
    const now = this.clock.now();
    const outcomes: ReconcileOutcome[] = [];
    // A batch at a time until nothing is due (a claim moves next_reconcile_at past `now`): with more
    // than one batch of uncertain messages, the newest must not wait for a later round.
    for (;;) {
      const claimed = await this.messages.claimUncertain(now, {
        afterMs: this.reconcileAfterMs,
        claimUntil: new Date(now.getTime() + this.leaseMs),
        limit: RECONCILE_BATCH,
      });
      const byAccount = new Map<string, UncertainTarget[]>();
      for (const c of claimed) byAccount.set(c.providerAccountId, [...(byAccount.get(c.providerAccountId) ?? []), c]);
      for (const [accountId, targets] of byAccount) outcomes.push(...(await this.reconcileAccount(accountId, targets)));
      if (claimed.length < RECONCILE_BATCH) break;
    }
    return outcomes;
  }

  private async reconcileAccount(accountId: string, targets: UncertainTarget[]): Promise<ReconcileOutcome[]> {
    const outcomes: ReconcileOutcome[] = [];
    const retryAt = () => new Date(this.clock.now().getTime() + this.reconcileAfterMs);
    let rows: Array<Record<string, string>>;
    try {
      const found = await this.clients.forAccount(accountId);
      if (!found) throw new Error('provider account not found');
      // The days the match may take a row from (findSubmit: creation − slack … uncertain + slack): with the
      // provider's clock a few minutes off, a send near Jakarta midnight is dated on the other day.
      const start = new Date(Math.min(...targets.map((t) => t.createdAt.getTime())) - MATCH_SLACK_MS);
      const end = new Date(Math.max(...targets.map((t) => t.uncertainAt.getTime())) + MATCH_SLACK_MS);
      const report = await found.client.downloadReport(start, end);
      if (report.kind !== 'report') throw new Error(`reports_post.php: ${report.reason.slice(0, 200)}`);
      rows = report.rows;
    } catch (e) {
      this.logger.warn({ accountId, err: (e as Error).message }, 'report download failed; looking again later');
      for (const t of targets) {
        await this.messages.lookFailed(t.id, retryAt());
        reconcileLooks.inc({ result: 'error' });
        outcomes.push({ messageId: t.id, result: 'error' });
      }
      return outcomes;
    }
    const sends = reportedSends(rows);
    const taken = await this.messages.takenProviderIds(
      accountId,
      sends.map((s) => s.providerMessageId),
    );
    for (const t of targets) {
      let result: ReconcileOutcome['result'];
      try {
        const match = findSubmit(sends, t, taken);
        if (match) {
          result = await this.messages.markFound(
            t.id,
            accountId,
            match.providerMessageId,
            match.sentAt ?? t.uncertainAt,
            this.clock.now(),
          );
          if (result === 'found') taken.add(match.providerMessageId);
          if (result === 'deferred') await this.messages.lookFailed(t.id, retryAt());
        } else result = await this.messages.markAbsent(t.id, this.clock.now(), this.reconcileAfterMs);
      } catch (e) {
        this.logger.warn({ messageId: t.id, err: (e as Error).message }, 'reconcile not recorded');
        await this.messages.lookFailed(t.id, retryAt()).catch(() => undefined);
        result = 'error';
      }
      if (result !== 'gone') reconcileLooks.inc({ result });
      outcomes.push({ messageId: t.id, result });
    }
    return outcomes;
  }
}

const JAKARTA = 'Asia/Jakarta';

/**
 * The Jakarta days (`YYYY-MM-DD`, inclusive) the daily reconciliation tries at `now`: `last` is the previous
 * Jakarta day once MATCH_SLACK_MS of today has passed (until then the day before it): the provider dates a send
 * by its own clock, a few minutes off ours, so the edge of today that the run may look in for yesterday's last
 * sends (ReportReconcilerService, `missing`) is complete only then. `first` is CATCH_UP_DAYS − 1 days before.
 */
export function catchUpWindow(now: Date): { first: string; last: string } {
  const last = DateTime.fromMillis(now.getTime() - MATCH_SLACK_MS, { zone: JAKARTA })
    .startOf('day')
    .minus({ days: 1 });
  return { first: last.minus({ days: CATCH_UP_DAYS - 1 }).toISODate()!, last: last.toISODate()! };
}

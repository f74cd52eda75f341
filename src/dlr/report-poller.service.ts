import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { Clock } from '../common/clock';
import { APP_CONFIG, AppConfig } from '../config/config';
import { MessageFollowUpService, PollTarget, UncertainTarget } from '../messaging/message-follow-up.service';
import { ProviderError } from '../provider/client';
import { ProviderClients } from '../provider/provider-clients.service';
import { DeliveryReportsService } from './delivery-reports.service';
import { messagesExpired, reconcileLooks, reportPolls } from './report-metrics';
import { findSubmit, nextPollDelayMs, reportedSends } from './report-match';

export type PollOutcome = { messageId: string; outcome: 'final' | 'progress' | 'none' | 'error' };
export type ReconcileOutcome = { messageId: string; result: 'found' | 'absent' | 'failed' | 'gone' | 'error' };

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
  private inFlight: Promise<unknown> | undefined;

  constructor(
    private readonly messages: MessageFollowUpService,
    private readonly reports: DeliveryReportsService,
    private readonly clients: ProviderClients,
    private readonly scheduler: SchedulerRegistry,
    private readonly clock: Clock,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
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
    if (this.scheduler.doesExist('interval', INTERVAL_NAME)) return;
    const timer = setInterval(() => this.tick(), tickMs);
    timer.unref();
    this.scheduler.addInterval(INTERVAL_NAME, timer);
  }

  async stop(): Promise<void> {
    if (this.scheduler.doesExist('interval', INTERVAL_NAME)) this.scheduler.deleteInterval(INTERVAL_NAME);
    await this.inFlight;
  }

  private tick(): void {
    if (this.inFlight) return;
    this.inFlight = this.round()
      .catch((e: Error) => this.logger.warn({ err: e.message }, 'report poll round failed'))
      .finally(() => (this.inFlight = undefined));
  }

  /** One full round: reconcile, poll, expire. */
  async round(): Promise<void> {
    await this.reconcileDue();
    await this.pollDue();
    await this.expireDue();
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
    const delay = nextPollDelayMs(this.pollAfterMs, target.polls + 1);
    await this.messages
      .polled(target, new Date(this.clock.now().getTime() + delay))
      .catch((e: Error) => this.logger.warn({ messageId: target.id, err: e.message }, 'poll not recorded'));
    return { messageId: target.id, outcome };
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
    const claimed = await this.messages.claimUncertain(now, {
      afterMs: this.reconcileAfterMs,
      claimUntil: new Date(now.getTime() + this.leaseMs),
      limit: RECONCILE_BATCH,
    });
    const byAccount = new Map<string, UncertainTarget[]>();
    for (const c of claimed) byAccount.set(c.providerAccountId, [...(byAccount.get(c.providerAccountId) ?? []), c]);
    const outcomes: ReconcileOutcome[] = [];
    for (const [accountId, targets] of byAccount) outcomes.push(...(await this.reconcileAccount(accountId, targets)));
    return outcomes;
  }

  private async reconcileAccount(accountId: string, targets: UncertainTarget[]): Promise<ReconcileOutcome[]> {
    const outcomes: ReconcileOutcome[] = [];
    const retryAt = () => new Date(this.clock.now().getTime() + this.reconcileAfterMs);
    let rows: Array<Record<string, string>>;
    try {
      const found = await this.clients.forAccount(accountId);
      if (!found) throw new Error('provider account not found');
      const start = new Date(Math.min(...targets.map((t) => t.createdAt.getTime())) - 60_000);
      const end = new Date(Math.max(...targets.map((t) => t.uncertainAt.getTime())) + 60_000);
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
          taken.add(match.providerMessageId);
          const ok = await this.messages.markFound(
            t.id,
            accountId,
            match.providerMessageId,
            match.sentAt ?? t.uncertainAt,
            this.clock.now(),
          );
          result = ok ? 'found' : 'gone';
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

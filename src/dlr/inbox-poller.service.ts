import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { PeriodicJob } from '../common/periodic-job';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { uuidv7 } from '../common/ids';
import { rows as sqlRows } from '../database/raw-rows';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { ProviderError } from '../provider/client';
import { ProviderAccountsService } from '../provider/provider-accounts.service';
import { ProviderClients } from '../provider/provider-clients.service';
import { InboundIntakeService, IntakeResult } from './inbound-intake.service';
import { inboxPolls } from './inbound-metrics';

/**
 * What became of one account's inbox read:
 * - `polled`: inbox.php answered with a readable inbox (possibly empty); its rows were stored.
 * - `failed`: no readable inbox (transport error, non-2xx, wrong credentials, unparseable body) or
 *   the rows could not be stored; the account backs off, nothing is lost (the rows are read again).
 */
export type InboxPollOutcome =
  | ({ kind: 'polled'; providerAccountId: string } & IntakeResult)
  | { kind: 'failed'; providerAccountId: string; reason: string; failures: number };

const INTERVAL_NAME = 'dlr.inbox-poll';
/** Accounts claimed per tick; more wait for the next tick. */
const CLAIM_BATCH = 100;
/** Inboxes read at once by one process. */
const CONCURRENCY = 8;
/** Longest wait after consecutive failures (or the poll interval, if that is longer). */
const MAX_BACKOFF_MS = 15 * 60_000;
/** Scheduler tick: how late a due account may be picked up. */
const MAX_TICK_MS = 5_000;

/**
 * Reads every active provider account's inbox.php every INBOX_POLL_SECONDS.
 *
 * Several gateway processes may run this: each tick claims the due `inbox_polls` rows in one
 * statement (`FOR UPDATE SKIP LOCKED`, next_poll_at moved past a lease, a fresh claim_id), so an
 * inbox is read by one process at a time; a process that dies mid-poll leaves the row to be
 * claimed again when the lease ends. Only the claim's holder records the result (guarded by
 * claim_id). Accounts are polled independently: one failing account backs off
 * (interval × 2^failures, capped) without delaying the others. Time is the injected Clock.
 */
@Injectable()
export class InboxPollerService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(InboxPollerService.name);
  private readonly intervalMs: number;
  private readonly leaseMs: number;
  private readonly job: PeriodicJob;

  constructor(
    private readonly dataSource: DataSource,
    private readonly providerAccounts: ProviderAccountsService,
    private readonly clients: ProviderClients,
    private readonly intake: InboundIntakeService,
    scheduler: SchedulerRegistry,
    private readonly clock: Clock,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.job = new PeriodicJob(
      scheduler,
      INTERVAL_NAME,
      () => this.pollDue(),
      (e) => this.logger.warn({ err: e.message }, 'inbox poll round failed'),
    );
    this.intervalMs = config.inbox.pollSeconds * 1000;
    // Longer than any one read can take (the client's total timeout), so a live poller keeps its claim.
    this.leaseMs = config.provider.totalTimeoutMs + 60_000;
  }

  onApplicationBootstrap(): void {
    if (this.config.nodeEnv === 'test') return; // tests call pollDue(), or start() when they mean it
    this.start();
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  /** Starts the scheduler tick (at most every 5 s, more often for a shorter INBOX_POLL_SECONDS). */
  start(tickMs = Math.min(MAX_TICK_MS, this.intervalMs)): void {
    this.job.start(tickMs);
  }

  /** Stops the tick and waits for a poll in progress (its results are recorded before shutdown). */
  async stop(): Promise<void> {
    await this.job.stop();
  }

  /** One round: claims the due accounts and reads their inboxes. Returns one outcome per claimed account. */
  async pollDue(): Promise<InboxPollOutcome[]> {
    const now = this.clock.now();
    const accountIds = await this.providerAccounts.activeIds();
    if (accountIds.length === 0) return [];
    // New accounts get a schedule row, due at once.
    await this.dataSource.query(
      `INSERT INTO inbox_polls (provider_account_id, next_poll_at)
       SELECT unnest($1::uuid[]), $2 ON CONFLICT (provider_account_id) DO NOTHING`,
      [accountIds, now],
    );
    // Claim due accounts a batch at a time until none is left due (a claim moves next_poll_at past
    // `now`, so no account is read twice in one round, however many accounts there are).
    const outcomes: InboxPollOutcome[] = [];
    for (;;) {
      const claimId = uuidv7();
      const claimed = await sqlRows<{ provider_account_id: string; failures: number }>(
        this.dataSource,
        `WITH due AS (
           SELECT provider_account_id FROM inbox_polls
            WHERE provider_account_id = ANY($1::uuid[]) AND next_poll_at <= $2
            ORDER BY next_poll_at
            LIMIT $3
            FOR UPDATE SKIP LOCKED)
         UPDATE inbox_polls p SET next_poll_at = $4, claim_id = $5, last_polled_at = $2
           FROM due WHERE p.provider_account_id = due.provider_account_id
         RETURNING p.provider_account_id, p.failures`,
        [accountIds, now, CLAIM_BATCH, new Date(now.getTime() + this.leaseMs), claimId],
      );
      const queue = [...claimed];
      const worker = async () => {
        for (let next = queue.shift(); next; next = queue.shift()) {
          outcomes.push(await this.pollAccount(next.provider_account_id, next.failures, claimId, now));
        }
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, queue.length) }, worker));
      if (claimed.length < CLAIM_BATCH) break;
    }
    return outcomes;
  }

  /** Reads one inbox and records the result; never throws (one account must not stop the others). */
  private async pollAccount(
    providerAccountId: string,
    failures: number,
    claimId: string,
    claimedAt: Date,
  ): Promise<InboxPollOutcome> {
    let reason: string;
    let category: string;
    try {
      const found = await this.clients.forAccount(providerAccountId);
      if (!found) throw new Error('provider account not found');
      const inbox = await found.client.inbox();
      if (inbox.kind === 'inbox') {
        const result = await this.intake.store(providerAccountId, inbox.items, this.clock.now());
        await this.record(providerAccountId, claimId, {
          nextPollAt: new Date(claimedAt.getTime() + this.intervalMs),
          failures: 0,
          error: null,
        });
        inboxPolls.inc({ outcome: 'polled' });
        if (result.stored > 0) this.logger.log({ accountId: providerAccountId, ...result }, 'inbound SMS stored');
        return { kind: 'polled', providerAccountId, ...result };
      }
      reason = `inbox.php: ${inbox.reason}`;
      category = 'provider_answer';
    } catch (e) {
      reason = e instanceof ProviderError ? `${e.code}: ${e.message}` : (e as Error).message;
      category = e instanceof ProviderError ? e.code : 'internal';
    }
    const attempt = failures + 1;
    const backoffMs = Math.min(this.intervalMs * 2 ** Math.min(attempt, 20), Math.max(this.intervalMs, MAX_BACKOFF_MS));
    inboxPolls.inc({ outcome: 'failed' });
    // Reasons come redacted from the provider client but may quote its body: the log line gets the
    // category, inbox_polls.last_error the detail (for admins).
    this.logger.warn({ accountId: providerAccountId, failures: attempt, category }, 'inbox poll failed');
    await this.record(providerAccountId, claimId, {
      nextPollAt: new Date(this.clock.now().getTime() + backoffMs),
      failures: attempt,
      error: reason.slice(0, 500),
    }).catch((e: Error) =>
      this.logger.warn({ accountId: providerAccountId, err: e.message }, 'inbox poll not recorded'),
    );
    return { kind: 'failed', providerAccountId, reason, failures: attempt };
  }

  /** Writes a poll's result, only while this round still holds the claim. */
  private async record(
    providerAccountId: string,
    claimId: string,
    r: { nextPollAt: Date; failures: number; error: string | null },
  ): Promise<void> {
    await this.dataSource.query(
      `UPDATE inbox_polls
          SET next_poll_at = $3, failures = $4, last_error = $5, claim_id = NULL,
              last_success_at = CASE WHEN $5::text IS NULL THEN $6 ELSE last_success_at END
        WHERE provider_account_id = $1 AND claim_id = $2`,
      [providerAccountId, claimId, r.nextPollAt, r.failures, r.error, this.clock.now()],
    );
  }
}

import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { PeriodicJob } from '../common/periodic-job';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { rows as sqlRows } from '../database/raw-rows';
import { ProviderError } from './client/provider-error';
import { ProviderClients } from './provider-clients.service';
import {
  providerBalanceAlertGauge,
  providerBalanceAlerts,
  providerBalanceExpiryGauge,
  providerBalanceGauge,
  providerBalancePolls,
  providerHeldGauge,
} from './provider-wallet.metrics';
import { assessWallet, type WalletAlertReason } from './wallet-rules';

/**
 * Holds set by this service start with this prefix, and only those are lifted by a poll that shows
 * credit. A hold set by a 50/51 delivery report (messaging) has its own reason and lapses by itself:
 * a balance that is positive but below one message's price would otherwise flap between "released"
 * and another burst of 50s.
 */
export const WALLET_HOLD_PREFIX = 'balance.php: ';

const INTERVAL_NAME = 'provider-wallet-poll';
/** Accounts claimed per round trip of the poll loop. */
const CLAIM_BATCH = 10;

/**
 * What one balance check found, named like the send outcomes:
 * - `balance`: balance.php answered a balance; `effect` says whether dispatch was held or released.
 * - `error`: no balance (transport failure, wrong credentials, unreadable body); nothing changed.
 */
export type WalletCheck =
  | {
      kind: 'balance';
      balance: string;
      expiresAt: Date;
      reasons: WalletAlertReason[];
      effect: 'held' | 'released' | null;
    }
  /** `noAnswer`: the provider gave no answer at all (refused, timed out, connection lost: a ProviderError). */
  | { kind: 'error'; reason: string; noAnswer: boolean };

/**
 * The provider's wallet watch: reads `balance.php` of every active provider account every
 * PROVIDER_BALANCE_POLL_SECONDS, keeps each reading (`provider_balance_checks`), raises an alert
 * (log warn, metrics, the admin-visible `alert`) when an account runs low or close to its expiry,
 * and holds dispatch through an account whose wallet is empty or lapsed (its messages stay queued
 * instead of burning into 50/51 failures) until a poll shows credit again.
 *
 * Several gateway processes: an account is claimed for a turn by moving its `next_balance_poll_at`
 * forward in one statement under FOR UPDATE SKIP LOCKED, before balance.php is called, so two
 * processes never poll the same account for the same turn. A process that dies after claiming just
 * skips that turn.
 *
 * A hold is a lease (`held_until`), renewed by every poll that still finds the wallet empty or lapsed,
 * and re-checked every `recheckMs` (≤ 60 s) so a top-up is noticed quickly. If balance.php keeps
 * failing the lease runs out and sending resumes: a 50/51 report then holds again (messaging), so an
 * unreadable balance page never stalls an account for good.
 */
@Injectable()
export class ProviderWalletService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ProviderWalletService.name);
  readonly pollMs: number;
  /** How often a held account is re-read (the first read after a top-up releases it). */
  readonly recheckMs: number;
  /** How long one poll's hold lasts unless renewed. */
  readonly holdLeaseMs: number;
  private readonly defaultLowBalanceThreshold: number;
  private readonly job: PeriodicJob;
  private stopped = false;

  constructor(
    private readonly dataSource: DataSource,
    private readonly clients: ProviderClients,
    private readonly clock: Clock,
    scheduler: SchedulerRegistry,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    this.job = new PeriodicJob(
      scheduler,
      INTERVAL_NAME,
      () => (this.stopped ? Promise.resolve() : this.pollDue()),
      (e) => this.logger.error({ err: e.message }, 'provider wallet poll failed'),
    );
    this.pollMs = config.provider.balancePollSeconds * 1000;
    this.recheckMs = Math.min(this.pollMs, 60_000);
    this.holdLeaseMs = 2 * this.pollMs;
    this.defaultLowBalanceThreshold = config.provider.lowBalanceThreshold;
  }

  onApplicationBootstrap(): void {
    // The tick only asks the database which accounts are due (by the injected clock), so it can be
    // much shorter than the poll interval without reading balance.php any more often.
    this.job.start(Math.min(10_000, this.recheckMs));
  }

  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    await this.job.stop();
  }

  /** Resolves when the scheduled poll in progress (if any) has finished. */
  async idle(): Promise<void> {
    await this.job.idle();
  }

  /** Claims and checks every due account, a batch at a time. Returns how many were checked. */
  async pollDue(): Promise<number> {
    let checked = 0;
    while (!this.stopped) {
      const claimed = await this.claimDue();
      if (claimed.length === 0) break;
      // One account's failure (e.g. a lost connection mid-write) must not skip the others' turns.
      await Promise.all(
        claimed.map((id) =>
          this.check(id, 'poll').catch((e: Error) =>
            this.logger.error({ accountId: id, err: e.message }, 'provider balance check failed'),
          ),
        ),
      );
      checked += claimed.length;
    }
    return checked;
  }

  /**
   * Due: never polled, its time has come, or held (by us or by a 50/51 report) and not re-read
   * within `recheckMs`. The claim moves `next_balance_poll_at` before balance.php is called.
   */
  private async claimDue(): Promise<string[]> {
    const now = this.clock.now();
    const recheckAt = new Date(now.getTime() + this.recheckMs);
    const claimed = await sqlRows<{ id: string }>(
      this.dataSource,
      `UPDATE provider_accounts p
          SET next_balance_poll_at = CASE WHEN p.held_until > $1 THEN $2 ELSE $3 END
        WHERE p.id IN (
          SELECT id FROM provider_accounts
           WHERE status = 'active'
             AND (next_balance_poll_at IS NULL OR next_balance_poll_at <= $1
                  OR (held_until > $1 AND next_balance_poll_at > $2))
           ORDER BY next_balance_poll_at NULLS FIRST
           LIMIT $4
           FOR UPDATE SKIP LOCKED)
        RETURNING p.id`,
      [now, recheckAt, new Date(now.getTime() + this.pollMs), CLAIM_BATCH],
    );
    return claimed.map((r) => r.id);
  }

  /**
   * Reads balance.php of one account now and applies it: a history row, the last value, the alert,
   * and the hold or its release. `live` is an admin's read (GET …/balance); it applies the same way.
   */
  async check(accountId: string, source: 'poll' | 'live'): Promise<WalletCheck> {
    let reading: { balance: string; expiresAt: Date } | undefined;
    let error: string | undefined;
    let noAnswer = false;
    try {
      const found = await this.clients.forAccount(accountId);
      if (!found) return { kind: 'error', reason: 'provider account not found', noAnswer: false };
      const r = await found.client.balance();
      if (r.kind === 'balance') reading = { balance: r.balance, expiresAt: r.expiresAt };
      else error = r.reason.slice(0, 500);
    } catch (e) {
      noAnswer = e instanceof ProviderError;
      error = (e as { code?: string }).code ?? 'provider_error';
    }
    providerBalancePolls.inc({ source, outcome: reading ? 'balance' : 'error' });
    const now = this.clock.now();
    if (!reading) {
      await this.dataSource.query(
        `INSERT INTO provider_balance_checks (provider_account_id, checked_at, source, outcome, error)
         VALUES ($1, $2, $3, 'error', $4)`,
        [accountId, now, source, error],
      );
      this.logger.warn({ accountId, source, error }, 'provider balance could not be read');
      return { kind: 'error', reason: error!, noAnswer };
    }
    return this.apply(accountId, source, reading, now);
  }

  private async apply(
    accountId: string,
    source: 'poll' | 'live',
    reading: { balance: string; expiresAt: Date },
    now: Date,
  ): Promise<WalletCheck> {
    const result = await this.dataSource.transaction(async (m) => {
      // The row lock orders this against a concurrent check and a 50/51 hold of the same account.
      const [before] = await sqlRows<{
        low_balance_threshold: string | null;
        held_until: Date | null;
        held_reason: string | null;
        balance_alert_reasons: string[];
      }>(
        m,
        `SELECT low_balance_threshold, held_until, held_reason, balance_alert_reasons
           FROM provider_accounts WHERE id = $1 FOR UPDATE`,
        [accountId],
      );
      if (!before) return undefined;
      const threshold =
        before.low_balance_threshold === null ? this.defaultLowBalanceThreshold : Number(before.low_balance_threshold);
      const { reasons, hold } = assessWallet(reading, threshold, now);
      const heldNow = before.held_until !== null && before.held_until > now;
      const heldByWallet = heldNow && (before.held_reason ?? '').startsWith(WALLET_HOLD_PREFIX);
      let effect: 'held' | 'released' | null = null;
      let heldUntil = before.held_until;
      let heldReason = before.held_reason;
      if (hold) {
        const lease = new Date(now.getTime() + this.holdLeaseMs);
        heldUntil = heldNow && before.held_until! > lease ? before.held_until : lease;
        heldReason =
          hold === 'empty'
            ? `${WALLET_HOLD_PREFIX}balance empty (${reading.balance})`
            : `${WALLET_HOLD_PREFIX}validity expired at ${reading.expiresAt.toISOString()}`;
        if (!heldByWallet) effect = 'held';
      } else if ((before.held_reason ?? '').startsWith(WALLET_HOLD_PREFIX)) {
        heldUntil = null;
        heldReason = null;
        if (heldByWallet) effect = 'released';
      }
      // Next turn: the recheck while held (by us or by a 50/51 report: otherwise the claim would find a
      // held account with a far turn due again at every tick); else the interval, but right after the
      // expiry if that comes first (a hold cannot be set in advance: dispatch only knows "held until").
      const heldAfter = heldUntil !== null && heldUntil > now;
      const expiresIn = reading.expiresAt.getTime() - now.getTime();
      const nextIn = heldAfter ? this.recheckMs : expiresIn > 0 ? Math.min(this.pollMs, expiresIn + 1000) : this.pollMs;
      await m.query(
        `UPDATE provider_accounts
            SET last_balance = $2, last_balance_expires_at = $3, last_balance_checked_at = $4,
                balance_alert_reasons = $5, held_until = $6, held_reason = $7, next_balance_poll_at = $8
          WHERE id = $1`,
        [
          accountId,
          reading.balance,
          reading.expiresAt,
          now,
          reasons,
          heldUntil,
          heldReason,
          new Date(now.getTime() + nextIn),
        ],
      );
      await m.query(
        `INSERT INTO provider_balance_checks (provider_account_id, checked_at, source, outcome, balance, expires_at, effect)
         VALUES ($1, $2, $3, 'balance', $4, $5, $6)`,
        [accountId, now, source, reading.balance, reading.expiresAt, effect],
      );
      const raised = reasons.filter((r) => !before.balance_alert_reasons.includes(r));
      return { reasons, raised, effect, held: heldAfter, heldReason };
    });
    if (!result) return { kind: 'error', reason: 'provider account not found', noAnswer: false };

    const labels = { account: accountId };
    providerBalanceGauge.set(labels, Number(reading.balance));
    providerBalanceExpiryGauge.set(labels, Math.floor(reading.expiresAt.getTime() / 1000));
    providerBalanceAlertGauge.set(labels, result.reasons.length > 0 ? 1 : 0);
    providerHeldGauge.set(labels, result.held && (result.heldReason ?? '').startsWith(WALLET_HOLD_PREFIX) ? 1 : 0);
    for (const reason of result.raised) providerBalanceAlerts.inc({ reason });
    if (result.raised.length > 0) {
      this.logger.warn(
        {
          accountId,
          reasons: result.reasons,
          balance: reading.balance,
          expiresAt: reading.expiresAt.toISOString(),
        },
        'provider balance alert',
      );
    }
    if (result.effect === 'held') {
      this.logger.warn({ accountId, reason: result.heldReason }, 'provider wallet empty or lapsed: holding its queue');
    } else if (result.effect === 'released') {
      this.logger.log({ accountId, balance: reading.balance }, 'provider wallet has credit again: queue released');
    }
    return {
      kind: 'balance',
      balance: reading.balance,
      expiresAt: reading.expiresAt,
      reasons: result.reasons,
      effect: result.effect,
    };
  }
}

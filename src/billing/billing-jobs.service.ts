import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { BalanceNoticesService } from './balance-notices.service';
import { LedgerService } from './ledger.service';

const INTERVAL_NAME = 'billing-jobs';
const EVERY_MS = 60_000;

/**
 * Billing's scheduled work, once a minute on `@nestjs/schedule`: the forfeiture sweep (graceUntil passed;
 * reads and charges also forfeit lazily) and the `balance.expiring` notices. Every gateway process runs it;
 * both jobs decide per tenant under the tenant's row lock, so running them concurrently forfeits or
 * notifies each tenant once (test/billing/expiry-job.test.ts). Not started under NODE_ENV=test: tests call
 * `runOnce()` (or the jobs) when they mean it, with the test clock.
 */
@Injectable()
export class BillingJobsService implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(BillingJobsService.name);
  private running?: Promise<void>;

  constructor(
    private readonly ledger: LedgerService,
    private readonly notices: BalanceNoticesService,
    private readonly scheduler: SchedulerRegistry,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  onApplicationBootstrap(): void {
    if (this.config.nodeEnv === 'test') return;
    const timer = setInterval(() => this.tick(), EVERY_MS);
    timer.unref();
    this.scheduler.addInterval(INTERVAL_NAME, timer);
  }

  async beforeApplicationShutdown(): Promise<void> {
    if (this.scheduler.doesExist('interval', INTERVAL_NAME)) this.scheduler.deleteInterval(INTERVAL_NAME);
    await this.running;
  }

  /** One run of both jobs (forfeit first: a forfeited tenant has nothing left to be warned about). */
  async runOnce(): Promise<{ expired: number; notices: number }> {
    const expired = await this.ledger.sweepExpired();
    const notices = await this.notices.notifyExpiring();
    return { expired, notices };
  }

  private tick(): void {
    if (this.running) return; // a slow run is not overlapped within one process
    this.running = this.runOnce()
      .then(({ expired, notices }) => {
        if (expired || notices) this.logger.log({ expired, notices }, 'billing jobs ran');
      })
      .catch((e: Error) => this.logger.warn({ err: e.message }, 'billing jobs failed'))
      .finally(() => (this.running = undefined));
  }
}

import { BeforeApplicationShutdown, Inject, Injectable, Logger, OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { PeriodicJob } from '../common/periodic-job';
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
  private readonly job: PeriodicJob;

  constructor(
    private readonly ledger: LedgerService,
    private readonly notices: BalanceNoticesService,
    scheduler: SchedulerRegistry,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {
    this.job = new PeriodicJob(
      scheduler,
      INTERVAL_NAME,
      async () => {
        const { expired, notices } = await this.runOnce();
        if (expired || notices) this.logger.log({ expired, notices }, 'billing jobs ran');
      },
      (e) => this.logger.warn({ err: e.message }, 'billing jobs failed'),
    );
  }

  onApplicationBootstrap(): void {
    if (this.config.nodeEnv === 'test') return;
    this.job.start(EVERY_MS);
  }

  async beforeApplicationShutdown(): Promise<void> {
    await this.job.stop();
  }

  /** One run of both jobs (forfeit first: a forfeited tenant has nothing left to be warned about). */
  async runOnce(): Promise<{ expired: number; notices: number }> {
    const expired = await this.ledger.sweepExpired();
    const notices = await this.notices.notifyExpiring();
    return { expired, notices };
  }
}

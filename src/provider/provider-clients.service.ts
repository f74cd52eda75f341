import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import { DataSource } from 'typeorm';
import { Clock } from '../common/clock';
import { clockTtlCache, dropIfCachedLater } from '../common/ttl-cache';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { ProviderAccount } from './provider-account.entity';
import { ProviderAccountsService } from './provider-accounts.service';
import { ProviderAccountConfig, ProviderClient, ProviderClientRegistry } from './client';

/** An account row is read again after this long (of the Clock). */
const ACCOUNT_TTL_MS = 2000;
const MAX_ACCOUNTS = 10_000;

interface CachedAccount {
  account: ProviderAccount;
  config: ProviderAccountConfig;
  /** The row's updatedAt: the same version keeps its decrypted config and its client. */
  version: string;
}

/**
 * One ProviderClient per provider account, rebuilt when the account row changes (updatedAt): new
 * credentials, or new send settings (`sendRatePerSecond`, `maxInFlight`), whose gate is built from the
 * account's own values (the PROVIDER_* environment defaults where the account has none). A PATCH reaches
 * every process within the row cache's 2 s, without a restart. Balance polls write with plain SQL and
 * do not move updated_at, so they never rebuild a client (nor reset its breaker and pool).
 */
@Injectable()
export class ProviderClients implements OnApplicationShutdown {
  private readonly registry: ProviderClientRegistry;
  private readonly accounts: LRUCache<string, CachedAccount>;

  constructor(
    private readonly dataSource: DataSource,
    private readonly providerAccounts: ProviderAccountsService,
    clock: Clock,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
    // A stale entry stays until its reload (no autopurge), and the reload is handed it: an unchanged
    // row keeps its decrypted config. Concurrent sends of one account share one reload.
    this.accounts = clockTtlCache<string, CachedAccount>(clock, {
      max: MAX_ACCOUNTS,
      ttl: ACCOUNT_TTL_MS,
      fetchMethod: async (accountId, stale) => {
        const account = await this.dataSource.getRepository(ProviderAccount).findOneBy({ id: accountId });
        if (!account) return undefined;
        // Decrypt only when the row changed (admin edits bump updated_at): not once per send.
        const version = account.updatedAt.toISOString();
        const config = stale?.version === version ? stale.config : this.providerAccounts.clientConfig(account);
        return { account, config, version };
      },
    });
    // A PATCH in this process takes effect here at once (the next read loads the new row and version).
    providerAccounts.onChanged((accountId) => this.accounts.delete(accountId));
    const p = config.provider;
    this.registry = new ProviderClientRegistry({
      clientOptions: {
        connectTimeoutMs: p.connectTimeoutMs,
        totalTimeoutMs: p.totalTimeoutMs,
        // Defaults only: each account's own sendRatePerSecond/maxInFlight (forAccount) override them.
        // 0 = unlimited. The real provider publishes no limit; 100/s per account is a polite default.
        maxInFlight: p.maxInFlight,
        maxConnections: p.maxInFlight,
        sendRatePerSecond: p.sendRatePerSecond,
        breakerThreshold: p.breakerThreshold,
        breakerHalfOpenAfterMs: p.breakerHalfOpenMs,
      },
    });
  }

  async forAccount(accountId: string): Promise<{ client: ProviderClient; account: ProviderAccount } | null> {
    dropIfCachedLater(this.accounts, accountId);
    const cached = await this.accounts.fetch(accountId);
    if (!cached) return null;
    const limits = this.providerAccounts.settingsOf(cached.account);
    return {
      client: this.registry.get(cached.config, cached.version, {
        sendRatePerSecond: limits.sendRatePerSecond,
        maxInFlight: limits.maxInFlight,
      }),
      account: cached.account,
    };
  }

  async onApplicationShutdown(): Promise<void> {
    await this.registry.closeAll();
  }
}

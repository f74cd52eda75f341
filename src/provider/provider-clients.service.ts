import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, type AppConfig } from '../config/config';
import { ProviderAccount } from './provider-account.entity';
import { ProviderAccountsService } from './provider-accounts.service';
import { ProviderAccountConfig, ProviderClient, ProviderClientRegistry } from './client';

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
  private readonly accounts = new Map<
    string,
    { account: ProviderAccount; config: ProviderAccountConfig; version: string; until: number }
  >();

  constructor(
    private readonly dataSource: DataSource,
    private readonly providerAccounts: ProviderAccountsService,
    @Inject(APP_CONFIG) config: AppConfig,
  ) {
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
    const now = Date.now();
    let cached = this.accounts.get(accountId);
    if (!cached || cached.until < now) {
      const account = await this.dataSource.getRepository(ProviderAccount).findOneBy({ id: accountId });
      if (!account) return null;
      // Decrypt only when the row changed (admin edits bump updated_at): not once per send.
      const version = account.updatedAt.toISOString();
      const config = cached && cached.version === version ? cached.config : this.providerAccounts.clientConfig(account);
      cached = { account, config, version, until: now + 2000 };
      this.accounts.set(accountId, cached);
    }
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

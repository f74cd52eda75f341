import { Inject, Injectable, OnApplicationShutdown } from '@nestjs/common';
import { DataSource } from 'typeorm';
import { APP_CONFIG, AppConfig } from '../config/config';
import { ProviderAccount } from './provider-account.entity';
import { ProviderAccountsService } from './provider-accounts.service';
import { ProviderAccountConfig, ProviderClient, ProviderClientRegistry } from './client';

/** One ProviderClient per provider account, rebuilt when the account row changes (updatedAt). */
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
        maxInFlight: p.maxInFlight,
        maxConnections: p.maxInFlight,
        // 0 = unlimited. The real provider publishes no limit; 100/s per account is a polite default.
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
    return { client: this.registry.get(cached.config, cached.version), account: cached.account };
  }

  async onApplicationShutdown(): Promise<void> {
    await this.registry.closeAll();
  }
}

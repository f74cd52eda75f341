import { createHash } from 'node:crypto';
import { HttpProviderClient, type HttpProviderClientOptions } from './http-provider-client';
import type { ProviderAccountConfig, ProviderClient } from './provider-client';

export type ProviderClientFactory = (config: ProviderAccountConfig) => ProviderClient;

interface Entry {
  version: string;
  client: ProviderClient;
}

/**
 * One client (one pool, one breaker, one rate limit) per provider account, rebuilt when the account's
 * configuration changes.
 *
 * A cached client is reused while its version matches. The caller passes a version (e.g. the account
 * row's `updatedAt`); without one, a SHA-256 fingerprint of the config is used (the password only ever
 * enters the hash, never the map). A replaced client is closed gracefully: sends already dispatched on
 * it finish and keep their outcome; new sends on a stale reference return `unavailable`.
 */
export class ProviderClientRegistry {
  private readonly clients = new Map<string, Entry>();
  private readonly closing = new Set<Promise<void>>();
  private readonly factory: ProviderClientFactory;

  constructor(options: { clientOptions?: HttpProviderClientOptions; factory?: ProviderClientFactory } = {}) {
    this.factory = options.factory ?? ((config) => new HttpProviderClient(config, options.clientOptions));
  }

  static fingerprint(config: ProviderAccountConfig): string {
    return createHash('sha256')
      .update(JSON.stringify([config.accountId, config.baseUrl, config.username, config.password, config.sendMethod]))
      .digest('hex');
  }

  get(config: ProviderAccountConfig, version?: string): ProviderClient {
    const wanted = version ?? ProviderClientRegistry.fingerprint(config);
    const entry = this.clients.get(config.accountId);
    if (entry && entry.version === wanted) return entry.client;
    const client = this.factory(config);
    this.clients.set(config.accountId, { version: wanted, client });
    // The old client closes in the background; closeAll() awaits it through `closing`, and retire() never rejects.
    if (entry) void this.retire(entry.client);
    return client;
  }

  /** The cached client of an account, if any (no build). */
  peek(accountId: string): ProviderClient | undefined {
    return this.clients.get(accountId)?.client;
  }

  get size(): number {
    return this.clients.size;
  }

  /** Drops an account's client (e.g. the account was disabled). */
  async evict(accountId: string): Promise<void> {
    const entry = this.clients.get(accountId);
    if (!entry) return;
    this.clients.delete(accountId);
    await this.retire(entry.client);
  }

  async closeAll(): Promise<void> {
    const entries = [...this.clients.values()];
    this.clients.clear();
    await Promise.all([...entries.map((e) => this.retire(e.client)), ...this.closing]);
  }

  private retire(client: ProviderClient): Promise<void> {
    const done = client
      .close()
      .catch(() => undefined)
      .finally(() => this.closing.delete(done));
    this.closing.add(done);
    return done;
  }
}

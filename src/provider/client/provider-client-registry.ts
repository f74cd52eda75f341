import { createHash } from 'node:crypto';
import { HttpProviderClient, type HttpProviderClientOptions } from './http-provider-client';
import type { ProviderAccountConfig, ProviderClient } from './provider-client';

/** Send admission settings of one account (its own `sendRatePerSecond`/`maxInFlight`, or the defaults). */
export interface ProviderSendLimits {
  /** 0 = no rate limit. */
  sendRatePerSecond: number;
  maxInFlight: number;
}

export type ProviderClientFactory = (config: ProviderAccountConfig, limits?: ProviderSendLimits) => ProviderClient;

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
    this.factory =
      options.factory ??
      ((config, limits) =>
        new HttpProviderClient(
          config,
          limits
            ? {
                ...options.clientOptions,
                sendRatePerSecond: limits.sendRatePerSecond,
                maxInFlight: limits.maxInFlight,
                maxConnections: limits.maxInFlight,
              }
            : options.clientOptions,
        ));
  }

  static fingerprint(config: ProviderAccountConfig, limits?: ProviderSendLimits): string {
    return createHash('sha256')
      .update(
        JSON.stringify([
          config.accountId,
          config.baseUrl,
          config.username,
          config.password,
          config.sendMethod,
          limits?.sendRatePerSecond,
          limits?.maxInFlight,
        ]),
      )
      .digest('hex');
  }

  /**
   * `limits` (optional) override the client options' rate and in-flight limit for this account; a change
   * of them must change the version too (the fingerprint includes them), so the gate is rebuilt.
   */
  get(config: ProviderAccountConfig, version?: string, limits?: ProviderSendLimits): ProviderClient {
    const wanted = version ?? ProviderClientRegistry.fingerprint(config, limits);
    const entry = this.clients.get(config.accountId);
    if (entry && entry.version === wanted) return entry.client;
    const client = this.factory(config, limits);
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

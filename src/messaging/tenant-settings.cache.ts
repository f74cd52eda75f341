import { Injectable } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import { Clock } from '../common/clock';
import { clockTtlCache, dropIfCachedLater } from '../common/ttl-cache';
import { TenantSettings, TenantsService } from '../tenants/tenants.service';

export type { TenantSettings } from '../tenants/tenants.service';

const TTL_MS = 1000;
const MAX_TENANTS = 10_000;

/**
 * Settings read on every send (rate limit, price for previews), from TenantsService. Cached for one
 * second of the injected Clock (tests move the clock instead of sleeping): an admin's change is seen
 * within a second. Concurrent misses of one tenant share one load (lru-cache `fetch`). Money decisions
 * never use this cache: the accept transaction reads price and status under the tenant row lock.
 */
@Injectable()
export class TenantSettingsCache {
  private readonly cache: LRUCache<string, TenantSettings>;

  constructor(
    private readonly tenants: TenantsService,
    clock: Clock,
  ) {
    this.cache = clockTtlCache<string, TenantSettings>(clock, {
      max: MAX_TENANTS,
      ttl: TTL_MS,
      fetchMethod: async (tenantId) => {
        const settings = await this.tenants.settings(tenantId);
        if (!settings) throw new Error(`tenant ${tenantId} vanished`);
        return settings;
      },
    });
  }

  async get(tenantId: string): Promise<TenantSettings> {
    dropIfCachedLater(this.cache, tenantId);
    const settings = await this.cache.fetch(tenantId);
    // Never undefined: the fetchMethod throws instead.
    if (!settings) throw new Error(`tenant ${tenantId} settings could not be loaded`);
    return settings;
  }
}

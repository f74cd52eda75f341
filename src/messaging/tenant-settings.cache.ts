import { Injectable } from '@nestjs/common';
import { DataSource } from 'typeorm';

export interface TenantSettings {
  status: 'active' | 'suspended';
  pricePerSegment: number;
  rateLimitPerSecond: number;
}

const TTL_MS = 1000;

/**
 * Settings read on every send (rate limit, price for previews). Cached for one second: a change by
 * an admin is seen within a second. Money decisions never use this cache: the accept transaction
 * reads price and status under the tenant row lock.
 */
@Injectable()
export class TenantSettingsCache {
  private readonly cache = new Map<string, { value: TenantSettings; until: number }>();
  private readonly loading = new Map<string, Promise<TenantSettings>>();

  constructor(private readonly dataSource: DataSource) {}

  async get(tenantId: string): Promise<TenantSettings> {
    const hit = this.cache.get(tenantId);
    if (hit && hit.until > Date.now()) return hit.value;
    let p = this.loading.get(tenantId);
    if (!p) {
      p = this.load(tenantId).finally(() => this.loading.delete(tenantId));
      this.loading.set(tenantId, p);
    }
    return p;
  }

  private async load(tenantId: string): Promise<TenantSettings> {
    const rows: { status: 'active' | 'suspended'; price_per_segment: string; rate_limit_per_second: number }[] =
      await this.dataSource.query(
        `SELECT status, price_per_segment, rate_limit_per_second FROM tenants WHERE id = $1`,
        [tenantId],
      );
    if (rows.length === 0) throw new Error(`tenant ${tenantId} vanished`);
    const value = {
      status: rows[0].status,
      pricePerSegment: Number(rows[0].price_per_segment),
      rateLimitPerSecond: rows[0].rate_limit_per_second,
    };
    this.cache.set(tenantId, { value, until: Date.now() + TTL_MS });
    return value;
  }
}

import { Injectable, Logger } from '@nestjs/common';
import { LRUCache } from 'lru-cache';
import { createHash, randomBytes } from 'node:crypto';
import { DataSource, IsNull, Repository } from 'typeorm';
import { Clock } from '../common/clock';
import { clockTtlCache, dropIfCachedLater } from '../common/ttl-cache';
import { toPublicId, uuidv7, fromPublicId } from '../common/ids';
import { pageByIdDesc } from '../common/pagination';
import { notFound } from '../common/problem';
import { ApiKey } from './api-key.entity';

/**
 * Tenant API keys: `gbk_` + 40 base62 characters (~238 bits). Only a SHA-256 of the key is stored
 * (a slow KDF is for low-entropy passwords; a random key of this size cannot be brute-forced and
 * must be checked at thousands of requests per second). The first 12 characters are kept as a
 * visible prefix so people can tell keys apart.
 */
export const API_KEY_PATTERN = /^gbk_[A-Za-z0-9]{40}$/;
const BASE62 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** How long a verified key is trusted from memory before the database is asked again. */
const CACHE_TTL_MS = 5000;
/** lastUsedAt is written at most this often per key. */
const LAST_USED_WRITE_INTERVAL_MS = 60_000;
const MAX_CACHED_KEYS = 10_000;

export interface ResolvedKey {
  apiKeyId: string;
  tenantId: string;
}

export function generateApiKey(): string {
  const bytes = randomBytes(40);
  let s = '';
  // 256 is not a multiple of 62; rejection sampling keeps the characters uniform.
  for (let i = 0; s.length < 40; i++) {
    if (i >= bytes.length) return generateApiKey();
    if (bytes[i] < 248) s += BASE62[bytes[i] % 62];
  }
  return `gbk_${s}`;
}

export const hashApiKey = (key: string): Buffer => createHash('sha256').update(key).digest();

@Injectable()
export class ApiKeysService {
  private readonly logger = new Logger(ApiKeysService.name);
  private readonly repo: Repository<ApiKey>;
  /**
   * Verified keys, by the base64 of their hash. An unknown or revoked key is not cached (its fetch
   * returns undefined): each try asks the database, and a new key works at once.
   */
  private readonly verified: LRUCache<string, ResolvedKey>;
  /** Keys whose lastUsedAt was written within the last LAST_USED_WRITE_INTERVAL_MS. */
  private readonly lastUsedWritten: LRUCache<string, true>;

  constructor(
    private readonly dataSource: DataSource,
    private readonly clock: Clock,
  ) {
    this.repo = dataSource.getRepository(ApiKey);
    this.verified = clockTtlCache<string, ResolvedKey>(clock, {
      max: MAX_CACHED_KEYS,
      ttl: CACHE_TTL_MS,
      fetchMethod: async (cacheKey) => {
        const rows: { id: string; tenant_id: string }[] = await this.dataSource.query(
          `SELECT id, tenant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`,
          [Buffer.from(cacheKey, 'base64')],
        );
        return rows.length === 0 ? undefined : { apiKeyId: rows[0].id, tenantId: rows[0].tenant_id };
      },
    });
    this.lastUsedWritten = clockTtlCache<string, true>(clock, {
      max: MAX_CACHED_KEYS,
      ttl: LAST_USED_WRITE_INTERVAL_MS,
    });
  }

  async create(tenantId: string, name: string | null) {
    const key = generateApiKey();
    const row = this.repo.create({ id: uuidv7(), tenantId, name, prefix: key.slice(0, 12), keyHash: hashApiKey(key) });
    await this.repo.insert(row);
    const saved = await this.repo.findOneByOrFail({ id: row.id });
    return { ...this.toView(saved), key };
  }

  /** A tenant's keys, newest first (ids are UUIDv7), a page of `limit` after `cursor` (API.md "Lists"). */
  list(tenantId: string, limit: number, cursor?: string) {
    if (!tenantId) throw new Error('ApiKeysService.list needs a tenant id'); // never an unscoped list
    const query = this.repo.createQueryBuilder('k').where('k.tenantId = :tenantId', { tenantId });
    return pageByIdDesc(query, 'k', limit, cursor, (k) => this.toView(k));
  }

  /** Revokes a key of this tenant; revoking twice is fine. Effective at once in this process, within 5 s elsewhere. */
  async revoke(tenantId: string, publicKeyId: string): Promise<void> {
    const id = fromPublicId('apiKey', publicKeyId);
    if (!id) throw notFound('API key');
    const key = await this.repo.findOneBy({ id, tenantId });
    if (!key) throw notFound('API key');
    await this.repo.update({ id, tenantId, revokedAt: IsNull() }, { revokedAt: this.clock.now() });
    const cached = [...this.verified.entries()].filter(([, key]) => key.apiKeyId === id);
    for (const [cacheKey] of cached) this.verified.delete(cacheKey);
  }

  /** Resolves a presented key to its tenant, or null when it is unknown or revoked. */
  async resolve(presented: string): Promise<ResolvedKey | null> {
    if (!API_KEY_PATTERN.test(presented)) return null;
    const cacheKey = hashApiKey(presented).toString('base64');
    dropIfCachedLater(this.verified, cacheKey);
    const key = await this.verified.fetch(cacheKey);
    if (!key) return null;
    this.touch(key.apiKeyId);
    return key;
  }

  private touch(apiKeyId: string): void {
    dropIfCachedLater(this.lastUsedWritten, apiKeyId);
    if (this.lastUsedWritten.has(apiKeyId)) return;
    this.lastUsedWritten.set(apiKeyId, true);
    this.dataSource
      .query(`UPDATE api_keys SET last_used_at = $2 WHERE id = $1`, [apiKeyId, this.clock.now()])
      .catch((e: Error) => this.logger.warn({ apiKeyId, err: e.message }, 'could not record lastUsedAt'));
  }

  private toView(k: ApiKey) {
    return {
      id: toPublicId('apiKey', k.id),
      prefix: k.prefix,
      name: k.name,
      createdAt: k.createdAt,
      revokedAt: k.revokedAt,
      lastUsedAt: k.lastUsedAt,
    };
  }
}

import { LRUCache } from 'lru-cache';
import { Clock } from './clock';

/** What every cache in the app may hold: anything but null and undefined (lru-cache's own bound). */
type Cacheable = NonNullable<unknown>;

/**
 * A bounded TTL cache (lru-cache) whose time is the injected Clock, so tests expire entries by moving
 * the clock instead of sleeping. Every expiry check asks the Clock (`ttlResolution: 0`): no 1 ms "now"
 * memo that a moved clock would not invalidate. A load is not abandoned when its entry is evicted or
 * deleted meanwhile (`ignoreFetchAbort`): its caller still gets the value, so `fetch()` resolves
 * undefined only when the fetchMethod itself returns undefined ("nothing to cache").
 */
export function clockTtlCache<K extends Cacheable, V extends Cacheable, FC = unknown>(
  clock: Clock,
  options: LRUCache.OptionsBase<K, V, FC> & { max: number; ttl: number },
): LRUCache<K, V, FC> {
  return new LRUCache<K, V, FC>({
    ...options,
    ttlResolution: 0,
    perf: { now: () => clock.now().getTime() },
    ignoreFetchAbort: true,
  });
}

/**
 * Drops `key` if it was cached at a later time than the Clock now says (a test set the clock back):
 * its age is negative, and lru-cache would keep it until the clock caught up. Call before a read.
 */
export function dropIfCachedLater<K extends Cacheable, V extends Cacheable, FC>(
  cache: LRUCache<K, V, FC>,
  key: K,
): void {
  if (cache.getRemainingTTL(key) > cache.ttl) cache.delete(key);
}

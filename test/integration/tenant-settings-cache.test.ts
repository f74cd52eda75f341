import { TenantSettingsCache } from '../../src/messaging/tenant-settings.cache';
import { createTenant, startTestApp, TestApp, uuidOf } from '../support/app';

/**
 * The send path's settings cache expires on the app's Clock (lru-cache TTL with the Clock as its time
 * source), so tests move the clock instead of sleeping past it.
 */
describe('tenant settings cache', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ DISPATCHER: 'false' });
  });
  afterAll(async () => {
    await t.close();
  });

  it('serves a changed setting only after 1 s of the Clock; a clock moved back does not pin the old entry', async () => {
    const { tenantId } = await createTenant(t, { pricePerSegment: 100 });
    const cache = t.app.get(TenantSettingsCache);
    const patch = (rateLimitPerSecond: number) =>
      t.http
        .patch(`/v1/admin/tenants/${tenantId}`)
        .set('Authorization', `Bearer ${t.adminToken}`)
        .send({ rateLimitPerSecond })
        .expect(200);

    expect((await cache.get(uuidOf(tenantId))).rateLimitPerSecond).toBe(100);
    await patch(7);
    expect((await cache.get(uuidOf(tenantId))).rateLimitPerSecond).toBe(100); // cached
    t.clock.advance(500); // real time passes too (the PATCH): stay well inside the second
    expect((await cache.get(uuidOf(tenantId))).rateLimitPerSecond).toBe(100);
    t.clock.advance(600);
    expect((await cache.get(uuidOf(tenantId))).rateLimitPerSecond).toBe(7);

    await patch(9);
    t.clock.advance(-60_000); // e.g. a test resetting the clock: the entry's age is now negative
    expect((await cache.get(uuidOf(tenantId))).rateLimitPerSecond).toBe(9);
    t.clock.reset();
  });

  it('concurrent misses share one load and an unknown tenant fails', async () => {
    const { tenantId } = await createTenant(t, { pricePerSegment: 250 });
    const cache = t.app.get(TenantSettingsCache);
    const all = await Promise.all(Array.from({ length: 20 }, () => cache.get(uuidOf(tenantId))));
    expect(new Set(all).size).toBe(1);
    expect(all[0]).toMatchObject({ status: 'active', pricePerSegment: 250 });
    await expect(cache.get('00000000-0000-7000-8000-000000000000')).rejects.toThrow(/vanished/);
  });
});

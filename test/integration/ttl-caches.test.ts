import { randomBytes } from 'node:crypto';
import { DeliveryReportsService } from '../../src/dlr/delivery-reports.service';
import { ProviderClients } from '../../src/provider/provider-clients.service';
import { bearer, createTenant, startTestApp, TestApp, uuidOf } from '../support/app';

/**
 * The TTL caches in front of the database (src/common/ttl-cache.ts: lru-cache on the app's Clock):
 * each serves its entry for its TTL of the Clock and reads again after it, and a clock moved back does
 * not pin an entry. The rows change behind the app's back (plain SQL), as another process would change
 * them: only the TTL can make this process see it.
 */
describe('TTL caches on the Clock', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ DISPATCHER: 'false' });
  });
  afterAll(async () => {
    await t.close();
  });
  afterEach(() => t.clock.reset());

  it('DLR callback token → provider account: 30 s', async () => {
    const { providerAccountId } = await createTenant(t);
    const accountId = uuidOf(providerAccountId);
    const reports = t.app.get(DeliveryReportsService);
    const [{ dlr_token: token }] = await t.db.query(`SELECT dlr_token FROM provider_accounts WHERE id = $1`, [
      accountId,
    ]);
    const replace = () =>
      t.db.query(`UPDATE provider_accounts SET dlr_token = $2 WHERE id = $1`, [
        accountId,
        randomBytes(24).toString('base64url'),
      ]);

    expect(await reports.accountForToken(token)).toBe(accountId);
    await replace();
    t.clock.advance(29_000); // real time passes too: stay well inside the 30 s
    expect(await reports.accountForToken(token)).toBe(accountId);
    t.clock.advance(1_500);
    expect(await reports.accountForToken(token)).toBeNull();

    // An unknown token's null is cached as long; a clock moved back does not keep it.
    await t.db.query(`UPDATE provider_accounts SET dlr_token = $2 WHERE id = $1`, [accountId, token]);
    expect(await reports.accountForToken(token)).toBeNull();
    t.clock.advance(-60_000);
    expect(await reports.accountForToken(token)).toBe(accountId);
  });

  it('tenant API key: 5 s after a revocation elsewhere (at once when revoked here)', async () => {
    const { apiKey, keyId, tenantId } = await createTenant(t);
    const balance = () => t.http.get('/v1/balance').set(bearer(apiKey));

    expect((await balance()).status).toBe(200);
    await t.db.query(`UPDATE api_keys SET revoked_at = now() WHERE id = $1`, [uuidOf(keyId)]);
    t.clock.advance(4_000);
    expect((await balance()).status).toBe(200);
    t.clock.advance(1_500);
    expect((await balance()).status).toBe(401);

    const second = await t.http
      .post(`/v1/admin/tenants/${tenantId}/api-keys`)
      .set(bearer(t.adminToken))
      .send({ name: 'second' })
      .expect(201);
    expect((await t.http.get('/v1/balance').set(bearer(second.body.key))).status).toBe(200);
    await t.http
      .delete(`/v1/admin/tenants/${tenantId}/api-keys/${second.body.id}`)
      .set(bearer(t.adminToken))
      .expect(204);
    expect((await t.http.get('/v1/balance').set(bearer(second.body.key))).status).toBe(401);
  });

  it('provider account row: 2 s, and a missing account is null', async () => {
    const { providerAccountId } = await createTenant(t);
    const accountId = uuidOf(providerAccountId);
    const clients = t.app.get(ProviderClients);
    const rename = (name: string) =>
      t.db.query(`UPDATE provider_accounts SET name = $2, updated_at = now() WHERE id = $1`, [accountId, name]);

    const before = (await clients.forAccount(accountId))!.account.name;
    await rename(`${before} renamed`);
    t.clock.advance(1_000);
    expect((await clients.forAccount(accountId))!.account.name).toBe(before);
    t.clock.advance(1_500);
    expect((await clients.forAccount(accountId))!.account.name).toBe(`${before} renamed`);

    expect(await clients.forAccount('00000000-0000-7000-8000-000000000000')).toBeNull();
  });
});

import { bearer, countRows, createTenant, expectProblem, startTestApp, TestApp, unique } from '../support/app';

/**
 * The admin API of provider accounts (`/v1/admin/provider-accounts`): what an admin types is stored in the
 * form the provider client uses, refused with a 4xx problem when the client could not use it, and never
 * echoed back when it holds a secret. Real app, real PostgreSQL.
 */
describe('provider accounts admin', () => {
  let t: TestApp;
  let admin: Record<string, string>;

  beforeAll(async () => {
    t = await startTestApp();
    admin = bearer(t.adminToken);
  });
  afterAll(async () => {
    await t.close();
  });

  const create = (baseUrl: unknown) =>
    t.http
      .post('/v1/admin/provider-accounts')
      .set(admin)
      .send({ name: unique('pac'), baseUrl, username: 'u', password: 'provider-secret-pw' });

  it('a baseUrl accepted in another spelling (upper-case scheme or host) is stored as parsed, not a 500', async () => {
    const created = await create('HTTPS://SMS.Example/masking/');
    expect({ status: created.status, baseUrl: created.body.baseUrl }).toEqual({
      status: 201,
      baseUrl: 'https://sms.example/masking',
    });
    const patched = await t.http
      .patch(`/v1/admin/provider-accounts/${created.body.id}`)
      .set(admin)
      .send({ baseUrl: 'HTTP://127.0.0.1:9099/masking' });
    expect({ status: patched.status, baseUrl: patched.body.baseUrl }).toEqual({
      status: 200,
      baseUrl: 'http://127.0.0.1:9099/masking',
    });
  });

  it('a baseUrl with credentials, a query or a fragment is refused (400 naming baseUrl) and never echoed', async () => {
    const { providerAccountId } = await createTenant(t);
    const before = await countRows(t, 'provider_accounts');
    const stored = await t.db.query(`SELECT base_url, updated_at FROM provider_accounts ORDER BY id`);
    const urls = [
      'https://gerbang07:hunter2-secret@sms.example/masking',
      'https://gerbang07@sms.example/masking',
      'https://sms.example/masking?password=hunter2-secret',
      'https://sms.example/masking#hunter2-secret',
    ];
    for (const baseUrl of urls) {
      for (const res of [
        await create(baseUrl),
        await t.http.patch(`/v1/admin/provider-accounts/${providerAccountId}`).set(admin).send({ baseUrl }),
      ]) {
        expectProblem(res, 400, 'validation_failed');
        expect((res.body.errors as { field: string }[]).map((e) => e.field)).toContain('baseUrl');
        expect(JSON.stringify(res.body)).not.toContain('hunter2');
      }
    }
    expect(await countRows(t, 'provider_accounts')).toBe(before);
    expect(await t.db.query(`SELECT base_url, updated_at FROM provider_accounts ORDER BY id`)).toEqual(stored);
  });
});

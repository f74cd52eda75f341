import { bearer, startTestApp, TestApp, unique } from '../support/app';

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
});

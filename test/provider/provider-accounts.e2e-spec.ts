import { startSandbox, SandboxHandle } from '../../src/sandbox';
import { bearer, countRows, createTenant, expectProblem, startTestApp, TestApp, unique } from '../support/app';

/**
 * The admin API of provider accounts (`/v1/admin/provider-accounts`): what an admin types is stored in the
 * form the provider client uses, refused with a 4xx problem when the client could not use it, and never
 * echoed back when it holds a secret. Real app, real PostgreSQL.
 */
describe('provider accounts admin', () => {
  let t: TestApp;
  let admin: Record<string, string>;
  let sandbox: SandboxHandle;

  beforeAll(async () => {
    sandbox = await startSandbox({ knobs: { latencyMs: [0, 0] } });
    t = await startTestApp();
    admin = bearer(t.adminToken);
  });
  afterAll(async () => {
    await t.close();
    await sandbox.close();
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

  it('a rotated password is used at once by this process: the next balance read after the PATCH succeeds', async () => {
    const username = unique('rot');
    sandbox.addAccount({ username, password: 'old-provider-pw', balance: '125000' });
    const pac = await t.http
      .post('/v1/admin/provider-accounts')
      .set(admin)
      .send({ name: unique('pac'), baseUrl: sandbox.url, username, password: 'old-provider-pw' });
    expect(pac.status).toBe(201);
    const first = await t.http.get(`/v1/admin/provider-accounts/${pac.body.id}/balance`).set(admin);
    expect({ status: first.status, live: first.body.live?.balance }).toEqual({ status: 200, live: '125000' });

    // The provider user's password is changed upstream, then here: the very next read must use the new one.
    sandbox.addAccount({ username, password: 'new-provider-pw', balance: '125000' });
    const patched = await t.http
      .patch(`/v1/admin/provider-accounts/${pac.body.id}`)
      .set(admin)
      .send({ password: 'new-provider-pw' });
    expect(patched.status).toBe(200);
    const after = await t.http.get(`/v1/admin/provider-accounts/${pac.body.id}/balance`).set(admin);
    expect({ status: after.status, live: after.body.live?.balance, error: after.body.error }).toEqual({
      status: 200,
      live: '125000',
      error: undefined,
    });
  });

  it('PATCH with null for a field that has no default is 400 naming it, nothing written', async () => {
    const { providerAccountId } = await createTenant(t);
    const stored = await t.db.query(`SELECT * FROM provider_accounts ORDER BY id`);
    for (const field of ['name', 'baseUrl', 'username', 'password', 'sendMethod', 'status']) {
      const res = await t.http
        .patch(`/v1/admin/provider-accounts/${providerAccountId}`)
        .set(admin)
        .send({ [field]: null });
      try {
        expectProblem(res, 400, 'validation_failed');
        expect((res.body.errors as { field: string }[]).map((e) => e.field)).toContain(field);
      } catch (e) {
        throw new Error(`${field}: null: ${(e as Error).message}`, { cause: e });
      }
    }
    expect(await t.db.query(`SELECT * FROM provider_accounts ORDER BY id`)).toEqual(stored);
  });
});

import { startTestApp, createTenant, TestApp } from '../support/app';

describe('smoke', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp();
  });
  afterAll(async () => {
    await t.close();
  });

  it('serves health, a tenant balance and malformed JSON as problem+json', async () => {
    expect((await t.http.get('/health/ready')).body).toEqual({
      status: 'ok',
      checks: { database: 'ok', migrations: 'ok' },
    });
    const { apiKey } = await createTenant(t, { balance: 5000 });
    const bal = await t.http.get('/v1/balance').set('Authorization', `Bearer ${apiKey}`);
    expect(bal.status).toBe(200);
    expect(bal.body.balance).toBe(5000);
    expect(bal.body.state).toBe('active');
    const bad = await t.http
      .post('/v1/admin/tenants')
      .set('Authorization', `Bearer ${t.adminToken}`)
      .set('Content-Type', 'application/json')
      .send('{"name": ');
    expect(bad.status).toBe(400);
    expect(bad.headers['content-type']).toMatch(/application\/problem\+json/);
    expect(bad.body.code).toBe('validation_failed');
  });
});

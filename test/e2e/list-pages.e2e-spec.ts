import { bearer, countRows, createTenant, expectProblem, startTestApp, TestApp, unique, uuidOf } from '../support/app';

/**
 * API.md "Lists": every list takes `?limit=` (default 50, max 500) and `?cursor=`, and answers
 * `{ data: [...], nextCursor: string|null }`. The admin lists that once returned everything at once.
 */
describe('list conventions of the admin lists', () => {
  let t: TestApp;
  let admin: Record<string, string>;

  beforeAll(async () => {
    t = await startTestApp();
    admin = bearer(t.adminToken);
  });
  afterAll(async () => {
    await t.close();
  });

  /**
   * Walks `path` page by page (`limit` each) and expects every row of the list exactly once, the body
   * shape of API.md, the default page of 50, and 400 for limits outside 1..500 and a forged cursor.
   */
  async function pagesThrough(path: string, total: number, limit: number): Promise<string[]> {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res: { status: number; body: { data: { id: string }[]; nextCursor: string | null } } = await t.http
        .get(path)
        .query(cursor ? { limit, cursor } : { limit })
        .set(admin);
      expect({ status: res.status, keys: Object.keys(res.body).sort() }).toEqual({
        status: 200,
        keys: ['data', 'nextCursor'],
      });
      expect(res.body.data.length).toBeLessThanOrEqual(limit);
      seen.push(...res.body.data.map((x) => x.id));
      cursor = res.body.nextCursor;
      pages++;
    } while (cursor && pages < 1000);
    expect(seen).toHaveLength(total);
    expect(new Set(seen).size).toBe(total);
    expect(pages).toBe(Math.ceil(total / limit));

    const dflt = await t.http.get(path).set(admin);
    expect(dflt.status).toBe(200);
    expect(dflt.body.data).toHaveLength(Math.min(total, 50));
    expect(dflt.body.nextCursor === null).toBe(total <= 50);

    for (const q of [{ limit: 0 }, { limit: 501 }, { limit: 'ten' }, { cursor: 'not-a-cursor' }]) {
      expectProblem(await t.http.get(path).query(q).set(admin), 400, 'validation_failed');
    }
    return seen;
  }

  it('GET /v1/admin/users pages with limit and cursor: { data, nextCursor }', async () => {
    try {
      for (let i = 0; i < 51; i++) {
        const r = await t.http
          .post('/v1/admin/users')
          .set(admin)
          .send({
            email: `${unique('page')}@test.local`.toLowerCase(),
            password: 'a-long-password-123',
            role: 'billing',
          });
        expect(r.status).toBe(201);
      }
      const total = await countRows(t, 'admin_users');
      const seen = await pagesThrough('/v1/admin/users', total, Math.max(2, Math.ceil(total / 4)));
      const [newest] = await t.db.query(`SELECT id FROM admin_users ORDER BY created_at DESC, id DESC LIMIT 1`);
      expect(uuidOf(seen[0])).toBe(newest.id); // newest first
    } finally {
      // Other suites read the first page of users and expect theirs (and the first admin) on it.
      await t.db.query(`DELETE FROM admin_users WHERE email LIKE 'page-%'`);
    }
  }, 120_000);

  it('GET /v1/admin/provider-accounts pages with limit and cursor: { data, nextCursor }', async () => {
    const created: string[] = [];
    for (let i = 0; i < 51; i++) {
      const r = await t.http
        .post('/v1/admin/provider-accounts')
        .set(admin)
        .send({ name: unique('pac'), baseUrl: 'http://127.0.0.1:9/masking', username: unique('u'), password: 'pw' });
      expect(r.status).toBe(201);
      created.push(r.body.id);
    }
    const total = await countRows(t, 'provider_accounts');
    const seen = await pagesThrough('/v1/admin/provider-accounts', total, Math.max(2, Math.ceil(total / 4)));
    // Newest first: the accounts just created lead, in reverse creation order.
    expect(seen.slice(0, created.length)).toEqual([...created].reverse());
  }, 120_000);

  it('GET /v1/admin/tenants/{id}/api-keys pages with limit and cursor: { data, nextCursor }', async () => {
    const { tenantId } = await createTenant(t);
    const other = await createTenant(t); // its key must not show up in the first tenant's list
    const created: string[] = [];
    for (let i = 0; i < 51; i++) {
      const r = await t.http
        .post(`/v1/admin/tenants/${tenantId}/api-keys`)
        .set(admin)
        .send({ name: `k${i}` });
      expect(r.status).toBe(201);
      created.push(r.body.id);
    }
    const total = await countRows(t, 'api_keys', tenantId);
    expect(total).toBe(52); // createTenant's key and the 51 above
    const seen = await pagesThrough(`/v1/admin/tenants/${tenantId}/api-keys`, total, 10);
    expect(seen).not.toContain(other.keyId);
    // Newest first: the keys just created lead, in reverse creation order.
    expect(seen.slice(0, created.length)).toEqual([...created].reverse());
  }, 120_000);
});

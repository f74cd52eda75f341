import { createHmac, randomBytes } from 'node:crypto';
import { APP_CONFIG, AppConfig } from '../../src/config/config';
import {
  bearer,
  countRows,
  createAdminUser,
  createTenant,
  expectProblem,
  startTestApp,
  TestApp,
  unique,
  uuidOf,
} from '../support/app';

const b64url = (v: object | string) => Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)).toString('base64url');

/** An HS256 (or other HMAC) JWT made by hand, so the tests control every claim and the key. */
function signJwt(payload: object, secret: string, alg: 'HS256' | 'HS512' = 'HS256'): string {
  const head = `${b64url({ alg, typ: 'JWT' })}.${b64url(payload)}`;
  const sig = createHmac(alg === 'HS256' ? 'sha256' : 'sha512', secret)
    .update(head)
    .digest('base64url');
  return `${head}.${sig}`;
}

const decodePayload = (jwt: string) => JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));

/** The auth matrix of issue 2 and tenant isolation. */
describe('auth matrix', () => {
  let t: TestApp;
  let admin: Record<string, string>;
  let secret: string;
  let billing: { id: string; token: string };
  let a: Awaited<ReturnType<typeof createTenant>>;
  let b: Awaited<ReturnType<typeof createTenant>>;

  beforeAll(async () => {
    t = await startTestApp();
    admin = bearer(t.adminToken);
    secret = t.app.get<AppConfig>(APP_CONFIG).jwtSecret;
    billing = await createAdminUser(t, 'billing');
    a = await createTenant(t, { balance: 1000 });
    b = await createTenant(t, { balance: 2000 });
  });
  afterAll(async () => {
    await t.close();
  });

  const tenantRoutes = ['/v1/balance', '/v1/ledger'];

  describe('tenant routes (API key)', () => {
    it('accept the key as Authorization: Bearer (any case) and as X-API-Key', async () => {
      for (const path of tenantRoutes) {
        expect((await t.http.get(path).set('Authorization', `Bearer ${a.apiKey}`)).status).toBe(200);
        expect((await t.http.get(path).set('Authorization', `bearer ${a.apiKey}`)).status).toBe(200);
        expect((await t.http.get(path).set('X-API-Key', a.apiKey)).status).toBe(200);
      }
      expect((await t.http.get('/v1/balance').set('X-API-Key', a.apiKey)).body.balance).toBe(1000);
    });

    it('answer 401 unauthorized without a credential', async () => {
      for (const path of tenantRoutes) {
        const res = await t.http.get(path);
        expectProblem(res, 401, 'unauthorized');
        expect(res.body.detail).toMatch(/API key/);
      }
    });

    it('answer 401 for a well-formed but unknown key, on both headers', async () => {
      const wrong = `gbk_${'A'.repeat(40)}`;
      const almost = a.apiKey.slice(0, -1) + (a.apiKey.endsWith('a') ? 'b' : 'a');
      for (const key of [wrong, almost]) {
        for (const path of tenantRoutes) {
          expectProblem(await t.http.get(path).set(bearer(key)), 401, 'unauthorized');
          expectProblem(await t.http.get(path).set('X-API-Key', key), 401, 'unauthorized');
        }
      }
    });

    it('answer 401 for keys of the wrong shape (never 400 or 500)', async () => {
      const shapes = [
        'gbk_short',
        'abc',
        `${a.apiKey}x`,
        a.apiKey.slice(0, -1),
        a.apiKey.toUpperCase(),
        `GBK_${a.apiKey.slice(4)}`,
        `gbk_${'!'.repeat(40)}`,
        `gbk_${'ä'.repeat(40)}`,
        'x'.repeat(10_000),
        `${a.apiKey} extra`,
        "' OR 1=1 --",
      ];
      for (const key of shapes) {
        expectProblem(await t.http.get('/v1/balance').set('X-API-Key', key), 401, 'unauthorized');
      }
      for (const header of [
        `Bearer`,
        `Bearer `,
        `Basic ${b64url(`x:${a.apiKey}`)}`,
        a.apiKey,
        `Token ${a.apiKey}`,
        `Bearer ${a.apiKey} ${a.apiKey}`,
      ]) {
        expectProblem(await t.http.get('/v1/balance').set('Authorization', header), 401, 'unauthorized');
      }
    });

    it('answer 401 for a revoked key, while the tenant’s other keys keep working', async () => {
      const extra = await t.http
        .post(`/v1/admin/tenants/${a.tenantId}/api-keys`)
        .set(admin)
        .send({ name: 'to revoke' });
      expect((await t.http.get('/v1/balance').set(bearer(extra.body.key))).status).toBe(200);
      expect((await t.http.delete(`/v1/admin/tenants/${a.tenantId}/api-keys/${extra.body.id}`).set(admin)).status).toBe(
        204,
      );
      for (const path of tenantRoutes) {
        expectProblem(await t.http.get(path).set(bearer(extra.body.key)), 401, 'unauthorized');
        expectProblem(await t.http.get(path).set('X-API-Key', extra.body.key), 401, 'unauthorized');
      }
      expect((await t.http.get('/v1/balance').set(bearer(a.apiKey))).status).toBe(200);
    });

    it('answer 401 for an admin or billing JWT', async () => {
      for (const token of [t.adminToken, billing.token]) {
        for (const path of tenantRoutes) {
          expectProblem(await t.http.get(path).set(bearer(token)), 401, 'unauthorized');
        }
      }
    });
  });

  describe('admin routes (JWT)', () => {
    const zeros = `ten_${'0'.repeat(32)}`;
    // Every admin route of issue 2, with a body that would be valid, so only authorization decides.
    const adminRoutes = (tenantId: string, keyId: string, pacId: string) =>
      [
        ['get', '/v1/admin/users', undefined],
        [
          'post',
          '/v1/admin/users',
          { email: `${unique('x')}@test.local`.toLowerCase(), password: 'long-enough-pw-1', role: 'admin' },
        ],
        ['get', '/v1/admin/provider-accounts', undefined],
        [
          'post',
          '/v1/admin/provider-accounts',
          { name: unique('p'), baseUrl: 'http://127.0.0.1:9/m', username: 'u', password: 'p' },
        ],
        ['get', `/v1/admin/provider-accounts/${pacId}`, undefined],
        ['patch', `/v1/admin/provider-accounts/${pacId}`, { name: 'hijacked' }],
        ['get', '/v1/admin/tenants', undefined],
        ['post', '/v1/admin/tenants', { name: unique('t'), providerAccountId: pacId, pricePerSegment: 1 }],
        ['get', `/v1/admin/tenants/${tenantId}`, undefined],
        ['patch', `/v1/admin/tenants/${tenantId}`, { status: 'suspended' }],
        ['post', `/v1/admin/tenants/${tenantId}/api-keys`, {}],
        ['get', `/v1/admin/tenants/${tenantId}/api-keys`, undefined],
        ['delete', `/v1/admin/tenants/${tenantId}/api-keys/${keyId}`, undefined],
        ['post', `/v1/admin/tenants/${tenantId}/topups`, { amount: 100 }],
        ['post', `/v1/admin/tenants/${tenantId}/adjustments`, { amount: 100, reason: 'x' }],
        ['get', `/v1/admin/tenants/${tenantId}/ledger`, undefined],
        ['get', `/v1/admin/tenants/${tenantId}/balance`, undefined],
      ] as const;

    type Route = readonly ['get' | 'post' | 'patch' | 'delete', string, object | undefined];
    const call = (route: Route, headers: Record<string, string>) => {
      const [method, path, body] = route;
      const req = t.http[method](path).set(headers);
      return body === undefined ? req : req.send(body);
    };

    async function snapshot() {
      const tables = ['admin_users', 'provider_accounts', 'tenants', 'api_keys', 'ledger_entries'];
      const counts = await Promise.all(tables.map((x) => countRows(t, x)));
      const [ten] = await t.db.query(`SELECT status, balance FROM tenants WHERE id = $1`, [uuidOf(a.tenantId)]);
      const keys = await t.db.query(`SELECT count(*)::int AS n FROM api_keys WHERE revoked_at IS NOT NULL`);
      const pac = await t.db.query(`SELECT name FROM provider_accounts WHERE id = $1`, [uuidOf(a.providerAccountId)]);
      return { counts, ten, revoked: keys[0].n, pac };
    }

    it('answer 403 forbidden to a tenant API key (Bearer or X-API-Key) on every admin route, and write nothing', async () => {
      const before = await snapshot();
      for (const route of adminRoutes(a.tenantId, a.keyId, a.providerAccountId)) {
        for (const headers of [bearer(a.apiKey), { 'X-API-Key': a.apiKey }]) {
          const res = await call(route, headers);
          expectProblem(res, 403, 'forbidden');
        }
      }
      expect(await snapshot()).toEqual(before);
      expect((await t.http.get('/v1/balance').set(bearer(a.apiKey))).status).toBe(200);
    });

    it('answer 401 without a credential on every admin route, and write nothing', async () => {
      const before = await snapshot();
      for (const route of adminRoutes(a.tenantId, a.keyId, a.providerAccountId)) {
        expectProblem(await call(route, {}), 401, 'unauthorized');
      }
      expect(await snapshot()).toEqual(before);
    });

    it('billing may read tenants, ledgers and balances', async () => {
      const auth = bearer(billing.token);
      const list = await t.http.get('/v1/admin/tenants').set(auth);
      expect(list.status).toBe(200);
      expect(list.body.data.map((x: { id: string }) => x.id)).toEqual(expect.arrayContaining([a.tenantId, b.tenantId]));
      expect((await t.http.get(`/v1/admin/tenants/${a.tenantId}`).set(auth)).body.id).toBe(a.tenantId);
      const ledger = await t.http.get(`/v1/admin/tenants/${a.tenantId}/ledger`).set(auth);
      expect(ledger.status).toBe(200);
      expect(ledger.body.data).toEqual([expect.objectContaining({ kind: 'topup', amount: 1000 })]);
      const bal = await t.http.get(`/v1/admin/tenants/${a.tenantId}/balance`).set(auth);
      expect(bal.status).toBe(200);
      expect(bal.body.balance).toBe(1000);
    });

    it('billing gets 403 on every write and on users, provider accounts and API keys, and writes nothing', async () => {
      const before = await snapshot();
      const readable = new Set([
        'get /v1/admin/tenants',
        `get /v1/admin/tenants/${a.tenantId}`,
        `get /v1/admin/tenants/${a.tenantId}/ledger`,
        `get /v1/admin/tenants/${a.tenantId}/balance`,
      ]);
      const refused = adminRoutes(a.tenantId, a.keyId, a.providerAccountId).filter(
        ([m, p]) => !readable.has(`${m} ${p}`),
      );
      expect(refused).toHaveLength(13);
      for (const route of refused) {
        const res = await call(route, bearer(billing.token));
        expectProblem(res, 403, 'forbidden');
      }
      expect(await snapshot()).toEqual(before);
    });

    it('an admin JWT passes every admin route (the matrix above is not vacuous)', async () => {
      const c = await createTenant(t, { balance: 10 });
      for (const route of adminRoutes(c.tenantId, c.keyId, c.providerAccountId)) {
        const res = await call(route, admin);
        expect({ route: `${route[0]} ${route[1]}`, status: res.status }).toEqual({
          route: `${route[0]} ${route[1]}`,
          status: expect.any(Number),
        });
        expect([200, 201, 204]).toContain(res.status);
      }
      // A zero-id tenant is a 404 for an admin, not a 403 or 500.
      expectProblem(await t.http.get(`/v1/admin/tenants/${zeros}`).set(admin), 404, 'not_found');
    });

    it('the role comes from the database: a billing token whose claim says admin is still billing', async () => {
      const claims = decodePayload(billing.token);
      expect(claims.role).toBe('billing');
      const forged = signJwt({ ...claims, role: 'admin' }, secret);
      expect((await t.http.get('/v1/admin/tenants').set(bearer(forged))).status).toBe(200);
      expectProblem(await t.http.get('/v1/admin/users').set(bearer(forged)), 403, 'forbidden');
    });

    describe('bad JWTs answer 401', () => {
      let claims: Record<string, unknown>;
      beforeAll(() => {
        claims = decodePayload(t.adminToken);
      });
      const now = () => Math.floor(Date.now() / 1000);

      it('a well-signed token for the admin works (control)', async () => {
        const good = signJwt({ ...claims, iat: now(), exp: now() + 600 }, secret);
        expect((await t.http.get('/v1/admin/users').set(bearer(good))).status).toBe(200);
      });

      it.each([
        ['expired', () => signJwt({ ...claims, iat: now() - 7200, exp: now() - 3600 }, secret)],
        ['expired a second ago', () => signJwt({ ...claims, iat: now() - 60, exp: now() - 1 }, secret)],
        [
          'signed with another secret',
          () => signJwt({ ...claims, iat: now(), exp: now() + 600 }, randomBytes(48).toString('base64url')),
        ],
        [
          'alg none',
          () => `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ ...claims, iat: now(), exp: now() + 600 })}.`,
        ],
        [
          'alg none with the original signature',
          () => `${b64url({ alg: 'none', typ: 'JWT' })}.${t.adminToken.split('.')[1]}.${t.adminToken.split('.')[2]}`,
        ],
        [
          'HS512 with the right secret (algorithm not allowed)',
          () => signJwt({ ...claims, iat: now(), exp: now() + 600 }, secret, 'HS512'),
        ],
        [
          'payload tampered after signing',
          () => {
            const [h, , s] = t.adminToken.split('.');
            return `${h}.${b64url({ ...claims, sub: `usr_${'0'.repeat(32)}` })}.${s}`;
          },
        ],
        [
          'for a user that does not exist',
          () =>
            signJwt(
              { sub: `usr_${'0'.repeat(32)}`, email: 'ghost@test.local', role: 'admin', iat: now(), exp: now() + 600 },
              secret,
            ),
        ],
        ['with a garbage subject', () => signJwt({ sub: 'root', role: 'admin', iat: now(), exp: now() + 600 }, secret)],
        ['not a JWT at all', () => 'not.a.jwt'],
        ['empty segments', () => '..'],
      ])('%s', async (_name, make) => {
        const token = make();
        const before = await countRows(t, 'tenants');
        expectProblem(await t.http.get('/v1/admin/tenants').set(bearer(token)), 401, 'unauthorized');
        expectProblem(
          await t.http
            .post('/v1/admin/tenants')
            .set(bearer(token))
            .send({ name: 'x', providerAccountId: a.providerAccountId, pricePerSegment: 1 }),
          401,
          'unauthorized',
        );
        expect(await countRows(t, 'tenants')).toBe(before);
      });
    });
  });

  describe('tenant isolation', () => {
    it('a tenant’s key sees only its own ledger and balance', async () => {
      // Give B more history than one page so its cursors exist.
      for (const amount of [5, 6, 7])
        await t.http.post(`/v1/admin/tenants/${b.tenantId}/adjustments`).set(admin).send({ amount, reason: 'b' });
      const ledgerA = await t.http.get('/v1/ledger').set(bearer(a.apiKey));
      const ledgerB = await t.http.get('/v1/ledger').set(bearer(b.apiKey));
      const sqlA = await t.db.query(`SELECT id FROM ledger_entries WHERE tenant_id = $1`, [uuidOf(a.tenantId)]);
      const sqlB = await t.db.query(`SELECT id FROM ledger_entries WHERE tenant_id = $1`, [uuidOf(b.tenantId)]);
      const idsA = ledgerA.body.data.map((e: { id: string }) => uuidOf(e.id)).sort();
      const idsB = ledgerB.body.data.map((e: { id: string }) => uuidOf(e.id)).sort();
      expect(idsA).toEqual(sqlA.map((r: { id: string }) => r.id).sort());
      expect(idsB).toEqual(sqlB.map((r: { id: string }) => r.id).sort());
      expect(idsA.filter((id: string) => idsB.includes(id))).toEqual([]);
      expect((await t.http.get('/v1/balance').set(bearer(a.apiKey))).body.balance).toBe(1000);
      expect((await t.http.get('/v1/balance').set(bearer(b.apiKey))).body.balance).toBe(2018);
    });

    it('another tenant’s ledger cursor shows nothing of that tenant', async () => {
      const pageB = await t.http.get('/v1/ledger').query({ limit: 1 }).set(bearer(b.apiKey));
      expect(pageB.body.nextCursor).toEqual(expect.any(String));
      const withBCursor = await t.http.get('/v1/ledger').query({ cursor: pageB.body.nextCursor }).set(bearer(a.apiKey));
      expect(withBCursor.status).toBe(200);
      const bIds = new Set(
        (await t.db.query(`SELECT id FROM ledger_entries WHERE tenant_id = $1`, [uuidOf(b.tenantId)])).map(
          (r: { id: string }) => r.id,
        ),
      );
      for (const e of withBCursor.body.data) expect(bIds.has(uuidOf(e.id))).toBe(false);
    });

    it('a tenant cannot name another tenant in the query', async () => {
      for (const q of [{ tenantId: b.tenantId }, { tenant_id: uuidOf(b.tenantId) }]) {
        expectProblem(await t.http.get('/v1/ledger').query(q).set(bearer(a.apiKey)), 400, 'validation_failed');
        // /v1/balance takes no parameters at all: whatever is passed, the answer is the caller's own balance.
        const bal = await t.http.get('/v1/balance').query(q).set(bearer(a.apiKey));
        expect(bal.status).toBe(200);
        expect(bal.body.balance).toBe(1000);
      }
    });

    it('admin routes answer 404 for unknown, malformed and wrong-kind ids', async () => {
      const ids = [
        `ten_${'0'.repeat(32)}`,
        'ten_xyz',
        a.providerAccountId,
        a.keyId,
        `ten_${uuidOf(a.tenantId)}`,
        uuidOf(a.tenantId),
        `ten_${'f'.repeat(32)}`,
        'ten_%00',
      ];
      for (const id of ids) {
        for (const path of [
          `/v1/admin/tenants/${id}`,
          `/v1/admin/tenants/${id}/ledger`,
          `/v1/admin/tenants/${id}/balance`,
          `/v1/admin/tenants/${id}/api-keys`,
        ]) {
          expectProblem(await t.http.get(path).set(admin), 404, 'not_found');
        }
      }
      expectProblem(await t.http.get(`/v1/admin/provider-accounts/${a.tenantId}`).set(admin), 404, 'not_found');
    });
  });
});

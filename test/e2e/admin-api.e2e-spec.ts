import { createHash } from 'node:crypto';
import { SecretBox } from '../../src/common/secret-box';
import {
  ADMIN_EMAIL,
  ADMIN_PASSWORD,
  bearer,
  countRows,
  createTenant,
  expectProblem,
  startTestApp,
  TestApp,
  unique,
  uuidOf,
} from '../support/app';

/** Issue 2's admin endpoints over HTTP: login, users, provider accounts, tenants, API keys. */
describe('admin API', () => {
  const PUBLIC_BASE_URL = 'https://gateway.example.test';
  let t: TestApp;
  let admin: Record<string, string>;

  beforeAll(async () => {
    // A trailing slash in the configuration must not double up in callback URLs.
    t = await startTestApp({ PUBLIC_BASE_URL: `${PUBLIC_BASE_URL}/` });
    admin = bearer(t.adminToken);
  });
  afterAll(async () => {
    await t.close();
  });

  describe('POST /v1/auth/login', () => {
    it('returns a bearer JWT and its lifetime for the right password (email case-insensitive)', async () => {
      const res = await t.http
        .post('/v1/auth/login')
        .send({ email: ADMIN_EMAIL.toUpperCase(), password: ADMIN_PASSWORD });
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ accessToken: expect.any(String), expiresIn: 3600, tokenType: 'Bearer' });
      expect(res.body.accessToken.split('.')).toHaveLength(3);
      const me = await t.http.get('/v1/admin/users').set(bearer(res.body.accessToken));
      expect(me.status).toBe(200);
    });

    it('refuses a wrong password and an unknown email alike with 401 unauthorized', async () => {
      const wrong = await t.http.post('/v1/auth/login').send({ email: ADMIN_EMAIL, password: 'not-the-password' });
      expectProblem(wrong, 401, 'unauthorized');
      const unknown = await t.http
        .post('/v1/auth/login')
        .send({ email: 'nobody@test.local', password: ADMIN_PASSWORD });
      expectProblem(unknown, 401, 'unauthorized');
      expect(unknown.body.detail).toBe(wrong.body.detail);
    });

    it('refuses a body that is not an email and password with 400', async () => {
      expectProblem(
        await t.http.post('/v1/auth/login').send({ email: 'not-an-email', password: 'x' }),
        400,
        'validation_failed',
      );
      expectProblem(await t.http.post('/v1/auth/login').send({ email: ADMIN_EMAIL }), 400, 'validation_failed');
    });
  });

  describe('POST|GET /v1/admin/users', () => {
    it('creates a billing user that can log in; the password is stored as a slow hash and never returned', async () => {
      const email = `${unique('billing')}@test.local`.toLowerCase();
      const password = 'billing-password-123';
      const res = await t.http.post('/v1/admin/users').set(admin).send({ email, password, role: 'billing' });
      expect(res.status).toBe(201);
      expect(res.body).toEqual({
        id: expect.stringMatching(/^usr_[0-9a-f]{32}$/),
        email,
        role: 'billing',
        createdAt: expect.any(String),
      });

      const [row] = await t.db.query(`SELECT password_hash FROM admin_users WHERE id = $1`, [uuidOf(res.body.id)]);
      expect(row.password_hash).toMatch(/^scrypt\$/);
      expect(row.password_hash).not.toContain(password);

      const list = await t.http.get('/v1/admin/users').set(admin);
      expect(list.status).toBe(200);
      expect(list.body.data).toEqual(
        expect.arrayContaining([res.body, expect.objectContaining({ email: ADMIN_EMAIL, role: 'admin' })]),
      );
      expect(JSON.stringify(list.body)).not.toMatch(/password|scrypt/i);

      const login = await t.http.post('/v1/auth/login').send({ email, password });
      expect(login.status).toBe(200);
    });

    it('answers 409 conflict for an email that exists (case-insensitive) and writes nothing', async () => {
      const before = await countRows(t, 'admin_users');
      const res = await t.http
        .post('/v1/admin/users')
        .set(admin)
        .send({ email: ADMIN_EMAIL.toUpperCase(), password: 'another-password-1', role: 'admin' });
      expectProblem(res, 409, 'conflict');
      expect(await countRows(t, 'admin_users')).toBe(before);
    });

    it('refuses a short password and an unknown role', async () => {
      const before = await countRows(t, 'admin_users');
      const short = await t.http
        .post('/v1/admin/users')
        .set(admin)
        .send({ email: 'short@test.local', password: 'short', role: 'admin' });
      expectProblem(short, 400, 'validation_failed');
      expect(short.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'password' })]));
      const role = await t.http
        .post('/v1/admin/users')
        .set(admin)
        .send({ email: 'role@test.local', password: 'long-enough-pw-1', role: 'root' });
      expectProblem(role, 400, 'validation_failed');
      expect(role.body.errors).toEqual(expect.arrayContaining([expect.objectContaining({ field: 'role' })]));
      expect(await countRows(t, 'admin_users')).toBe(before);
    });
  });

  describe('provider accounts', () => {
    const password = 'Pr0vider-Secret-Pw!';
    let account: Record<string, unknown> & { id: string };

    it('POST creates an account with a DLR callback URL under PUBLIC_BASE_URL, and never returns the password', async () => {
      const name = unique('masking-user');
      const res = await t.http
        .post('/v1/admin/provider-accounts')
        .set(admin)
        .send({ name, baseUrl: 'https://sms.example.test/masking/', username: 'user07', password });
      expect(res.status).toBe(201);
      account = res.body;
      expect(account).toMatchObject({
        id: expect.stringMatching(/^pac_[0-9a-f]{32}$/),
        name,
        baseUrl: 'https://sms.example.test/masking',
        username: 'user07',
        sendMethod: 'post',
        status: 'active',
        lastBalance: null,
      });
      expect(Object.keys(account)).not.toEqual(expect.arrayContaining(['password']));
      expect(JSON.stringify(res.body)).not.toContain(password);
      expect(JSON.stringify(res.body)).not.toMatch(/password|passwordEnc|v1\./i);

      const [row] = await t.db.query(`SELECT dlr_token, password_enc FROM provider_accounts WHERE id = $1`, [
        uuidOf(account.id),
      ]);
      expect(row.dlr_token).toMatch(/^[A-Za-z0-9_-]{32,}$/);
      expect(account.dlrCallbackUrl).toBe(`${PUBLIC_BASE_URL}/v1/dlr/${row.dlr_token}`);
      // Encrypted at rest: not the plaintext, not containing it, and it opens with the app's key to the plaintext.
      expect(row.password_enc).not.toBe(password);
      expect(row.password_enc).not.toContain(password);
      expect(row.password_enc).not.toContain(Buffer.from(password).toString('base64'));
      expect(t.app.get(SecretBox).open(row.password_enc)).toBe(password);
    });

    it('each account gets its own unguessable DLR token', async () => {
      const other = await t.http
        .post('/v1/admin/provider-accounts')
        .set(admin)
        .send({
          name: unique('pac'),
          baseUrl: 'http://127.0.0.1:9/masking',
          username: 'user08',
          password,
          sendMethod: 'get',
        });
      expect(other.status).toBe(201);
      expect(other.body.sendMethod).toBe('get');
      expect(other.body.dlrCallbackUrl).not.toBe(account.dlrCallbackUrl);
      // Same plaintext, different ciphertext (fresh IV per seal).
      const rows = await t.db.query(`SELECT password_enc FROM provider_accounts WHERE id = ANY($1::uuid[])`, [
        [uuidOf(account.id), uuidOf(other.body.id)],
      ]);
      expect(rows[0].password_enc).not.toBe(rows[1].password_enc);
    });

    it('GET list and GET one show the account without any password', async () => {
      const list = await t.http.get('/v1/admin/provider-accounts').set(admin);
      expect(list.status).toBe(200);
      expect(list.body.data).toEqual(expect.arrayContaining([account]));
      expect(JSON.stringify(list.body)).not.toContain(password);
      expect(JSON.stringify(list.body)).not.toMatch(/password/i);

      const one = await t.http.get(`/v1/admin/provider-accounts/${account.id}`).set(admin);
      expect(one.status).toBe(200);
      expect(one.body).toEqual(account);
    });

    it('PATCH changes fields, re-encrypts a new password, keeps the DLR URL, and never echoes the password', async () => {
      const newPassword = 'N3w-Provider-Pw?';
      const res = await t.http
        .patch(`/v1/admin/provider-accounts/${account.id}`)
        .set(admin)
        .send({ name: 'renamed', baseUrl: 'http://10.0.0.5:8080/masking', password: newPassword, status: 'disabled' });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        id: account.id,
        name: 'renamed',
        baseUrl: 'http://10.0.0.5:8080/masking',
        status: 'disabled',
        username: 'user07',
      });
      expect(res.body.dlrCallbackUrl).toBe(account.dlrCallbackUrl);
      expect(JSON.stringify(res.body)).not.toContain(newPassword);
      const [row] = await t.db.query(`SELECT password_enc FROM provider_accounts WHERE id = $1`, [uuidOf(account.id)]);
      expect(row.password_enc).not.toContain(newPassword);
      expect(t.app.get(SecretBox).open(row.password_enc)).toBe(newPassword);
      expect((await t.http.get(`/v1/admin/provider-accounts/${account.id}`).set(admin)).body).toEqual(res.body);
    });

    it('answers 404 for unknown and malformed ids', async () => {
      for (const id of [`pac_${'0'.repeat(32)}`, 'pac_xyz', `ten_${'0'.repeat(32)}`]) {
        expectProblem(await t.http.get(`/v1/admin/provider-accounts/${id}`).set(admin), 404, 'not_found');
        expectProblem(
          await t.http.patch(`/v1/admin/provider-accounts/${id}`).set(admin).send({ name: 'x' }),
          404,
          'not_found',
        );
      }
    });
  });

  describe('tenants', () => {
    let pacId: string;
    let otherPacId: string;
    let tenant: Record<string, unknown> & { id: string };

    beforeAll(async () => {
      const mk = async () =>
        (
          await t.http
            .post('/v1/admin/provider-accounts')
            .set(admin)
            .send({ name: unique('pac'), baseUrl: 'http://127.0.0.1:9/masking', username: unique('u'), password: 'pw' })
        ).body.id as string;
      pacId = await mk();
      otherPacId = await mk();
    });

    it('POST creates an active tenant with defaults, zero balance and no validity', async () => {
      const name = unique('Acme');
      const res = await t.http
        .post('/v1/admin/tenants')
        .set(admin)
        .send({ name: `  ${name}  `, providerAccountId: pacId, pricePerSegment: 350 });
      expect(res.status).toBe(201);
      tenant = res.body;
      expect(tenant).toEqual({
        id: expect.stringMatching(/^ten_[0-9a-f]{32}$/),
        name,
        providerAccountId: pacId,
        status: 'active',
        pricePerSegment: 350,
        lowBalanceThreshold: 0,
        rateLimitPerSecond: 100,
        balance: 0,
        validUntil: null,
        graceUntil: null,
        createdAt: expect.any(String),
        updatedAt: expect.any(String),
      });
      const [row] = await t.db.query(`SELECT provider_account_id, balance FROM tenants WHERE id = $1`, [
        uuidOf(tenant.id),
      ]);
      expect(row).toEqual({ provider_account_id: uuidOf(pacId), balance: '0' });
    });

    it('POST takes the optional lowBalanceThreshold and rateLimitPerSecond', async () => {
      const res = await t.http
        .post('/v1/admin/tenants')
        .set(admin)
        .send({
          name: unique('t'),
          providerAccountId: pacId,
          pricePerSegment: 0,
          lowBalanceThreshold: 10_000,
          rateLimitPerSecond: 7,
        });
      expect(res.status).toBe(201);
      expect(res.body).toMatchObject({ pricePerSegment: 0, lowBalanceThreshold: 10_000, rateLimitPerSecond: 7 });
    });

    it('GET one returns the tenant; unknown, malformed and foreign-kind ids answer 404', async () => {
      const one = await t.http.get(`/v1/admin/tenants/${tenant.id}`).set(admin);
      expect(one.status).toBe(200);
      expect(one.body).toEqual(tenant);
      for (const id of [`ten_${'0'.repeat(32)}`, 'ten_xyz', pacId, 'ten_', `ten_${'G'.repeat(32)}`, `${tenant.id}0`]) {
        expectProblem(await t.http.get(`/v1/admin/tenants/${id}`).set(admin), 404, 'not_found');
      }
    });

    it('PATCH changes settings and suspends/reactivates; a suspended tenant can still read its balance', async () => {
      const { tenantId, apiKey } = await createTenant(t, { balance: 500 });
      const res = await t.http.patch(`/v1/admin/tenants/${tenantId}`).set(admin).send({
        name: 'Renamed Co',
        status: 'suspended',
        pricePerSegment: 420,
        lowBalanceThreshold: 50,
        rateLimitPerSecond: 3,
        providerAccountId: otherPacId,
      });
      expect(res.status).toBe(200);
      expect(res.body).toMatchObject({
        id: tenantId,
        name: 'Renamed Co',
        status: 'suspended',
        pricePerSegment: 420,
        lowBalanceThreshold: 50,
        rateLimitPerSecond: 3,
        providerAccountId: otherPacId,
        balance: 500,
      });
      expect((await t.http.get(`/v1/admin/tenants/${tenantId}`).set(admin)).body.status).toBe('suspended');
      const [row] = await t.db.query(
        `SELECT status, price_per_segment, provider_account_id FROM tenants WHERE id = $1`,
        [uuidOf(tenantId)],
      );
      expect(row).toEqual({ status: 'suspended', price_per_segment: '420', provider_account_id: uuidOf(otherPacId) });

      const bal = await t.http.get('/v1/balance').set(bearer(apiKey));
      expect(bal.status).toBe(200);
      expect(bal.body.balance).toBe(500);

      const back = await t.http.patch(`/v1/admin/tenants/${tenantId}`).set(admin).send({ status: 'active' });
      expect(back.status).toBe(200);
      expect(back.body.status).toBe('active');
    });

    it('PATCH with an empty body changes nothing; unknown status and unknown provider account are refused', async () => {
      const same = await t.http.patch(`/v1/admin/tenants/${tenant.id}`).set(admin).send({});
      expect(same.status).toBe(200);
      expect(same.body).toEqual(tenant);
      expectProblem(
        await t.http.patch(`/v1/admin/tenants/${tenant.id}`).set(admin).send({ status: 'deleted' }),
        400,
        'validation_failed',
      );
      const pac = await t.http
        .patch(`/v1/admin/tenants/${tenant.id}`)
        .set(admin)
        .send({ providerAccountId: `pac_${'0'.repeat(32)}` });
      expectProblem(pac, 400, 'validation_failed');
      expect(pac.body.errors).toEqual([expect.objectContaining({ field: 'providerAccountId' })]);
      expect((await t.http.get(`/v1/admin/tenants/${tenant.id}`).set(admin)).body).toEqual(tenant);
      expectProblem(
        await t.http
          .patch(`/v1/admin/tenants/ten_${'0'.repeat(32)}`)
          .set(admin)
          .send({ name: 'x' }),
        404,
        'not_found',
      );
    });

    it('GET list pages newest first with a cursor until nextCursor is null, without gaps or repeats', async () => {
      const created: string[] = [];
      for (let i = 0; i < 5; i++) {
        const r = await t.http
          .post('/v1/admin/tenants')
          .set(admin)
          .send({ name: unique('page'), providerAccountId: pacId, pricePerSegment: 1 });
        created.push(r.body.id);
      }
      const total = await countRows(t, 'tenants');
      // Other suites may have filled the database: about five pages whatever the total.
      const limit = Math.max(2, Math.ceil(total / 5));
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res: { status: number; body: { data: { id: string }[]; nextCursor: string | null } } = await t.http
          .get('/v1/admin/tenants')
          .query(cursor ? { limit, cursor } : { limit })
          .set(admin);
        expect(res.status).toBe(200);
        expect(res.body.data.length).toBeLessThanOrEqual(limit);
        seen.push(...res.body.data.map((x) => x.id));
        cursor = res.body.nextCursor;
        pages++;
      } while (cursor && pages < 1000);
      expect(seen).toHaveLength(total);
      expect(new Set(seen).size).toBe(total);
      expect(pages).toBe(Math.ceil(total / limit));
      expect(pages).toBeGreaterThan(2);
      // Newest first: the five just created lead, in reverse creation order.
      expect(seen.slice(0, 5)).toEqual([...created].reverse());

      const all = await t.http.get('/v1/admin/tenants').query({ limit: 500 }).set(admin);
      expect(all.body.data.map((x: { id: string }) => x.id)).toEqual(seen.slice(0, 500));
      expect(all.body.nextCursor === null).toBe(total <= 500);
      const dflt = await t.http.get('/v1/admin/tenants').set(admin);
      expect(dflt.body.data).toHaveLength(Math.min(total, 50));
    });

    it('GET list refuses limits outside 1..500 and a forged cursor with 400', async () => {
      for (const q of [
        { limit: 0 },
        { limit: 501 },
        { limit: 'ten' },
        { limit: 1.5 },
        { cursor: 'not-a-cursor' },
        { cursor: Buffer.from('{"x":1}').toString('base64url') },
      ]) {
        const res = await t.http.get('/v1/admin/tenants').query(q).set(admin);
        expectProblem(res, 400, 'validation_failed');
      }
    });
  });

  describe('API keys', () => {
    let tenantId: string;
    let created: { id: string; key: string; prefix: string; name: string };

    beforeAll(async () => {
      ({ tenantId } = await createTenant(t, { balance: 100 }));
    });

    it('POST returns the key once, with a 12-character prefix; only its SHA-256 is stored', async () => {
      const res = await t.http
        .post(`/v1/admin/tenants/${tenantId}/api-keys`)
        .set(admin)
        .send({ name: ' production server ' });
      expect(res.status).toBe(201);
      created = res.body;
      expect(res.body).toEqual({
        id: expect.stringMatching(/^key_[0-9a-f]{32}$/),
        key: expect.stringMatching(/^gbk_[A-Za-z0-9]{40}$/),
        prefix: res.body.key.slice(0, 12),
        name: 'production server',
        createdAt: expect.any(String),
        revokedAt: null,
        lastUsedAt: null,
      });
      const [row] = await t.db.query(`SELECT prefix, key_hash, tenant_id FROM api_keys WHERE id = $1`, [
        uuidOf(created.id),
      ]);
      expect(row.prefix).toBe(created.prefix);
      expect(row.tenant_id).toBe(uuidOf(tenantId));
      expect(Buffer.from(row.key_hash).equals(createHash('sha256').update(created.key).digest())).toBe(true);
      const dump = JSON.stringify(await t.db.query(`SELECT * FROM api_keys WHERE id = $1`, [uuidOf(created.id)]));
      expect(dump).not.toContain(created.key);
    });

    it('keys are distinct and high-entropy', async () => {
      const keys = await Promise.all(
        [1, 2, 3].map(
          async () =>
            (await t.http.post(`/v1/admin/tenants/${tenantId}/api-keys`).set(admin).send({})).body as {
              key: string;
              name: unknown;
            },
        ),
      );
      expect(new Set(keys.map((k) => k.key)).size).toBe(3);
      expect(keys.every((k) => k.name === null)).toBe(true);
    });

    it('GET lists the keys by prefix and never shows a key', async () => {
      const res = await t.http.get(`/v1/admin/tenants/${tenantId}/api-keys`).set(admin);
      expect(res.status).toBe(200);
      expect(res.body.data).toHaveLength(5); // createTenant's key, created, and three more
      const mine = res.body.data.find((k: { id: string }) => k.id === created.id);
      expect(mine).toEqual({
        id: created.id,
        prefix: created.prefix,
        name: 'production server',
        createdAt: expect.any(String),
        revokedAt: null,
        lastUsedAt: null,
      });
      expect(JSON.stringify(res.body)).not.toContain(created.key);
      expect(JSON.stringify(res.body)).not.toMatch(/gbk_[A-Za-z0-9]{40}/);
    });

    it('using a key sets lastUsedAt', async () => {
      const before = Date.now();
      expect((await t.http.get('/v1/balance').set(bearer(created.key))).status).toBe(200);
      // lastUsedAt is written off the request path; wait for it briefly.
      let lastUsedAt: string | null = null;
      for (let i = 0; i < 50 && !lastUsedAt; i++) {
        const res = await t.http.get(`/v1/admin/tenants/${tenantId}/api-keys`).set(admin);
        lastUsedAt = res.body.data.find((k: { id: string }) => k.id === created.id).lastUsedAt;
        if (!lastUsedAt) await new Promise((r) => setTimeout(r, 20));
      }
      expect(lastUsedAt).not.toBeNull();
      expect(new Date(lastUsedAt!).getTime()).toBeGreaterThanOrEqual(before - 1000);
      expect(new Date(lastUsedAt!).getTime()).toBeLessThanOrEqual(Date.now() + 1000);
    });

    it('DELETE revokes at once (204), is idempotent, and the key stops working', async () => {
      expect((await t.http.get('/v1/ledger').set(bearer(created.key))).status).toBe(200); // cached as valid
      const del = await t.http.delete(`/v1/admin/tenants/${tenantId}/api-keys/${created.id}`).set(admin);
      expect(del.status).toBe(204);
      expect(del.text).toBe('');
      expectProblem(await t.http.get('/v1/balance').set(bearer(created.key)), 401, 'unauthorized');
      expectProblem(await t.http.get('/v1/balance').set('X-API-Key', created.key), 401, 'unauthorized');

      const [row] = await t.db.query(`SELECT revoked_at FROM api_keys WHERE id = $1`, [uuidOf(created.id)]);
      expect(row.revoked_at).toBeInstanceOf(Date);
      const again = await t.http.delete(`/v1/admin/tenants/${tenantId}/api-keys/${created.id}`).set(admin);
      expect(again.status).toBe(204);
      const [row2] = await t.db.query(`SELECT revoked_at FROM api_keys WHERE id = $1`, [uuidOf(created.id)]);
      expect(row2.revoked_at).toEqual(row.revoked_at); // the first revocation time is kept

      const list = await t.http.get(`/v1/admin/tenants/${tenantId}/api-keys`).set(admin);
      expect(list.body.data.find((k: { id: string }) => k.id === created.id).revokedAt).toBe(
        new Date(row.revoked_at).toISOString(),
      );
    });

    it('DELETE answers 404 for unknown keys, malformed ids and another tenant’s key, and revokes nothing', async () => {
      const other = await createTenant(t);
      for (const keyId of [`key_${'0'.repeat(32)}`, 'key_xyz', other.keyId]) {
        expectProblem(
          await t.http.delete(`/v1/admin/tenants/${tenantId}/api-keys/${keyId}`).set(admin),
          404,
          'not_found',
        );
      }
      expect((await t.http.get('/v1/balance').set(bearer(other.apiKey))).status).toBe(200);
      expectProblem(
        await t.http.delete(`/v1/admin/tenants/ten_${'0'.repeat(32)}/api-keys/${other.keyId}`).set(admin),
        404,
        'not_found',
      );
      expectProblem(
        await t.http
          .post(`/v1/admin/tenants/ten_${'0'.repeat(32)}/api-keys`)
          .set(admin)
          .send({}),
        404,
        'not_found',
      );
      expectProblem(await t.http.get(`/v1/admin/tenants/ten_xyz/api-keys`).set(admin), 404, 'not_found');
    });
  });
});

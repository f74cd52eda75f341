import { bearer, countRows, createTenant, expectProblem, startTestApp, TestApp, uuidOf } from '../support/app';

const LONG = 'x'.repeat(10_000);
const ZERO_PAC = `pac_${'0'.repeat(32)}`;

/**
 * Issue 2's "Bad input" section: every refusal is a 4xx problem+json with a stable code (never 500),
 * names the offending field, and writes nothing.
 */
describe('bad input', () => {
  let t: TestApp;
  let admin: Record<string, string>;
  let ten: Awaited<ReturnType<typeof createTenant>>;

  beforeAll(async () => {
    t = await startTestApp();
    admin = bearer(t.adminToken);
    ten = await createTenant(t, { balance: 1000 });
  });
  afterAll(async () => {
    await t.close();
  });

  /** Everything a refused request could have written. */
  async function snapshot() {
    const tables = ['admin_users', 'provider_accounts', 'tenants', 'api_keys', 'ledger_entries'];
    const counts = Object.fromEntries(await Promise.all(tables.map(async (x) => [x, await countRows(t, x)] as const)));
    const tenants = await t.db.query(
      `SELECT id, name, status, balance, price_per_segment, valid_until, provider_account_id, updated_at FROM tenants ORDER BY id`,
    );
    const accounts = await t.db.query(
      `SELECT id, name, base_url, username, password_enc, send_method, status, updated_at FROM provider_accounts ORDER BY id`,
    );
    return { counts, tenants, accounts };
  }

  /** Sends each case, expects a 4xx problem with `code` (and the listed fields in errors[]), then checks nothing changed. */
  async function refuses(
    cases: {
      name: string;
      send: () => PromiseLike<{ status: number; headers: Record<string, string>; body: Record<string, unknown> }>;
      status?: number;
      code?: string;
      fields?: string[];
    }[],
  ) {
    const before = await snapshot();
    for (const c of cases) {
      const res = await c.send();
      try {
        expectProblem(res, c.status ?? 400, c.code ?? 'validation_failed');
        if (c.fields) {
          const fields =
            (res.body.errors as { field: string; message: string }[] | undefined)?.map((e) => e.field) ?? [];
          expect(fields).toEqual(expect.arrayContaining(c.fields));
          for (const e of res.body.errors as { field: string; message: string }[])
            expect(e.message).toEqual(expect.any(String));
        }
      } catch (e) {
        throw new Error(`case "${c.name}": ${(e as Error).message}`, { cause: e });
      }
    }
    expect(await snapshot()).toEqual(before);
  }

  const post = (path: string, body: unknown) =>
    t.http
      .post(path)
      .set(admin)
      .send(body as object);
  const raw = (method: 'post' | 'patch', path: string, body: string, type = 'application/json') =>
    t.http[method](path).set(admin).set('Content-Type', type).send(body);

  describe('malformed bodies', () => {
    const writes = () => [
      '/v1/admin/tenants',
      '/v1/admin/provider-accounts',
      '/v1/admin/users',
      `/v1/admin/tenants/${ten.tenantId}/topups`,
      `/v1/admin/tenants/${ten.tenantId}/adjustments`,
      `/v1/admin/tenants/${ten.tenantId}/api-keys`,
    ];

    it('malformed JSON is 400 validation_failed on every write', async () => {
      const bodies = [
        '{"name": ',
        '{name: "x"}',
        "{'amount': 1}",
        '{"amount": 100,}',
        '{"amount": 01}',
        '\u0000',
        '{"amount": NaN}',
      ];
      await refuses(
        writes().flatMap((path) =>
          bodies.map((body) => ({ name: `${path} ${JSON.stringify(body)}`, send: () => raw('post', path, body) })),
        ),
      );
      const res = await raw('post', '/v1/admin/tenants', '{"name": ');
      expect(res.body.detail).toMatch(/not valid JSON/);
      // Login is public: still a problem, not a crash.
      await refuses([
        {
          name: 'login',
          send: () => t.http.post('/v1/auth/login').set('Content-Type', 'application/json').send('{"email":'),
        },
      ]);
    });

    it('a JSON array, string, number or null where an object is expected is 400', async () => {
      const bodies = ['[]', '[{"amount": 100}]', '"amount"', '100', 'null', 'true'];
      await refuses(
        writes().flatMap((path) =>
          bodies.map((body) => ({ name: `${path} ${body}`, send: () => raw('post', path, body) })),
        ),
      );
      await refuses([
        {
          name: 'PATCH tenant []',
          send: () => raw('patch', `/v1/admin/tenants/${ten.tenantId}`, '[{"status":"suspended"}]'),
        },
        {
          name: 'PATCH pac []',
          send: () => raw('patch', `/v1/admin/provider-accounts/${ten.providerAccountId}`, '["x"]'),
        },
      ]);
    });

    it('a missing body or a non-JSON content type is a 4xx, never a write', async () => {
      const path = `/v1/admin/tenants/${ten.tenantId}/topups`;
      await refuses([
        { name: 'no body', send: () => t.http.post(path).set(admin) },
        { name: 'text/plain', send: () => raw('post', path, '{"amount": 100}', 'text/plain') },
        { name: 'application/xml', send: () => raw('post', path, '<amount>100</amount>', 'application/xml') },
        // Form bodies are parsed (the DLR callback accepts them), but carry strings, not integers.
        {
          name: 'form',
          send: () => raw('post', path, 'amount=100', 'application/x-www-form-urlencoded'),
          fields: ['amount'],
        },
        {
          name: 'utf-16 charset, utf-8 bytes',
          send: () => raw('post', path, '{"amount": 100}', 'application/json; charset=utf-16'),
        },
        {
          name: 'form in latin1',
          send: () => raw('post', path, 'amount=100', 'application/x-www-form-urlencoded; charset=latin1'),
          status: 415,
          code: 'unsupported_media_type',
        },
        {
          name: 'form over 64 kB',
          send: () => raw('post', path, `amount=100&x=${'y'.repeat(70_000)}`, 'application/x-www-form-urlencoded'),
          status: 413,
          code: 'payload_too_large',
        },
        {
          name: 'unknown charset',
          send: () => raw('post', path, '{"amount": 100}', 'application/json; charset=x-klingon'),
          status: 415,
          code: 'unsupported_media_type',
        },
        {
          name: 'tenant text/plain',
          send: () =>
            raw(
              'post',
              '/v1/admin/tenants',
              JSON.stringify({ name: 'n', providerAccountId: ten.providerAccountId, pricePerSegment: 1 }),
              'text/plain',
            ),
        },
      ]);
    });

    it('a body over 1 MB is 413 payload_too_large', async () => {
      const big = JSON.stringify({ amount: 100, reference: 'r'.repeat(1_100_000) });
      await refuses([
        {
          name: 'topup 1.1MB',
          send: () => raw('post', `/v1/admin/tenants/${ten.tenantId}/topups`, big),
          status: 413,
          code: 'payload_too_large',
        },
        {
          name: 'tenant 1.1MB',
          send: () => raw('post', '/v1/admin/tenants', JSON.stringify({ name: 'n'.repeat(1_100_000) })),
          status: 413,
          code: 'payload_too_large',
        },
        {
          name: 'login 1.1MB',
          send: () => t.http.post('/v1/auth/login').set('Content-Type', 'application/json').send(big),
          status: 413,
          code: 'payload_too_large',
        },
      ]);
    });

    it('unknown fields are refused by name', async () => {
      await refuses([
        {
          name: 'topup tenantId',
          send: () => post(`/v1/admin/tenants/${ten.tenantId}/topups`, { amount: 100, tenantId: ten.tenantId }),
          fields: ['tenantId'],
        },
        {
          name: 'topup balance',
          send: () => post(`/v1/admin/tenants/${ten.tenantId}/topups`, { amount: 100, balance: 1e9 }),
          fields: ['balance'],
        },
        {
          name: 'adjust kind',
          send: () => post(`/v1/admin/tenants/${ten.tenantId}/adjustments`, { amount: 5, reason: 'r', kind: 'topup' }),
          fields: ['kind'],
        },
        {
          name: 'tenant balance',
          send: () =>
            post('/v1/admin/tenants', {
              name: 'n',
              providerAccountId: ten.providerAccountId,
              pricePerSegment: 1,
              balance: 1e6,
            }),
          fields: ['balance'],
        },
        {
          name: 'tenant id',
          send: () =>
            post('/v1/admin/tenants', {
              id: ten.tenantId,
              name: 'n',
              providerAccountId: ten.providerAccountId,
              pricePerSegment: 1,
            }),
          fields: ['id'],
        },
        {
          name: 'pac dlrToken',
          send: () =>
            post('/v1/admin/provider-accounts', {
              name: 'n',
              baseUrl: 'http://a.test',
              username: 'u',
              password: 'p',
              dlrToken: 'mine',
            }),
          fields: ['dlrToken'],
        },
        {
          name: 'user isAdmin',
          send: () =>
            post('/v1/admin/users', {
              email: 'u1@test.local',
              password: 'long-enough-pw-1',
              role: 'billing',
              isAdmin: true,
            }),
          fields: ['isAdmin'],
        },
        {
          name: 'key tenantId',
          send: () => post(`/v1/admin/tenants/${ten.tenantId}/api-keys`, { name: 'k', tenantId: ten.tenantId }),
          fields: ['tenantId'],
        },
        {
          name: 'PATCH tenant balance',
          send: () => t.http.patch(`/v1/admin/tenants/${ten.tenantId}`).set(admin).send({ balance: 999999 }),
          fields: ['balance'],
        },
        {
          name: 'PATCH pac dlrToken',
          send: () =>
            t.http.patch(`/v1/admin/provider-accounts/${ten.providerAccountId}`).set(admin).send({ dlrToken: 'x' }),
          fields: ['dlrToken'],
        },
      ]);
    });

    it.each([
      ['__proto__', '{"amount": 1, "reason": "p", "__proto__": {"amount": -1000, "polluted": true}}'],
      ['constructor', '{"amount": 1, "reason": "p", "constructor": {"prototype": {"polluted": true}}}'],
    ])('a "%s" key neither pollutes prototypes nor changes what is written', async (_key, body) => {
      // class-transformer drops these keys before validation, so they are ignored rather than refused (reported).
      const path = `/v1/admin/tenants/${ten.tenantId}/adjustments`;
      const balance = async () => (await t.http.get('/v1/balance').set(bearer(ten.apiKey))).body.balance as number;
      const before = { rows: await countRows(t, 'ledger_entries', ten.tenantId), balance: await balance() };
      const res = await raw('post', path, body);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect((Object.prototype as unknown as Record<string, unknown>).amount).toBeUndefined();
      if (res.status === 201) {
        expect(res.body.entry).toMatchObject({ amount: 1, balanceAfter: before.balance + 1 });
        expect(await countRows(t, 'ledger_entries', ten.tenantId)).toBe(before.rows + 1);
        expect((await post(path, { amount: -1, reason: 'undo' })).status).toBe(201);
      } else {
        expectProblem(res, 400, 'validation_failed');
        expect(await countRows(t, 'ledger_entries', ten.tenantId)).toBe(before.rows);
      }
      expect(await balance()).toBe(before.balance);
    });
  });

  describe('amounts', () => {
    const topup = (amount: unknown) => () => post(`/v1/admin/tenants/${ten.tenantId}/topups`, { amount });
    const adjust = (amount: unknown) => () =>
      post(`/v1/admin/tenants/${ten.tenantId}/adjustments`, { amount, reason: 'r' });
    const rawTopup = (json: string) => () =>
      raw('post', `/v1/admin/tenants/${ten.tenantId}/topups`, `{"amount": ${json}}`);

    it('top-ups refuse zero, negative, fractional, huge, non-numeric and missing amounts', async () => {
      const bad: [string, unknown][] = [
        ['zero', 0],
        ['negative', -100],
        ['minus one', -1],
        ['fraction', 1.5],
        ['tiny fraction', 0.0001],
        ['2^53', 2 ** 53],
        ['string', '100'],
        ['numeric string with space', ' 100'],
        ['bool', true],
        ['null', null],
        ['array', [100]],
        ['object', { value: 100 }],
        ['empty string', ''],
      ];
      await refuses([
        ...bad.map(([name, v]) => ({ name, send: topup(v), fields: ['amount'] })),
        { name: '9007199254740993', send: rawTopup('9007199254740993'), fields: ['amount'] },
        { name: '1e300', send: rawTopup('1e300'), fields: ['amount'] },
        { name: '1e400 (Infinity)', send: rawTopup('1e400'), fields: ['amount'] },
        { name: '-0.5', send: rawTopup('-0.5'), fields: ['amount'] },
        { name: 'missing', send: () => post(`/v1/admin/tenants/${ten.tenantId}/topups`, {}), fields: ['amount'] },
      ]);
    });

    it('accepts the largest safe amount once, then refuses to overflow the balance (nothing written)', async () => {
      const big = await createTenant(t);
      const max = Number.MAX_SAFE_INTEGER;
      const ok = await post(`/v1/admin/tenants/${big.tenantId}/topups`, { amount: max });
      expect(ok.status).toBe(201);
      expect(ok.body.balance.balance).toBe(max);
      await refuses([
        { name: 'overflow topup', send: () => post(`/v1/admin/tenants/${big.tenantId}/topups`, { amount: 1 }) },
        {
          name: 'overflow adjustment',
          send: () => post(`/v1/admin/tenants/${big.tenantId}/adjustments`, { amount: 1, reason: 'r' }),
        },
      ]);
      const [row] = await t.db.query(`SELECT balance FROM tenants WHERE id = $1`, [uuidOf(big.tenantId)]);
      expect(row.balance).toBe(String(max));
    });

    it('adjustments refuse zero, fractional, huge and non-numeric amounts and blank reasons', async () => {
      await refuses([
        { name: 'zero', send: adjust(0), fields: ['amount'] },
        { name: 'fraction', send: adjust(-2.5), fields: ['amount'] },
        { name: 'huge', send: adjust(2 ** 53), fields: ['amount'] },
        { name: 'huge negative', send: adjust(-(2 ** 53)), fields: ['amount'] },
        {
          name: '-9007199254740993',
          send: () =>
            raw(
              'post',
              `/v1/admin/tenants/${ten.tenantId}/adjustments`,
              '{"amount": -9007199254740993, "reason": "r"}',
            ),
          fields: ['amount'],
        },
        { name: 'string', send: adjust('-100'), fields: ['amount'] },
        {
          name: 'missing reason',
          send: () => post(`/v1/admin/tenants/${ten.tenantId}/adjustments`, { amount: 5 }),
          fields: ['reason'],
        },
        {
          name: 'empty reason',
          send: () => post(`/v1/admin/tenants/${ten.tenantId}/adjustments`, { amount: 5, reason: '' }),
          fields: ['reason'],
        },
        {
          name: 'blank reason',
          send: () => post(`/v1/admin/tenants/${ten.tenantId}/adjustments`, { amount: 5, reason: ' \t\n ' }),
          fields: ['reason'],
        },
        {
          name: 'numeric reason',
          send: () => post(`/v1/admin/tenants/${ten.tenantId}/adjustments`, { amount: 5, reason: 5 }),
          fields: ['reason'],
        },
        { name: 'overdraw', send: adjust(-1001), status: 402, code: 'insufficient_balance' },
        { name: 'overdraw max', send: adjust(-Number.MAX_SAFE_INTEGER), status: 402, code: 'insufficient_balance' },
      ]);
      expect((await t.http.get('/v1/balance').set(bearer(ten.apiKey))).body.balance).toBe(1000);
    });

    it('tenant prices, thresholds and rate limits must be in range', async () => {
      const base = { name: 'n', providerAccountId: ten.providerAccountId, pricePerSegment: 1 };
      await refuses([
        {
          name: 'negative price',
          send: () => post('/v1/admin/tenants', { ...base, pricePerSegment: -1 }),
          fields: ['pricePerSegment'],
        },
        {
          name: 'fractional price',
          send: () => post('/v1/admin/tenants', { ...base, pricePerSegment: 0.5 }),
          fields: ['pricePerSegment'],
        },
        {
          name: 'string price',
          send: () => post('/v1/admin/tenants', { ...base, pricePerSegment: '100' }),
          fields: ['pricePerSegment'],
        },
        {
          name: 'huge price',
          send: () =>
            raw(
              'post',
              '/v1/admin/tenants',
              JSON.stringify(base).replace('"pricePerSegment":1', '"pricePerSegment":9007199254740993'),
            ),
          fields: ['pricePerSegment'],
        },
        {
          name: 'missing price',
          send: () => post('/v1/admin/tenants', { name: 'n', providerAccountId: ten.providerAccountId }),
          fields: ['pricePerSegment'],
        },
        {
          name: 'negative threshold',
          send: () => post('/v1/admin/tenants', { ...base, lowBalanceThreshold: -5 }),
          fields: ['lowBalanceThreshold'],
        },
        {
          name: 'zero rate',
          send: () => post('/v1/admin/tenants', { ...base, rateLimitPerSecond: 0 }),
          fields: ['rateLimitPerSecond'],
        },
        {
          name: 'fractional rate',
          send: () => post('/v1/admin/tenants', { ...base, rateLimitPerSecond: 1.5 }),
          fields: ['rateLimitPerSecond'],
        },
        {
          name: 'huge rate',
          send: () => post('/v1/admin/tenants', { ...base, rateLimitPerSecond: 1e9 }),
          fields: ['rateLimitPerSecond'],
        },
        {
          name: 'PATCH negative price',
          send: () => t.http.patch(`/v1/admin/tenants/${ten.tenantId}`).set(admin).send({ pricePerSegment: -1 }),
          fields: ['pricePerSegment'],
        },
        {
          name: 'PATCH string rate',
          send: () => t.http.patch(`/v1/admin/tenants/${ten.tenantId}`).set(admin).send({ rateLimitPerSecond: '5' }),
          fields: ['rateLimitPerSecond'],
        },
      ]);
    });

    it('PATCH tenant with null for a field is 400 naming it (none has a null value)', async () => {
      const fields = ['name', 'pricePerSegment', 'lowBalanceThreshold', 'rateLimitPerSecond', 'status'];
      await refuses(
        fields.map((field) => ({
          name: `PATCH ${field}: null`,
          send: () =>
            t.http
              .patch(`/v1/admin/tenants/${ten.tenantId}`)
              .set(admin)
              .send({ [field]: null }),
          fields: [field],
        })),
      );
    });
  });

  describe('names, ids and URLs', () => {
    it('a name over 200 characters as PostgreSQL counts them (emoji with variation selectors) is 400, not 500', async () => {
      // 150 × "❤️" (U+2764 U+FE0F): 300 characters for the column's CHECK (length(name) <= 200), 150 for
      // validator's isLength, which drops variation selectors and counts a surrogate pair as one.
      const name = '\u2764\uFE0F'.repeat(150);
      await refuses([
        {
          name: 'tenant',
          send: () => post('/v1/admin/tenants', { name, providerAccountId: ten.providerAccountId, pricePerSegment: 1 }),
          fields: ['name'],
        },
        {
          name: 'pac',
          send: () =>
            post('/v1/admin/provider-accounts', { name, baseUrl: 'http://a.test', username: 'u', password: 'p' }),
          fields: ['name'],
        },
        {
          name: 'PATCH tenant',
          send: () => t.http.patch(`/v1/admin/tenants/${ten.tenantId}`).set(admin).send({ name }),
          fields: ['name'],
        },
        {
          name: 'PATCH pac',
          send: () => t.http.patch(`/v1/admin/provider-accounts/${ten.providerAccountId}`).set(admin).send({ name }),
          fields: ['name'],
        },
      ]);
      // 200 characters, some of them astral (two UTF-16 units each), still fit.
      const fits = '\u{1F600}'.repeat(100) + 'a'.repeat(100);
      const ok = await post('/v1/admin/tenants', {
        name: fits,
        providerAccountId: ten.providerAccountId,
        pricePerSegment: 1,
      });
      expect({ status: ok.status, name: ok.body.name }).toEqual({ status: 201, name: fits });
    });

    it('empty and whitespace-only names are refused everywhere', async () => {
      const blanks = ['', ' ', '   ', '\t\n', '\u00a0'];
      await refuses(
        blanks.flatMap((name) => [
          {
            name: `tenant ${JSON.stringify(name)}`,
            send: () =>
              post('/v1/admin/tenants', { name, providerAccountId: ten.providerAccountId, pricePerSegment: 1 }),
            fields: ['name'],
          },
          {
            name: `pac ${JSON.stringify(name)}`,
            send: () =>
              post('/v1/admin/provider-accounts', { name, baseUrl: 'http://a.test', username: 'u', password: 'p' }),
            fields: ['name'],
          },
          {
            name: `PATCH tenant ${JSON.stringify(name)}`,
            send: () => t.http.patch(`/v1/admin/tenants/${ten.tenantId}`).set(admin).send({ name }),
            fields: ['name'],
          },
          {
            name: `PATCH pac ${JSON.stringify(name)}`,
            send: () => t.http.patch(`/v1/admin/provider-accounts/${ten.providerAccountId}`).set(admin).send({ name }),
            fields: ['name'],
          },
          {
            name: `key ${JSON.stringify(name)}`,
            send: () => post(`/v1/admin/tenants/${ten.tenantId}/api-keys`, { name }),
            fields: ['name'],
          },
        ]),
      );
      await refuses([
        {
          name: 'tenant missing name',
          send: () => post('/v1/admin/tenants', { providerAccountId: ten.providerAccountId, pricePerSegment: 1 }),
          fields: ['name'],
        },
        {
          name: 'tenant numeric name',
          send: () =>
            post('/v1/admin/tenants', { name: 42, providerAccountId: ten.providerAccountId, pricePerSegment: 1 }),
          fields: ['name'],
        },
        {
          name: 'pac empty username',
          send: () =>
            post('/v1/admin/provider-accounts', { name: 'n', baseUrl: 'http://a.test', username: '', password: 'p' }),
          fields: ['username'],
        },
        {
          name: 'pac empty password',
          send: () =>
            post('/v1/admin/provider-accounts', { name: 'n', baseUrl: 'http://a.test', username: 'u', password: '' }),
          fields: ['password'],
        },
        {
          name: 'pac numeric password',
          send: () =>
            post('/v1/admin/provider-accounts', { name: 'n', baseUrl: 'http://a.test', username: 'u', password: 1234 }),
          fields: ['password'],
        },
        {
          name: 'pac bad sendMethod',
          send: () =>
            post('/v1/admin/provider-accounts', {
              name: 'n',
              baseUrl: 'http://a.test',
              username: 'u',
              password: 'p',
              sendMethod: 'put',
            }),
          fields: ['sendMethod'],
        },
        {
          name: 'PATCH pac bad status',
          send: () =>
            t.http.patch(`/v1/admin/provider-accounts/${ten.providerAccountId}`).set(admin).send({ status: 'on' }),
          fields: ['status'],
        },
      ]);
    });

    it('a providerAccountId that does not exist (or is not a pac_ id) is 400 on create and on PATCH', async () => {
      const ids: unknown[] = [
        ZERO_PAC,
        'pac_xyz',
        ten.tenantId,
        uuidOf(ten.providerAccountId),
        '',
        `pac_${'F'.repeat(32)}`,
        123,
        null,
      ];
      await refuses([
        ...ids.map((providerAccountId) => ({
          name: `create ${String(providerAccountId)}`,
          send: () => post('/v1/admin/tenants', { name: 'n', providerAccountId, pricePerSegment: 1 }),
          fields: ['providerAccountId'],
        })),
        ...ids.map((providerAccountId) => ({
          name: `patch ${String(providerAccountId)}`,
          send: () => t.http.patch(`/v1/admin/tenants/${ten.tenantId}`).set(admin).send({ providerAccountId }),
          fields: ['providerAccountId'],
        })),
      ]);
    });

    it('a baseUrl that is not http(s) is refused on create and on PATCH', async () => {
      const urls = [
        'ftp://sms.example/masking',
        'javascript:alert(1)',
        'sms.example/masking',
        'file:///etc/passwd',
        'data:text/plain,hello',
        '//sms.example/masking',
        'http://',
        'https:///masking',
        'gopher://127.0.0.1:70/',
        '',
        'http://exa mple.test/',
      ];
      await refuses([
        ...urls.map((baseUrl) => ({
          name: `create ${baseUrl}`,
          send: () => post('/v1/admin/provider-accounts', { name: 'n', baseUrl, username: 'u', password: 'p' }),
          fields: ['baseUrl'],
        })),
        ...urls.map((baseUrl) => ({
          name: `patch ${baseUrl}`,
          send: () => t.http.patch(`/v1/admin/provider-accounts/${ten.providerAccountId}`).set(admin).send({ baseUrl }),
          fields: ['baseUrl'],
        })),
        {
          name: 'numeric baseUrl',
          send: () => post('/v1/admin/provider-accounts', { name: 'n', baseUrl: 80, username: 'u', password: 'p' }),
          fields: ['baseUrl'],
        },
      ]);
    });

    it('a 10,000-character string is refused in every string field', async () => {
      const pac = { name: 'n', baseUrl: 'http://a.test/masking', username: 'u', password: 'p' };
      const tenant = { name: 'n', providerAccountId: ten.providerAccountId, pricePerSegment: 1 };
      const user = { email: 'long@test.local', password: 'long-enough-pw-1', role: 'billing' };
      const tp = `/v1/admin/tenants/${ten.tenantId}`;
      const pp = `/v1/admin/provider-accounts/${ten.providerAccountId}`;
      await refuses([
        { name: 'pac name', send: () => post('/v1/admin/provider-accounts', { ...pac, name: LONG }), fields: ['name'] },
        {
          name: 'pac baseUrl',
          send: () => post('/v1/admin/provider-accounts', { ...pac, baseUrl: `http://a.test/${LONG}` }),
          fields: ['baseUrl'],
        },
        {
          name: 'pac username',
          send: () => post('/v1/admin/provider-accounts', { ...pac, username: LONG }),
          fields: ['username'],
        },
        {
          name: 'pac password',
          send: () => post('/v1/admin/provider-accounts', { ...pac, password: LONG }),
          fields: ['password'],
        },
        {
          name: 'pac sendMethod',
          send: () => post('/v1/admin/provider-accounts', { ...pac, sendMethod: LONG }),
          fields: ['sendMethod'],
        },
        { name: 'PATCH pac name', send: () => t.http.patch(pp).set(admin).send({ name: LONG }), fields: ['name'] },
        {
          name: 'PATCH pac baseUrl',
          send: () =>
            t.http
              .patch(pp)
              .set(admin)
              .send({ baseUrl: `https://a.test/${LONG}` }),
          fields: ['baseUrl'],
        },
        {
          name: 'PATCH pac username',
          send: () => t.http.patch(pp).set(admin).send({ username: LONG }),
          fields: ['username'],
        },
        {
          name: 'PATCH pac password',
          send: () => t.http.patch(pp).set(admin).send({ password: LONG }),
          fields: ['password'],
        },
        {
          name: 'PATCH pac status',
          send: () => t.http.patch(pp).set(admin).send({ status: LONG }),
          fields: ['status'],
        },
        { name: 'tenant name', send: () => post('/v1/admin/tenants', { ...tenant, name: LONG }), fields: ['name'] },
        {
          name: 'tenant providerAccountId',
          send: () => post('/v1/admin/tenants', { ...tenant, providerAccountId: `pac_${LONG}` }),
          fields: ['providerAccountId'],
        },
        { name: 'PATCH tenant name', send: () => t.http.patch(tp).set(admin).send({ name: LONG }), fields: ['name'] },
        {
          name: 'PATCH tenant status',
          send: () => t.http.patch(tp).set(admin).send({ status: LONG }),
          fields: ['status'],
        },
        {
          name: 'PATCH tenant providerAccountId',
          send: () =>
            t.http
              .patch(tp)
              .set(admin)
              .send({ providerAccountId: `pac_${LONG}` }),
          fields: ['providerAccountId'],
        },
        { name: 'key name', send: () => post(`${tp}/api-keys`, { name: LONG }), fields: ['name'] },
        {
          name: 'topup reference',
          send: () => post(`${tp}/topups`, { amount: 1, reference: LONG }),
          fields: ['reference'],
        },
        {
          name: 'adjustment reason',
          send: () => post(`${tp}/adjustments`, { amount: 1, reason: LONG }),
          fields: ['reason'],
        },
        {
          name: 'user email',
          send: () => post('/v1/admin/users', { ...user, email: `${LONG}@test.local` }),
          fields: ['email'],
        },
        {
          name: 'user password',
          send: () => post('/v1/admin/users', { ...user, password: LONG }),
          fields: ['password'],
        },
        { name: 'user role', send: () => post('/v1/admin/users', { ...user, role: LONG }), fields: ['role'] },
        {
          name: 'login email',
          send: () => t.http.post('/v1/auth/login').send({ email: `${LONG}@test.local`, password: 'x' }),
          fields: ['email'],
        },
        {
          name: 'login password',
          send: () => t.http.post('/v1/auth/login').send({ email: 'root@test.local', password: LONG }),
          fields: ['password'],
        },
      ]);
    });

    it('over-long and malformed ids in paths are 404, never 500', async () => {
      await refuses([
        {
          name: 'tenant',
          send: () => t.http.get(`/v1/admin/tenants/ten_${LONG}`).set(admin),
          status: 404,
          code: 'not_found',
        },
        {
          name: 'topup',
          send: () => post(`/v1/admin/tenants/ten_${LONG}/topups`, { amount: 1 }),
          status: 404,
          code: 'not_found',
        },
        {
          name: 'pac',
          send: () => t.http.get(`/v1/admin/provider-accounts/pac_${LONG}`).set(admin),
          status: 404,
          code: 'not_found',
        },
        {
          name: 'key',
          send: () => t.http.delete(`/v1/admin/tenants/${ten.tenantId}/api-keys/key_${LONG}`).set(admin),
          status: 404,
          code: 'not_found',
        },
        {
          name: 'percent-encoded',
          send: () => t.http.get(`/v1/admin/tenants/${encodeURIComponent("ten_' OR '1'='1")}`).set(admin),
          status: 404,
          code: 'not_found',
        },
        {
          name: 'unknown route',
          send: () => t.http.get('/v1/admin/nothing-here').set(admin),
          status: 404,
          code: 'not_found',
        },
        {
          name: 'unknown method',
          send: () => t.http.put('/v1/admin/tenants').set(admin).send({}),
          status: 404,
          code: 'not_found',
        },
      ]);
    });
    it('a path that is not valid percent-encoding is 400 problem+json; a trailing slash reaches its route', async () => {
      // Raised by the router before any route runs (Fastify's frameworkErrors): still a problem, never Fastify's own body.
      await refuses([
        {
          name: 'bad percent-encoding in an id',
          send: () => t.http.get('/v1/admin/tenants/ten_%E0%A4%A').set(admin),
          status: 400,
          code: 'validation_failed',
        },
      ]);
      const listed = await t.http.get('/v1/admin/tenants/').set(admin);
      expect(listed.status).toBe(200);
      expect(Array.isArray(listed.body.data)).toBe(true);
    });
  });

  describe('list parameters', () => {
    const forged = (v: object) => Buffer.from(JSON.stringify(v)).toString('base64url');
    const paths = () => ['/v1/admin/tenants', `/v1/admin/tenants/${ten.tenantId}/ledger`];

    it('limits outside 1..500, non-integer limits and garbage cursors are 400', async () => {
      const queries: Record<string, unknown>[] = [
        { limit: 0 },
        { limit: -1 },
        { limit: 501 },
        { limit: 1.5 },
        { limit: 'abc' },
        { limit: '9007199254740993' },
        { limit: '' },
        { cursor: 'not-base64-json' },
        { cursor: LONG },
        { cursor: forged({ nope: 1 }) },
        { cursor: forged([1]) },
        { cursor: 'bnVsbA' /* "null" */ },
        { unknown: 'x' },
      ];
      await refuses([
        ...paths().flatMap((path) =>
          queries.map((q) => ({
            name: `${path} ${JSON.stringify(q).slice(0, 60)}`,
            send: () => t.http.get(path).query(q).set(admin),
          })),
        ),
        ...queries.map((q) => ({
          name: `/v1/ledger ${JSON.stringify(q).slice(0, 60)}`,
          send: () => t.http.get('/v1/ledger').query(q).set(bearer(ten.apiKey)),
        })),
      ]);
    });

    it('a well-formed cursor with a value of the wrong type is 400, not 500', async () => {
      await refuses([
        {
          name: 'tenants id not a uuid',
          send: () =>
            t.http
              .get('/v1/admin/tenants')
              .query({ cursor: forged({ id: 'garbage' }) })
              .set(admin),
        },
        {
          name: 'tenants id number',
          send: () =>
            t.http
              .get('/v1/admin/tenants')
              .query({ cursor: forged({ id: 5 }) })
              .set(admin),
        },
        {
          name: 'ledger seq not a number',
          send: () =>
            t.http
              .get('/v1/ledger')
              .query({ cursor: forged({ seq: 'abc' }) })
              .set(bearer(ten.apiKey)),
        },
        {
          name: 'ledger seq fractional',
          send: () =>
            t.http
              .get('/v1/ledger')
              .query({ cursor: forged({ seq: 1.5 }) })
              .set(bearer(ten.apiKey)),
        },
        {
          name: 'ledger seq huge',
          send: () =>
            t.http
              .get('/v1/ledger')
              .query({ cursor: forged({ seq: 1e300 }) })
              .set(bearer(ten.apiKey)),
        },
        {
          name: 'admin ledger seq string',
          send: () =>
            t.http
              .get(`/v1/admin/tenants/${ten.tenantId}/ledger`)
              .query({ cursor: forged({ seq: '1; DROP TABLE tenants' }) })
              .set(admin),
        },
      ]);
    });
  });
});

import { createHash } from 'node:crypto';
import { bearer, createTenant, expectProblem, startTestApp, TestApp, uuidOf } from '../support/app';

/**
 * Idempotency-Key on the money routes (issue 7 item 7), over HTTP on real PostgreSQL: replays return
 * the stored answer whatever the request would do now, bodies compare as canonical JSON, and admin
 * top-ups and adjustments retried by a billing system credit once.
 */
describe('Idempotency-Key and money', () => {
  let t: TestApp;

  beforeAll(async () => {
    t = await startTestApp({ DISPATCHER: 'false' });
  });
  afterAll(async () => {
    await t.close();
  });
  afterEach(() => t.clock.reset());

  const admin = () => bearer(t.adminToken);

  async function ledgerRows(tenantId: string, kind: string): Promise<number> {
    const [r] = await t.db.query(`SELECT count(*)::int AS n FROM ledger_entries WHERE tenant_id = $1 AND kind = $2`, [
      uuidOf(tenantId),
      kind,
    ]);
    return r.n;
  }

  describe('POST /v1/messages', () => {
    it('a replay returns the stored answer even though its sendAt has passed meanwhile', async () => {
      const { tenantId, apiKey } = await createTenant(t, { balance: 1000 });
      const body = { to: '081234567890', text: 'soon', sendAt: new Date(Date.now() + 60_000).toISOString() };
      const first = await t.http.post('/v1/messages').set(bearer(apiKey)).set('Idempotency-Key', 'sched-1').send(body);
      expect(first.status).toBe(202);
      t.clock.advance(5 * 60_000); // the client retries after a long timeout: sendAt is now in the past
      const again = await t.http.post('/v1/messages').set(bearer(apiKey)).set('Idempotency-Key', 'sched-1').send(body);
      expect(`${again.status} ${again.headers['idempotent-replayed']}`).toBe('202 true');
      expect(again.body).toEqual(first.body);
      expect(await ledgerRows(tenantId, 'debit')).toBe(1);
      // Without a stored answer the same body is refused now.
      const fresh = await t.http.post('/v1/messages').set(bearer(apiKey)).set('Idempotency-Key', 'sched-2').send(body);
      expectProblem(fresh, 400, 'validation_failed');
    });

    it('the body comparison ignores JSON key order, recursively (canonical JSON)', async () => {
      const { tenantId, apiKey } = await createTenant(t, { balance: 1000 });
      const send = (path: string, raw: string) =>
        t.http
          .post(path)
          .set(bearer(apiKey))
          .set('Idempotency-Key', `order-${path}`)
          .set('Content-Type', 'application/json')
          .send(raw);
      const first = await send('/v1/messages', '{"to":"081234567890","text":"hello","reference":"r1"}');
      expect(first.status).toBe(202);
      const reordered = await send('/v1/messages', '{"reference":"r1","text":"hello","to":"081234567890"}');
      expect(`${reordered.status} ${reordered.headers['idempotent-replayed']}`).toBe('202 true');
      expect(reordered.body.id).toBe(first.body.id);

      const batch = await send(
        '/v1/messages/batch',
        '{"messages":[{"to":"081234567890","text":"a"},{"text":"b","to":"081234567891"}]}',
      );
      expect(batch.status).toBe(202);
      const batchAgain = await send(
        '/v1/messages/batch',
        '{"messages":[{"text":"a","to":"081234567890"},{"to":"081234567891","text":"b"}]}',
      );
      expect(`${batchAgain.status} ${batchAgain.headers['idempotent-replayed']}`).toBe('202 true');
      // Array order is meaning, not formatting: swapped items are a different request.
      const swapped = await send(
        '/v1/messages/batch',
        '{"messages":[{"to":"081234567891","text":"b"},{"to":"081234567890","text":"a"}]}',
      );
      expectProblem(swapped, 422, 'idempotency_conflict');
      expect(await ledgerRows(tenantId, 'debit')).toBe(3);
    });

    it('a key stored before canonical hashing (hash of the body as sent) still replays across the deploy', async () => {
      const { tenantId, apiKey } = await createTenant(t, { balance: 1000 });
      const body = { to: '081234567890', text: 'across the deploy' };
      const first = await t.http.post('/v1/messages').set(bearer(apiKey)).set('Idempotency-Key', 'legacy-1').send(body);
      expect(first.status).toBe(202);
      // What the previous release stored: sha256 of "POST /v1/messages\n" + JSON.stringify(body as sent).
      const legacy = createHash('sha256')
        .update(`POST /v1/messages\n${JSON.stringify(body)}`)
        .digest('base64url');
      await t.db.query(`UPDATE idempotency_keys SET request_hash = $3 WHERE tenant_id = $1 AND key = $2`, [
        uuidOf(tenantId),
        'legacy-1',
        legacy,
      ]);
      const again = await t.http.post('/v1/messages').set(bearer(apiKey)).set('Idempotency-Key', 'legacy-1').send(body);
      expect(`${again.status} ${again.headers['idempotent-replayed']}`).toBe('202 true');
      expect(await ledgerRows(tenantId, 'debit')).toBe(1);
    });
  });

  describe('POST /v1/admin/tenants/{id}/topups and /adjustments', () => {
    it('same key and body: the stored response, replay header, one credit; another body: 422 idempotency_conflict', async () => {
      const { tenantId, apiKey } = await createTenant(t);
      const topup = (body: object, key = 'INV-2026-001') =>
        t.http.post(`/v1/admin/tenants/${tenantId}/topups`).set(admin()).set('Idempotency-Key', key).send(body);
      const first = await topup({ amount: 5000, reference: 'INV-2026-001' });
      expect(first.status).toBe(201);
      expect(first.headers['idempotent-replayed']).toBeUndefined();
      t.clock.advance(60_000);
      const again = await topup({ reference: 'INV-2026-001', amount: 5000 });
      expect(`${again.status} ${again.headers['idempotent-replayed']}`).toBe('201 true');
      expect(again.body).toEqual(first.body);
      expectProblem(await topup({ amount: 5001, reference: 'INV-2026-001' }), 422, 'idempotency_conflict');
      expect(await ledgerRows(tenantId, 'topup')).toBe(1);
      expect((await t.http.get(`/v1/admin/tenants/${tenantId}/balance`).set(admin())).body.balance).toBe(5000);

      // Scoped per tenant and route: the same key elsewhere is a new request.
      const adj = await t.http
        .post(`/v1/admin/tenants/${tenantId}/adjustments`)
        .set(admin())
        .set('Idempotency-Key', 'INV-2026-001')
        .send({ amount: -100, reason: 'fee' });
      expect(`${adj.status} ${adj.headers['idempotent-replayed']}`).toBe('201 undefined');
      const other = await createTenant(t);
      const elsewhere = await t.http
        .post(`/v1/admin/tenants/${other.tenantId}/topups`)
        .set(admin())
        .set('Idempotency-Key', 'INV-2026-001')
        .send({ amount: 5000, reference: 'INV-2026-001' });
      expect(`${elsewhere.status} ${elsewhere.headers['idempotent-replayed']}`).toBe('201 undefined');
      expect(await ledgerRows(other.tenantId, 'topup')).toBe(1);
      // The tenant's own send keys live apart from the admin routes' keys.
      const send = await t.http
        .post('/v1/messages')
        .set(bearer(apiKey))
        .set('Idempotency-Key', 'INV-2026-001')
        .send({ to: '081234567890', text: 'hi' });
      expect(`${send.status} ${send.headers['idempotent-replayed']}`).toBe('202 undefined');

      expectProblem(
        await t.http
          .post(`/v1/admin/tenants/${tenantId}/topups`)
          .set(admin())
          .set('Idempotency-Key', 'bad key with spaces')
          .send({ amount: 1 }),
        400,
        'validation_failed',
      );
    });

    it('20 concurrent identical top-ups with one key: exactly one ledger row', async () => {
      const { tenantId } = await createTenant(t);
      const responses = await Promise.all(
        Array.from({ length: 20 }, () =>
          t.http
            .post(`/v1/admin/tenants/${tenantId}/topups`)
            .set(admin())
            .set('Idempotency-Key', 'race-1')
            .send({ amount: 700, reference: 'race' }),
        ),
      );
      const outcomes = responses.map((r) => (r.status === 201 ? '201' : `${r.status} ${r.body.code}`));
      expect(outcomes.filter((o) => o !== '201' && o !== '409 idempotency_in_progress')).toEqual([]);
      const fresh = responses.filter((r) => r.status === 201 && r.headers['idempotent-replayed'] !== 'true');
      expect(fresh).toHaveLength(1);
      for (const r of responses.filter((x) => x.status === 201)) expect(r.body).toEqual(fresh[0].body);
      expect(await ledgerRows(tenantId, 'topup')).toBe(1);
      expect((await t.http.get(`/v1/admin/tenants/${tenantId}/balance`).set(admin())).body.balance).toBe(700);
    });

    it('concurrent identical adjustments with one key: one movement; a refusal is stored and replayed too', async () => {
      const { tenantId } = await createTenant(t, { balance: 1000 });
      const adjust = (amount: number, key: string) =>
        t.http
          .post(`/v1/admin/tenants/${tenantId}/adjustments`)
          .set(admin())
          .set('Idempotency-Key', key)
          .send({ amount, reason: 'correction' });
      const responses = await Promise.all(Array.from({ length: 10 }, () => adjust(-250, 'adj-race')));
      expect(responses.filter((r) => r.status !== 201 && r.status !== 409)).toEqual([]);
      expect(await ledgerRows(tenantId, 'adjustment')).toBe(1);

      const refused = await adjust(-5000, 'adj-too-much');
      expectProblem(refused, 402, 'insufficient_balance');
      await t.http.post(`/v1/admin/tenants/${tenantId}/topups`).set(admin()).send({ amount: 10_000 });
      const replay = await adjust(-5000, 'adj-too-much');
      expect(`${replay.status} ${replay.headers['idempotent-replayed']}`).toBe('402 true');
      expect(replay.body).toEqual(refused.body);
      expect(await ledgerRows(tenantId, 'adjustment')).toBe(1);
    });

    it('the OpenAPI document describes Idempotency-Key on both admin money routes, with its scope', async () => {
      const doc = (await t.http.get('/docs-json')).body;
      for (const route of ['topups', 'adjustments']) {
        const op = doc.paths[`/v1/admin/tenants/{id}/${route}`].post;
        const header = (op.parameters as { in: string; name: string; description?: string }[]).find(
          (p) => p.in === 'header' && p.name === 'Idempotency-Key',
        );
        expect({ route, description: header?.description }).toEqual({
          route,
          description: expect.stringMatching(/Scoped to the tenant and this route/),
        });
      }
    });
  });
});

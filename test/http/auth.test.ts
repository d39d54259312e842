import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, createMerchant, postAuthorise } from '../support/http.js';

const UNKNOWN_KEY = 'sk_' + '0123456789abcdef'.repeat(2);

for (const dialect of DIALECTS) {
  describe(`secret-key authentication (${dialect})`, () => {
    let t: TestGateway;
    let other: Awaited<ReturnType<typeof createMerchant>>;

    before(async () => {
      t = await startTestGateway({ dialect });
      other = await createMerchant(t, 'other-shop');
    });
    after(() => t?.close());

    const get = (url: string, headers: Record<string, string>) => t.app.inject({ method: 'GET', url, headers });

    it('accepts the sandbox key in X-Secret-Key', async () => {
      const res = await postAuthorise(t, await exampleBody());
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(res.json().channel, 'sandbox');
    });

    it('accepts the key as Authorization: Bearer, whatever the scheme\'s case', async () => {
      for (const scheme of ['Bearer', 'bearer', 'BEARER']) {
        const res = await t.app.inject({
          method: 'POST',
          url: '/payment/authorise',
          headers: { authorization: `${scheme} ${t.credentials.secret_key}`, 'content-type': 'application/json' },
          payload: JSON.stringify(await exampleBody()),
        });
        assert.equal(res.statusCode, 201, `${scheme}: ${res.body}`);
      }
      assertProblem(await get('/payment/pay_x', { authorization: `Basic ${t.credentials.secret_key}` }), 401, 'unauthorized');
    });

    it('accepts the key alone in Authorization, as the merchant page words it', async () => {
      assertProblem(await get('/payment/pay_x', { authorization: t.credentials.secret_key }), 404, 'payment_not_found');
      assertProblem(await get('/payment/pay_x', { authorization: UNKNOWN_KEY }), 401, 'unauthorized');
    });

    it('answers a missing key with 401 problem+json and a challenge header', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/payment/authorise', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(await exampleBody()) });
      const body = assertProblem(res, 401, 'unauthorized', '/headers/x-secret-key');
      assert.match(body.detail, /X-Secret-Key/);
      assert.ok(res.headers['www-authenticate']);
    });

    it('checks the key before reading the body', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/payment/authorise', headers: { 'content-type': 'application/json' }, payload: '{not json' });
      assertProblem(res, 401, 'unauthorized');
    });

    it('gives malformed, unknown and revoked keys one identical answer', async () => {
      const { merchantId } = other;
      const doomed = await t.gateway.services.merchants.createSecretKey(merchantId, 'to revoke');
      const before = await get('/payment/pay_x', { 'x-secret-key': doomed.secret_key });
      assertProblem(before, 404, 'payment_not_found');
      await t.gateway.services.merchants.revokeSecretKey(doomed.id);

      const presented = {
        malformed: 'sk_123',
        uppercase: t.credentials.secret_key.toUpperCase().replace('SK_', 'sk_'),
        'too long': t.credentials.secret_key + '0',
        'no prefix': t.credentials.secret_key.slice(3),
        unknown: UNKNOWN_KEY,
        revoked: doomed.secret_key,
        'bearer unknown': undefined,
      } as const;
      const details = new Set<string>();
      for (const [kind, key] of Object.entries(presented)) {
        const headers: Record<string, string> = key === undefined ? { authorization: `Bearer ${UNKNOWN_KEY}` } : { 'x-secret-key': key };
        const res = await get('/payment/pay_x', headers);
        const body = assertProblem(res, 401, 'unauthorized', '/headers/x-secret-key');
        assert.ok(!res.body.includes(merchantId), `${kind}: reveals the merchant`);
        details.add(body.detail);
      }
      assert.equal(details.size, 1, `different details: ${[...details].join(' | ')}`);
    });

    it('stops a revoked key at once while the merchant\'s other keys keep working', async () => {
      const merchants = t.gateway.services.merchants;
      const oldKey = await merchants.createSecretKey(other.merchantId, 'old');
      const newKey = await merchants.createSecretKey(other.merchantId, 'new');
      const body = await exampleBody({ channel: 'other-shop' });
      assert.equal((await postAuthorise(t, body, { 'x-secret-key': oldKey.secret_key })).statusCode, 201);
      await merchants.revokeSecretKey(oldKey.id);
      assertProblem(await postAuthorise(t, body, { 'x-secret-key': oldKey.secret_key }), 401, 'unauthorized');
      assert.equal((await postAuthorise(t, body, { 'x-secret-key': newKey.secret_key })).statusCode, 201);
      const listed = await merchants.listSecretKeys(other.merchantId);
      assert.equal(listed.find((k) => k.id === oldKey.id)?.status, 'revoked');
      assert.equal(listed.find((k) => k.id === newKey.id)?.status, 'active');
    });

    it("reports another merchant's channel exactly like a channel that does not exist", async () => {
      const foreign = await postAuthorise(t, await exampleBody({ channel: 'sandbox' }), { 'x-secret-key': other.key.secret_key });
      const missing = await postAuthorise(t, await exampleBody({ channel: 'no-such-channel' }), { 'x-secret-key': other.key.secret_key });
      const a = assertProblem(foreign, 404, 'channel_not_found', '/channel');
      const b = assertProblem(missing, 404, 'channel_not_found', '/channel');
      assert.equal(a.detail.replace('sandbox', 'X'), b.detail.replace('no-such-channel', 'X'));
      assert.equal(a.title, b.title);
      assert.ok(!foreign.body.includes(t.credentials.merchant_id));
      assert.ok(!foreign.body.includes('Sandbox Shop'));
    });

    it("hides another merchant's payment behind the same 404 as a missing one", async () => {
      const created = await postAuthorise(t, await exampleBody());
      const id = created.json().id as string;
      assert.equal((await get(`/payment/${id}`, { 'x-secret-key': t.credentials.secret_key })).statusCode, 200);

      const foreign = assertProblem(await get(`/payment/${id}`, { 'x-secret-key': other.key.secret_key }), 404, 'payment_not_found');
      const unknownId = id.slice(0, -4) + (id.endsWith('0000') ? '1111' : '0000');
      const missing = assertProblem(await get(`/payment/${unknownId}`, { 'x-secret-key': other.key.secret_key }), 404, 'payment_not_found');
      assert.equal(foreign.detail.replace(id, 'X'), missing.detail.replace(unknownId, 'X'));
    });

    it('answers an unknown route with a problem, not an HTML page', async () => {
      const res = await get('/nope', {});
      assertProblem(res, 404, 'route_not_found');
    });
  });
}

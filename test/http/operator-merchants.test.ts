import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LookupCache } from '../../src/app/lookup-cache.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, postAuthorise } from '../support/http.js';

const ALICE = `alice_${'a'.repeat(40)}`;

/**
 * A risk team suspends a merchant from its console with an operator token, no shell on the
 * gateway's hosts: the same suspension as the CLI's (decision 0027), traced to the token's owner.
 */
for (const dialect of DIALECTS) {
  describe(`merchants in the operator API (${dialect})`, () => {
    let t: TestGateway;
    let merchantId: string;

    before(async () => {
      t = await startTestGateway({ dialect, env: { OPERATOR_TOKENS: `alice=${ALICE}` } });
      merchantId = t.credentials.merchant_id;
      // On PostgreSQL the cache is bypassed until its listener is in place: this shows it warm.
      await LookupCache.of(t.gateway.services.ctx).start();
    });
    after(() => t?.close());

    const operator = (method: 'GET' | 'POST', url: string, payload?: unknown) =>
      t.app.inject({ method, url, headers: { authorization: `Bearer ${ALICE}`, ...(payload === undefined ? {} : { 'content-type': 'application/json' }) }, ...(payload === undefined ? {} : { payload: JSON.stringify(payload) }) });

    it('suspends a merchant at once and resumes it, each step audited as the token owner', async () => {
      assert.equal((await postAuthorise(t, await exampleBody())).statusCode, 201);

      const listed = await operator('GET', '/operator/merchants');
      assert.equal(listed.statusCode, 200, listed.body);
      assert.equal(listed.headers['cache-control'], 'no-store');
      assert.deepEqual(listed.json().data.find((m: { id: string }) => m.id === merchantId)?.status, 'active');

      const suspended = await operator('POST', `/operator/merchants/${merchantId}/suspend`, { reason: 'chargeback spike, case 4411' });
      assert.equal(suspended.statusCode, 200, suspended.body);
      assert.equal(suspended.json().status, 'suspended');
      assert.equal(suspended.json().suspended_reason, 'chargeback spike, case 4411');
      assertProblem(await postAuthorise(t, await exampleBody()), 403, 'merchant_suspended');
      assertProblem(await operator('POST', `/operator/merchants/${merchantId}/suspend`, { reason: 'again' }), 409, 'merchant_already_suspended');
      assert.equal((await operator('GET', `/operator/merchants/${merchantId}`)).json().status, 'suspended');

      // Nothing to send: a bodiless POST resumes.
      const resumed = await operator('POST', `/operator/merchants/${merchantId}/resume`);
      assert.equal(resumed.statusCode, 200, resumed.body);
      assert.equal(resumed.json().status, 'active');
      assert.equal(resumed.json().suspended_reason, null);
      assert.equal((await postAuthorise(t, await exampleBody())).statusCode, 201);
      assertProblem(await operator('POST', `/operator/merchants/${merchantId}/resume`), 409, 'merchant_not_suspended');

      const audit = await t.gateway.services.ctx.database.db.selectFrom('audit_log').select(['action', 'actor', 'merchant_id']).where('action', 'in', ['merchant.suspend', 'merchant.resume']).orderBy('id').execute();
      assert.deepEqual(audit, [
        { action: 'merchant.suspend', actor: 'operator:api:alice', merchant_id: merchantId },
        { action: 'merchant.resume', actor: 'operator:api:alice', merchant_id: merchantId },
      ]);
    });

    it('names what is wrong with a request, and changes nothing', async () => {
      assertProblem(await operator('POST', `/operator/merchants/${merchantId}/suspend`, {}), 400, 'missing_field', '/reason');
      assertProblem(await operator('POST', `/operator/merchants/${merchantId}/suspend`, { reason: '   ' }), 400, 'invalid_reason', '/reason');
      assertProblem(await operator('POST', `/operator/merchants/${merchantId}/suspend`, { reason: 'x'.repeat(501) }), 400, 'invalid_reason', '/reason');
      assertProblem(await operator('POST', `/operator/merchants/${merchantId}/suspend`, { reason: 'fraud', until: 'tomorrow' }), 400, 'unknown_field', '/until');
      assertProblem(await operator('POST', `/operator/merchants/${merchantId}/resume`, { reason: 'x' }), 400, 'unknown_field', '/reason');
      // The path parameter is named as every route names its own (the compliance routes' /params/merchantId, /params/id).
      assertProblem(await operator('POST', '/operator/merchants/mer_nobody/suspend', { reason: 'fraud' }), 404, 'merchant_not_found', '/params/merchantId');
      assertProblem(await operator('POST', '/operator/merchants/mer_nobody/resume'), 404, 'merchant_not_found', '/params/merchantId');
      assertProblem(await operator('GET', '/operator/merchants/mer_nobody'), 404, 'merchant_not_found', '/params/merchantId');
      // No operator route filters: a filter that would be ignored is refused.
      assertProblem(await operator('GET', '/operator/merchants?status=suspended'), 400, 'unknown_field');
      assert.equal((await operator('GET', `/operator/merchants/${merchantId}`)).json().status, 'active');
    });

    it('takes no merchant secret key in place of an operator token', async () => {
      const res = await t.app.inject({ method: 'POST', url: `/operator/merchants/${merchantId}/suspend`, headers: { 'x-secret-key': t.credentials.secret_key, 'content-type': 'application/json' }, payload: '{"reason":"self"}' });
      assertProblem(res, 401, 'unauthorized');
      assert.equal((await operator('GET', `/operator/merchants/${merchantId}`)).json().status, 'active');
    });
  });
}

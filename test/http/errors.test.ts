import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, postAuthorise } from '../support/http.js';

for (const dialect of DIALECTS) {
  describe(`errors are RFC 9457 problems (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(() => t?.close());

    it('answers /healthz and /readyz', async () => {
      const health = await t.app.inject({ method: 'GET', url: '/healthz' });
      assert.equal(health.statusCode, 200);
      assert.deepEqual(health.json(), { status: 'ok' });
      const ready = await t.app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(ready.statusCode, 200);
      assert.equal(ready.json().database, dialect);
    });

    it('answers unknown routes and methods with route_not_found', async () => {
      const body = assertProblem(await t.app.inject({ method: 'GET', url: '/no-such-thing?x=1' }), 404, 'route_not_found');
      assert.match(body.detail, /GET \/no-such-thing/);
      assert.ok(!body.detail.includes('x=1'));
      assertProblem(await t.app.inject({ method: 'DELETE', url: '/payment/authorise' }), 404, 'route_not_found');
    });

    it('gives every problem its own request id', async () => {
      const a = assertProblem(await t.app.inject({ method: 'GET', url: '/nope' }), 404);
      const b = assertProblem(await t.app.inject({ method: 'GET', url: '/nope' }), 404);
      assert.notEqual(a.request_id, b.request_id);
      assert.equal(a.type, 'https://docs.tzero-pay.test/errors/route_not_found');
      assert.equal(a.title, 'Not Found');
    });

    it('ignores a client-sent request id', async () => {
      const res = await t.app.inject({ method: 'GET', url: '/nope', headers: { 'request-id': 'req_evil', 'x-request-id': 'req_evil' } });
      assert.notEqual(assertProblem(res, 404).request_id, 'req_evil');
    });

    it('maps body errors: invalid JSON 400, wrong type 415, too large 413', async () => {
      assertProblem(await postAuthorise(t, '{"amount": 1,}'), 400, 'invalid_json');
      assertProblem(await postAuthorise(t, '{}', { 'content-type': 'text/csv' }), 415, 'unsupported_media_type');
      assertProblem(await postAuthorise(t, `{"reference":"${'x'.repeat(t.config.bodyLimitBytes)}"}`), 413, 'body_too_large');
    });

    it('never quotes back a card number sent in an id\'s place', async () => {
      const pan = '4242424242424242';
      for (const url of [`/payment/${pan}`, `/payment/${pan}/refunds`, `/payment-methods/${pan}`, `/webhook-endpoints/${pan}`, `/events/${pan}`, `/merchant/compliance/documents/${pan}`, `/no-route/${pan}`]) {
        const body = assertProblem(await t.request({ method: 'GET', url }), 404);
        assert.ok(!body.detail.includes('4242424242'), `${url}: ${body.detail}`);
      }
      const unknown = `pay_${'0'.repeat(32)}`;
      assert.match(assertProblem(await t.request({ method: 'GET', url: `/payment/${unknown}` }), 404, 'payment_not_found', '/id').detail, new RegExp(unknown));
      const audited = await t.gateway.services.ctx.database.db.selectFrom('audit_log').select(['target', 'detail']).where('action', '=', 'compliance.document.download').execute();
      assert.equal(audited.length, 1);
      assert.equal(audited[0]!.target, null);
      assert.ok(!String(audited[0]!.detail).includes('4242424242'));
    });

    it('validates path parameters as problems too', async () => {
      assertProblem(await t.request({ method: 'GET', url: `/payment/${'p'.repeat(65)}` }), 400, 'too_long', '/params/id');
      // Refused by Fastify before routing: the same problem+json, with a request id.
      const malformed = await t.request({ method: 'GET', url: '/payment/%ff' });
      assert.ok(assertProblem(malformed, 400, 'malformed_path').request_id);
      assert.match(malformed.headers['content-type'] as string, /application\/problem\+json/);
      assertProblem(await t.request({ method: 'GET', url: `/payment/${'p'.repeat(200)}` }), 414, 'path_too_long');
    });
  });
}

describe('a failing database', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway({ dialect: 'sqlite' });
  });
  after(() => t?.close());

  it('answers 503 on /readyz and a bare 500 on the API, with no SQL or stack', async () => {
    await t.gateway.services.ctx.database.close();
    assertProblem(await t.app.inject({ method: 'GET', url: '/readyz' }), 503, 'database_unavailable');
    const health = await t.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(health.statusCode, 200);
    const api = await t.request({ method: 'GET', url: '/payment/pay_x' });
    const body = assertProblem(api, 500, 'internal_error');
    assert.ok(body.detail.includes(body.request_id));
    assert.doesNotMatch(api.body, /destroy|driver|kysely|sqlite/i);
  });
});

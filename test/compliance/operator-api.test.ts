import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, exampleBody, freePort, type TestGateway } from '../support/gateway.js';
import { startServer, type ServerProcess } from '../support/process.js';
import { assertProblem } from '../support/http.js';
import { writeAudit } from '../../src/app/audit.js';
import { OPERATOR_TOKEN, dateDaysAgo, declareVolume, expectStatus, operator, startComplianceGateway, upload } from './fixtures.js';

const bearer = { authorization: `Bearer ${OPERATOR_TOKEN}` };

for (const dialect of DIALECTS) {
  describe(`the operator API on a listener of its own: OPERATOR_PORT (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startComplianceGateway(dialect, { OPERATOR_PORT: String(await freePort()) });
    });
    after(() => t?.close());

    it('serves the operator routes there, with the token, and not beside the payment API', async () => {
      const operatorApp = t.gateway.operatorApp;
      assert.ok(operatorApp, 'an operator app is built');
      const url = `/operator/compliance/merchants/${t.credentials.merchant_id}`;
      const shown = await operatorApp.inject({ method: 'GET', url, headers: bearer });
      assert.equal(shown.statusCode, 200, shown.body);
      assert.equal(shown.json().merchant_id, t.credentials.merchant_id);
      assertProblem(await operatorApp.inject({ method: 'GET', url }), 401, 'unauthorized');
      // The payment API's listener does not know the operator routes at all.
      assertProblem(await t.app.inject({ method: 'GET', url, headers: bearer }), 404, 'route_not_found');
      assertProblem(await t.app.inject({ method: 'POST', url: `${url}/approve`, headers: bearer }), 404, 'route_not_found');
    });

    it('serves nothing of the payment API on the operator listener but health checks', async () => {
      const operatorApp = t.gateway.operatorApp!;
      assert.equal((await operatorApp.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
      const authorise = await operatorApp.inject({ method: 'POST', url: '/payment/authorise', headers: { 'x-secret-key': t.credentials.secret_key, 'content-type': 'application/json' }, payload: '{}' });
      assertProblem(authorise, 404, 'route_not_found');
      assertProblem(await operatorApp.inject({ method: 'GET', url: '/merchant/compliance', headers: { 'x-secret-key': t.credentials.secret_key } }), 404, 'route_not_found');
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`personal operator tokens: OPERATOR_TOKENS (${dialect})`, () => {
    const bob = 'bob_' + 'b'.repeat(40);
    let t: TestGateway;
    before(async () => {
      t = await startComplianceGateway(dialect, { OPERATOR_TOKENS: `alice=alice_${'a'.repeat(40)},bob=${bob}` });
    });
    after(() => t?.close());

    it("audits the token's owner, whatever X-Operator-Name claims; the shared token keeps its label", async () => {
      const approve = (authorization: string, name: string) =>
        t.app.inject({ method: 'POST', url: `/operator/compliance/merchants/${t.credentials.merchant_id}/approve`, headers: { authorization, 'x-operator-name': name } });
      assertProblem(await approve(`Bearer ${bob}`, 'alice'), 409, 'nothing_to_review');
      assertProblem(await approve(`Bearer ${OPERATOR_TOKEN}`, 'carol'), 409, 'nothing_to_review');
      assertProblem(await approve(`Bearer ${bob}x`, 'bob'), 401, 'unauthorized');
      const rows = await t.gateway.services.ctx.database.db.selectFrom('audit_log').select(['action', 'actor']).where('action', 'in', ['compliance.review.approve', 'operator.authenticate']).orderBy('id').execute();
      assert.deepEqual(
        rows.map((r) => `${r.action} ${r.actor}`),
        ['compliance.review.approve operator:api:bob', 'compliance.review.approve operator:api:carol', 'operator.authenticate unknown'],
      );
    });

    it("audits each read of a merchant's audit trail (PCI DSS 10.2.1.3), with who read it", async () => {
      const merchantId = t.credentials.merchant_id;
      const show = await t.app.inject({ method: 'GET', url: `/operator/compliance/merchants/${merchantId}`, headers: { authorization: `Bearer ${bob}` } });
      assert.equal(show.statusCode, 200, show.body);
      const rows = await t.gateway.services.ctx.database.db.selectFrom('audit_log').select(['action', 'actor', 'merchant_id', 'target', 'outcome']).where('action', '=', 'audit_log.read').execute();
      assert.deepEqual(rows, [{ action: 'audit_log.read', actor: 'operator:api:bob', merchant_id: merchantId, target: merchantId, outcome: 'success' }]);
    });

    it('refuses query parameters an operator route does not take, as the merchant API does', async () => {
      const merchant = t.credentials.merchant_id;
      const created = (await t.request({ method: 'POST', url: '/payment/authorise', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(await exampleBody()) })).json();
      const urls = [
        '/operator/compliance/submissions?status=pending',
        `/operator/compliance/merchants/${merchant}?expand=documents`,
        `/operator/payments/${created.id}?limit=5`,
        '/operator/metrics?name=tzero_database_up',
      ];
      for (const url of urls) {
        const param = `/querystring/${new URL(url, 'http://x').searchParams.keys().next().value}`;
        const body = assertProblem(await t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${bob}` } }), 400, 'unknown_field', param);
        assert.match(body.detail, /is not a/, url);
      }
      assertProblem(await t.app.inject({ method: 'POST', url: `/operator/compliance/merchants/${merchant}/approve?force=1`, headers: { authorization: `Bearer ${bob}` } }), 400, 'unknown_field', '/querystring/force');
      // The token is checked first: without it, nothing about the route is told.
      assertProblem(await t.app.inject({ method: 'GET', url: urls[0]! }), 401, 'unauthorized');
      assert.equal((await t.app.inject({ method: 'GET', url: '/operator/compliance/submissions', headers: { authorization: `Bearer ${bob}` } })).statusCode, 200);
    });

    it('drops an X-Operator-Name label holding a card number, which the audit log would keep in clear', async () => {
      for (const name of ['4242424242424242', 'pan-5555-5555-5555-4444']) {
        const res = await t.app.inject({ method: 'POST', url: `/operator/compliance/merchants/${t.credentials.merchant_id}/reject`, headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, 'x-operator-name': name }, payload: { reason: 'unreadable' } });
        assertProblem(res, 409, 'nothing_to_review');
      }
      const rows = await t.gateway.services.ctx.database.db.selectFrom('audit_log').select('actor').where('action', '=', 'compliance.review.reject').orderBy('id').execute();
      assert.deepEqual(rows.map((r) => r.actor), ['operator:api', 'operator:api']);
    });
  });
}

describe("the operator API on its own port: npm start's command", () => {
  let dataDir: string;
  let server: ServerProcess | undefined;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'tzero-operator-'));
  });
  after(async () => {
    await server?.stop().catch(() => {});
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('listens on OPERATOR_PORT (loopback) for the operator, and the public port answers 404 there', async () => {
    const operatorPort = await freePort();
    server = await startServer({ DATA_DIR: dataDir, PORT: String(await freePort()), OPERATOR_TOKEN, OPERATOR_PORT: String(operatorPort) });
    const path = '/operator/compliance/submissions';
    const own = await fetch(`http://127.0.0.1:${operatorPort}${path}`, { headers: bearer });
    assert.equal(own.status, 200, await own.clone().text());
    assert.deepEqual(await own.json(), { object: 'list', data: [] });
    const beside = await fetch(`${server.baseUrl}${path}`, { headers: bearer });
    assert.equal(beside.status, 404);
    assert.match(server.output(), new RegExp(`operator API \\(/operator/…\\) listening on http://127\\.0\\.0\\.1:${operatorPort}`));
    assert.equal(await server.stop(), 0, 'both listeners close on SIGTERM');
    server = undefined;
  });
});

for (const dialect of DIALECTS) {
  describe(`the compliance view's audit trail of a busy merchant (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startComplianceGateway(dialect);
    });
    after(() => t?.close());

    it("keeps the merchant's compliance rows, however many captures and refunds its keys asked for since", async () => {
      const merchantId = t.credentials.merchant_id;
      await expectStatus(declareVolume(t, 5000), 200);
      await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 20) }), 201);
      // A day of a busy shop's refunds, as Lifecycle audits each with the key that asked.
      const ctx = t.gateway.services.ctx;
      for (let i = 0; i < 60; i++) {
        await writeAudit(ctx, ctx.database.db, { actor: { who: `merchant:${merchantId}/key_x`, from: 'ip:127.0.0.1' }, action: 'payment.refund', merchantId, target: `pay_${i}`, outcome: 'success', detail: { amount: 100 } });
      }
      const shown = await expectStatus(operator(t, 'GET', `/operator/compliance/merchants/${merchantId}`), 200);
      const actions = (shown.json().audit_log as Array<{ action: string }>).map((r) => r.action);
      assert.ok(actions.includes('compliance.document.upload'), actions.join(', '));
      assert.ok(actions.includes('compliance.volume.declare'), actions.join(', '));
      assert.ok(!actions.includes('payment.refund'), actions.join(', '));
    });
  });
}

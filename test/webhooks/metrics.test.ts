import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DIALECTS, exampleBody, freePort, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem } from '../support/http.js';
import { Receiver, registerEndpoint, waitFor } from './support.js';
import { CAPTURE_FAILS, authorisedPayment } from '../lifecycle/helpers.js';
import { dateDaysAgo, upload } from '../compliance/fixtures.js';

/** Test cards (README): an acquirer processing error at authorisation. */
const PROCESSING_ERROR = '4000000000000119';

const TOKEN = 'op_' + 'm'.repeat(40);
const CARD_IN_URL = '/payments/4242424242424242';

/** Samples of a scrape by name and label text, every line checked against the text format. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.trimEnd().split('\n')) {
    if (line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\[\\"n])*",?)*\})? (-?[0-9.e+]+|\+Inf|NaN)$/.exec(line);
    assert.ok(m, `not a sample line of the text format: ${line}`);
    samples.set(m[1]! + (m[2] ?? ''), Number(m[3]));
  }
  return samples;
}

async function scrape(t: TestGateway, app = t.app): Promise<Map<string, number>> {
  const res = await app.inject({ method: 'GET', url: '/operator/metrics', headers: { authorization: `Bearer ${TOKEN}` } });
  assert.equal(res.statusCode, 200, res.body);
  assert.equal(res.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  assert.ok(!res.body.includes('4242424242424242'), 'a URL asked for reached the metrics');
  return parse(res.body);
}

for (const dialect of DIALECTS) {
  describe(`GET /operator/metrics: what an operator's Prometheus scrapes (${dialect})`, () => {
    it('counts answers by route template and status, times them, and counts callbacks by outcome', async () => {
      const t = await startTestGateway({ dialect, workers: true, env: { OPERATOR_TOKEN: TOKEN, DISPATCH_POLL_MS: '50' } });
      const ok = await new Receiver().start();
      const failing = await new Receiver().start();
      failing.mode = 'fail';
      try {
        assertProblem(await t.app.inject({ method: 'GET', url: '/operator/metrics' }), 401, 'unauthorized');
        ok.secrets = [(await registerEndpoint(t, ok.url, { events: ['payment.created'] })).secret];
        await registerEndpoint(t, failing.url, { events: ['payment.created'] });
        for (let i = 0; i < 2; i++) assert.equal((await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody() })).statusCode, 201);
        assertProblem(await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ amount: -1 }) }), 400);
        assertProblem(await t.request({ method: 'GET', url: CARD_IN_URL }), 404);

        const authorise = 'method="POST",route="/payment/authorise"';
        let samples = await scrape(t);
        assert.equal(samples.get(`tzero_http_requests_total{${authorise},status="201"}`), 2);
        assert.equal(samples.get(`tzero_http_requests_total{${authorise},status="400"}`), 1);
        assert.equal(samples.get('tzero_http_requests_total{method="GET",route="unmatched",status="404"}'), 1);
        assert.equal(samples.get(`tzero_http_request_duration_seconds_count{${authorise}}`), 3);
        assert.equal(samples.get(`tzero_http_request_duration_seconds_bucket{${authorise},le="+Inf"}`), 3);
        assert.ok(samples.get(`tzero_http_request_duration_seconds_sum{${authorise}}`)! > 0);
        assert.equal(samples.get('tzero_database_up'), 1);
        assert.ok(samples.get('process_resident_memory_bytes')! > 0);

        await waitFor('both callbacks recorded', async () => {
          samples = await scrape(t);
          return samples.get('tzero_deliveries_total{kind="webhook",outcome="succeeded"}') === 2 && samples.get('tzero_deliveries_total{kind="webhook",outcome="retrying"}') === 2;
        });
        assert.equal(samples.get('tzero_delivery_attempt_duration_seconds_count{kind="webhook"}'), 4);
        assert.equal(samples.get('tzero_deliveries_total{kind="webhook",outcome="failed"}'), 0);
        // Every worker says when it last ran cleanly: an alert finds one that stopped.
        for (const worker of ['dispatcher', 'capture', 'expiry', 'compliance']) {
          assert.ok(samples.get(`tzero_worker_runs_total{worker="${worker}",outcome="succeeded"}`)! >= 1, worker);
          assert.ok(Math.abs(samples.get(`tzero_worker_last_success_timestamp_seconds{worker="${worker}"}`)! - Date.now() / 1000) < 60, worker);
        }
      } finally {
        await t.close();
        await ok.stop();
        await failing.stop();
      }
    });

    it("counts and times the acquirer's answers by operation and outcome, and gauges the compliance review queue", async () => {
      const t = await startTestGateway({ dialect, env: { OPERATOR_TOKEN: TOKEN } });
      try {
        let samples = await scrape(t);
        assert.equal(samples.get('tzero_compliance_documents_pending'), 0);
        assert.equal(samples.get('tzero_compliance_oldest_pending_document_age_seconds'), 0);

        const approved = await authorisedPayment(t);
        assert.equal((await t.request({ method: 'POST', url: `/payment/${approved.id}/capture` })).statusCode, 200);
        const refused = await authorisedPayment(t, { payment_method: { number: CAPTURE_FAILS } });
        assert.equal((await t.request({ method: 'POST', url: `/payment/${refused.id}/capture` })).statusCode, 422);
        assert.equal((await authorisedPayment(t, { payment_method: { number: PROCESSING_ERROR } })).status, 'failed');

        assert.equal((await upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1) })).statusCode, 201);
        t.clock.advance(90_000);
        assert.equal((await upload(t, { type: 'saq', date: dateDaysAgo(t, 1) })).statusCode, 201);
        t.clock.advance(30_000);

        samples = await scrape(t);
        assert.equal(samples.get('tzero_acquirer_requests_total{operation="authorise",outcome="approved"}'), 2);
        assert.equal(samples.get('tzero_acquirer_requests_total{operation="authorise",outcome="error"}'), 1);
        assert.equal(samples.get('tzero_acquirer_requests_total{operation="capture",outcome="succeeded"}'), 1);
        assert.equal(samples.get('tzero_acquirer_requests_total{operation="capture",outcome="failed"}'), 1);
        assert.equal(samples.get('tzero_acquirer_request_duration_seconds_count{operation="authorise"}'), 3);
        assert.equal(samples.get('tzero_acquirer_request_duration_seconds_bucket{operation="capture",le="+Inf"}'), 2);
        assert.equal(samples.get('tzero_compliance_documents_pending'), 2);
        assert.equal(samples.get('tzero_compliance_oldest_pending_document_age_seconds'), 120);
      } finally {
        await t.close();
      }
    });

    it('shows the series the README alerts on at 0 before anything happens: increase() sees no first sample', async () => {
      const t = await startTestGateway({ dialect, workers: true, env: { OPERATOR_TOKEN: TOKEN } });
      try {
        const samples = await scrape(t);
        for (const series of [
          'tzero_releases_total{outcome="failed"}',
          'tzero_deliveries_total{kind="webhook",outcome="failed"}',
          'tzero_deliveries_total{kind="email",outcome="failed"}',
          'tzero_acquirer_requests_total{operation="authorise",outcome="error"}',
          'tzero_acquirer_requests_total{operation="authorise",outcome="threw"}',
          'tzero_acquirer_requests_total{operation="refund",outcome="pending"}',
          'tzero_worker_runs_total{worker="dispatcher",outcome="failed"}',
        ]) {
          assert.equal(samples.get(series), 0, series);
        }
      } finally {
        await t.close();
      }
    });

    it('is served on the operator listener when OPERATOR_PORT is set, counting both listeners', async () => {
      const t = await startTestGateway({ dialect, env: { OPERATOR_TOKEN: TOKEN, OPERATOR_PORT: String(await freePort()) } });
      try {
        assert.equal((await t.request({ method: 'GET', url: '/healthz' })).statusCode, 200);
        assertProblem(await t.app.inject({ method: 'GET', url: '/operator/metrics', headers: { authorization: `Bearer ${TOKEN}` } }), 404, 'route_not_found');
        const samples = await scrape(t, t.gateway.operatorApp!);
        assert.equal(samples.get('tzero_http_requests_total{method="GET",route="/healthz",status="200"}'), 1);
        assert.equal(samples.get('tzero_http_requests_total{method="GET",route="unmatched",status="404"}'), 1);
      } finally {
        await t.close();
      }
    });
  });
}

describe('the metrics of a closed gateway', () => {
  it('stop sampling the event loop: a closed gateway leaves no timer running', async () => {
    const t = await startTestGateway({ env: { OPERATOR_TOKEN: TOKEN } });
    await t.close();
    const loop = (t.gateway.services.ctx.metrics as unknown as { loopDelay: { count: number } }).loopDelay;
    const before = loop.count;
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(loop.count, before, 'the event-loop monitor still samples after close');
  });
});

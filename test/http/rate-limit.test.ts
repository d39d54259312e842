import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { MerchantRateLimiter } from '../../src/http/merchant-rate-limit.js';
import { createLogger } from '../../src/logger.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, createMerchant, postAuthorise } from '../support/http.js';

describe('merchant rate limiter (token bucket)', () => {
  it('lets a burst through, then one request per 1/rate seconds, each merchant on its own', () => {
    let now = 0;
    const limiter = new MerchantRateLimiter({ perSecond: 4, burst: 3 }, () => now);
    const wait = (merchant: string) => limiter.take(merchant)?.waitMs;
    assert.deepEqual([1, 2, 3].map(() => wait('mer_a')), [undefined, undefined, undefined]);
    assert.equal(wait('mer_a'), 250);
    assert.equal(wait('mer_b'), undefined, 'another merchant has a bucket of its own');
    now = 100;
    assert.equal(wait('mer_a'), 150, 'a refused request takes no token');
    now = 250;
    assert.equal(wait('mer_a'), undefined);
    assert.equal(wait('mer_a'), 250);
    now = 60_000;
    assert.deepEqual([1, 2, 3, 4].map(() => wait('mer_a') === undefined), [true, true, true, false], 'a quiet spell refills the burst, not more');
  });

  it("asks for a merchant's refusals to be reported once a minute, not each", () => {
    let now = 0;
    const limiter = new MerchantRateLimiter({ perSecond: 1, burst: 1 }, () => now);
    const reports = () => [1, 2, 3].map(() => limiter.take('mer_a')?.report);
    assert.deepEqual(reports(), [undefined, true, false]);
    now = 30_000;
    assert.deepEqual(reports(), [undefined, false, false]);
    now = 60_001;
    assert.deepEqual(reports(), [undefined, true, false]);
  });
});

for (const dialect of DIALECTS) {
  describe(`merchant rate limit over HTTP (${dialect})`, () => {
    let t: TestGateway;
    const lines: Array<{ level: number; msg: string; merchant_id?: string }> = [];
    before(async () => {
      const log = createLogger('warn', { write: (text: string) => void lines.push(JSON.parse(text)) });
      t = await startTestGateway({ dialect, log, env: { RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '3' } });
    });
    after(() => t?.close());

    it('answers 429 rate_limited with Retry-After once a merchant is over its burst, and leaves other merchants alone', async () => {
      const other = await createMerchant(t, 'calm-shop');
      const started = performance.now();
      const answers = await Promise.all(Array.from({ length: 8 }, () => t.request({ method: 'GET', url: '/payments' })));
      const elapsedS = (performance.now() - started) / 1000;
      const ok = answers.filter((r) => r.statusCode === 200).length;
      const limited = answers.filter((r) => r.statusCode === 429);
      assert.equal(ok + limited.length, 8, answers.map((r) => r.statusCode).join());
      assert.ok(ok >= 3 && ok <= 3 + Math.ceil(elapsedS), `${ok} answered in ${elapsedS} s`);
      const body = assertProblem(limited[0]!, 429, 'rate_limited');
      assert.match(body.detail, /over 1 a second \(bursts of 3\)/);
      assert.equal(limited[0]!.headers['retry-after'], '1');
      const calm = await t.app.inject({ method: 'GET', url: '/payments', headers: { 'x-secret-key': other.key.secret_key } });
      assert.equal(calm.statusCode, 200, calm.body);
      const warned = lines.filter((l) => l.msg.startsWith('merchant over its request rate'));
      assert.deepEqual(warned.map((l) => [l.level, l.merchant_id]), [[40, t.credentials.merchant_id]], 'the operator is told once, not at each refusal');
    });

    it('does nothing for a refused request: the same Idempotency-Key authorises once the merchant may send again', async () => {
      const body = await exampleBody();
      const headers = { 'idempotency-key': `rate-${dialect}-${Date.now()}` };
      let refused = await postAuthorise(t, body, headers);
      while (refused.statusCode === 201) refused = await postAuthorise(t, await exampleBody(), { 'idempotency-key': `filler-${randomUUID()}` });
      assertProblem(refused, 429, 'rate_limited');
      await new Promise((resolve) => setTimeout(resolve, Number(refused.headers['retry-after']) * 1000));
      const taken = await postAuthorise(t, body, headers);
      assert.equal(taken.statusCode, 201, taken.body);
      assert.equal(taken.headers['idempotent-replayed'], undefined, 'the first answer was a refusal, not a payment');
    });

    it('states the limit in the served OpenAPI document', async () => {
      const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
      const limited = doc.paths['/payment/authorise'].post.responses['429'];
      assert.match(limited.description, /over 1 a second, in bursts of up to 3/);
      assert.equal(limited.headers['Retry-After'].required, true);
      assert.equal(doc.paths['/healthz']?.get?.responses?.['429'], undefined, 'unauthenticated operations are not limited');
    });
  });
}

describe('merchant rate limit off (the default)', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway({ dialect: DIALECTS[0] });
  });
  after(() => t?.close());

  it('takes a burst of requests and documents no 429', async () => {
    const answers = await Promise.all(Array.from({ length: 20 }, () => t.request({ method: 'GET', url: '/payments' })));
    assert.deepEqual(new Set(answers.map((r) => r.statusCode)), new Set([200]));
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    assert.equal(doc.paths['/payment/authorise'].post.responses['429'], undefined);
  });
});

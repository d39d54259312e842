import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LookupCache } from '../../src/app/lookup-cache.js';
import { MAX_CHALLENGE_ATTEMPTS } from '../../src/app/checkout.js';
import { SANDBOX_CHALLENGE_CODE } from '../../src/adapters/acquirers/sandbox/test-cards.js';
import { runCaptureScheduler } from '../../src/workers/capture-scheduler.js';
import { sweepExpired } from '../../src/workers/expiry-sweeper.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, postAuthorise } from '../support/http.js';
import { runCli } from '../support/process.js';
import { authorisedPayment, eventTypes, getPayment, post } from '../lifecycle/helpers.js';

/**
 * `merchant suspend` run by the operator CLI, a process of its own, while a gateway serves
 * the merchant from its warm key cache: the next request that would take money is refused,
 * and what gives money back or only reads goes on (decision 0027).
 */
for (const dialect of DIALECTS) {
  describe(`a merchant suspended by the CLI (${dialect})`, () => {
    let t: TestGateway;
    let merchantId: string;

    before(async () => {
      t = await startTestGateway({ dialect });
      merchantId = t.credentials.merchant_id;
      // On PostgreSQL the cache is bypassed until its listener is in place.
      await LookupCache.of(t.gateway.services.ctx).start();
    });
    after(() => t?.close());

    const cli = (...args: string[]) => {
      const env: Record<string, string> = { DATA_DIR: t.dataDir, LOG_LEVEL: 'silent' };
      if (t.config.databaseUrl) env.DATABASE_URL = t.config.databaseUrl;
      return runCli([...args, '--json'], env);
    };
    const ok = async (...args: string[]) => {
      const r = await cli(...args);
      assert.equal(r.code, 0, `cli ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      return JSON.parse(r.stdout) as unknown;
    };
    const authorise = async (overrides: Record<string, unknown> = {}) => postAuthorise(t, await exampleBody(overrides));
    const pagePath = (redirectUrl: string) => new URL(redirectUrl).pathname;
    const fromPage = { 'sec-fetch-site': 'same-origin', 'content-type': 'application/x-www-form-urlencoded' };

    it('refuses new payments and captures at once, keeps reads, refunds, voids and the callbacks about them, and takes payments again once resumed', async () => {
      const toCapture = await authorisedPayment(t);
      const toVoid = await authorisedPayment(t);
      const toRefund = await authorisedPayment(t);
      assert.equal((await post(t, `/payment/${toRefund.id}/capture`)).statusCode, 200);
      const scheduled = await authorisedPayment(t, { capture: 'auto', capture_delay: '1m' });
      const open = (await authorise()).json<{ id: string; redirect_url: string }>();
      // Served from memory from here on: only the config counter or NOTIFY can tell the gateway.
      assert.equal((await authorise()).statusCode, 201);

      assert.deepEqual(await ok('merchant', 'suspend', merchantId, '--reason', 'card testing reported by the acquirer'), { id: merchantId, status: 'suspended' });

      const refused = assertProblem(await authorise(), 403, 'merchant_suspended');
      assert.match(refused.detail ?? '', /suspended by the gateway operator/);
      assert.doesNotMatch(refused.detail ?? '', /card testing/, 'the reason stays with the operator');
      assertProblem(await post(t, `/payment/${toCapture.id}/capture`), 403, 'merchant_suspended');
      assert.equal((await getPayment(t, toCapture.id)).status, 'authorised');
      assert.equal((await t.request({ method: 'GET', url: '/payments' })).statusCode, 200);
      assert.equal((await post(t, `/payment/${toVoid.id}/void`)).statusCode, 200);
      assert.equal((await post(t, `/payment/${toRefund.id}/refund`, { amount: 100 })).statusCode, 201);
      assert.ok((await eventTypes(t, toRefund.id)).includes('refund.succeeded'), 'the refund is told as ever');

      // The customer's open page says so and takes nothing; cancelling still works.
      const page = await t.app.inject({ method: 'GET', url: pagePath(open.redirect_url) });
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /This payment cannot be completed/);
      assert.doesNotMatch(page.body, /\/confirm"/);
      const confirm = await t.app.inject({ method: 'POST', url: `${pagePath(open.redirect_url)}/confirm`, headers: fromPage, payload: '' });
      assert.equal(confirm.statusCode, 303, confirm.body);
      assert.equal((await getPayment(t, open.id)).status, 'requires_action');

      // The scheduled capture waits rather than fails: made once the merchant is resumed.
      t.clock.advance(60_000);
      assert.equal(await runCaptureScheduler(t.gateway.services), 0);
      assert.equal((await getPayment(t, scheduled.id)).status, 'authorised');

      const listed = (await ok('merchant', 'list')) as Array<{ id: string; status: string; suspended_reason: string | null }>;
      assert.deepEqual(listed.filter((m) => m.id === merchantId).map((m) => [m.status, m.suspended_reason]), [['suspended', 'card testing reported by the acquirer']]);

      assert.deepEqual(await ok('merchant', 'resume', merchantId), { id: merchantId, status: 'active' });
      assert.equal((await authorise()).statusCode, 201);
      assert.equal(await runCaptureScheduler(t.gateway.services), 1);
      assert.equal((await getPayment(t, scheduled.id)).status, 'captured');
      const paid = await t.app.inject({ method: 'POST', url: `${pagePath(open.redirect_url)}/confirm`, headers: fromPage, payload: '' });
      assert.equal(paid.statusCode, 303);
      assert.equal((await getPayment(t, open.id)).status, 'captured', 'the page is paid once the merchant is resumed');

      const audit = (await ok('audit', 'list', '--merchant', merchantId)) as Array<{ action: string; actor: string; detail: unknown }>;
      const actions = audit.filter((a) => a.action.startsWith('merchant.'));
      assert.deepEqual(actions.map((a) => a.action).slice(0, 2), ['merchant.resume', 'merchant.suspend']);
      for (const a of actions.slice(0, 2)) assert.match(a.actor, /^operator:cli:/);
    });

    it("a challenge answered on a suspended merchant's page authorises nothing and uses no attempt; the customer can cancel", async () => {
      const merchants = t.gateway.services.merchants;
      const p = (await authorise({ payment_method: { number: '4000000000003220' } })).json<{ id: string; redirect_url: string }>();
      const path = pagePath(p.redirect_url);
      await merchants.suspendMerchant(merchantId, 'acquirer asked');
      try {
        const answered = await t.app.inject({ method: 'POST', url: `${path}/challenge`, headers: fromPage, payload: `otp=${SANDBOX_CHALLENGE_CODE}` });
        assert.equal(answered.statusCode, 303, answered.body);
        assert.equal((await getPayment(t, p.id)).status, 'requires_action');
        const token = path.slice('/pay/'.length);
        assert.equal((await t.gateway.services.checkout.load(token))!.attemptsLeft, MAX_CHALLENGE_ATTEMPTS);
        const cancelled = await t.app.inject({ method: 'POST', url: `${path}/cancel`, headers: fromPage, payload: '' });
        assert.equal(cancelled.statusCode, 303, cancelled.body);
        assert.equal((await getPayment(t, p.id)).status, 'cancelled');
      } finally {
        await merchants.resumeMerchant(merchantId);
      }
    });

    it('the served OpenAPI lists merchant_suspended on the operations that take money', async () => {
      const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json<{ paths: Record<string, Record<string, { responses: Record<string, { description: string }> }>> }>();
      for (const path of ['/payment/authorise', '/payment/{id}/capture']) assert.match(doc.paths[path]!.post!.responses['403']!.description, /`merchant_suspended`/, path);
      for (const path of ['/payment/{id}/refund', '/payment/{id}/void']) assert.equal(doc.paths[path]!.post!.responses['403'], undefined, path);
    });

    it('refuses a reason holding a card number, a second suspension and resuming an active merchant, naming what is wrong', async () => {
      const withCard = await cli('merchant', 'suspend', merchantId, '--reason', 'customer 4242 4242 4242 4242 complained');
      assert.equal(withCard.code, 1);
      assert.match(withCard.stderr, /"code":"card_number_in_text","message":"reason looks like a card number/);
      assert.doesNotMatch(withCard.stderr + withCard.stdout, /4242 4242 4242 4242/);
      const notSuspended = await cli('merchant', 'resume', merchantId);
      assert.match(notSuspended.stderr, /merchant_not_suspended/);
      await ok('merchant', 'suspend', merchantId, '--reason', 'first');
      const twice = await cli('merchant', 'suspend', merchantId, '--reason', 'second');
      assert.match(twice.stderr, /merchant_already_suspended/);
      const unknown = await cli('merchant', 'suspend', 'mer_nobody', '--reason', 'x');
      assert.match(unknown.stderr, /merchant_not_found/);
      await ok('merchant', 'resume', merchantId);
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`a delayed capture a suspension held until the authorisation lapsed (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(() => t?.close());

    it('expires saying the capture waited for the suspension, not only that it was not made', async () => {
      const merchants = t.gateway.services.merchants;
      const held = await authorisedPayment(t, { capture: 'auto', capture_delay: '1m' });
      const unscheduled = await authorisedPayment(t);
      await merchants.suspendMerchant(t.credentials.merchant_id, 'chargeback review');
      t.clock.advance(t.config.authorisationValidityMs + 60 * 60_000);
      await runCaptureScheduler(t.gateway.services);
      await sweepExpired(t.gateway.services);
      const expired = await getPayment(t, held.id);
      assert.equal(expired.status, 'expired');
      assert.match(String(expired.failure_message), /was not made before the authorisation expired .* because the merchant account was suspended; nothing was taken/);
      // The operator's reason is theirs: the merchant reads that it was suspended, not why.
      assert.doesNotMatch(String(expired.failure_message), /chargeback review/);
      // Without a delayed capture nothing waited for the suspension: nothing to say.
      assert.equal((await getPayment(t, unscheduled.id)).failure_message ?? null, null);
    });
  });
}

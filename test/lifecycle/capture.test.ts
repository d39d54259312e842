import assert from 'node:assert/strict';
import pg from 'pg';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { authorisedPayment, CAPTURE_FAILS, countAcquirerCalls, eventTypes, getPayment, post, type PaymentJson } from './helpers.js';
import { CLAIM_LEASE_MS } from '../../src/domain/payment-state.js';
import { runCaptureScheduler } from '../../src/workers/capture-scheduler.js';

for (const dialect of DIALECTS) {
  describe(`capture and void (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(async () => {
      await t.close();
    });

    it('captures the full authorised amount', async () => {
      const p = await authorisedPayment(t);
      assert.equal(p.status, 'authorised');
      const res = await post(t, `/payment/${p.id}/capture`);
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json() as PaymentJson;
      assert.equal(body.status, 'captured');
      assert.equal(body.amount_captured, p.amount);
      assert.equal(body.expires_at, null);
      assert.deepEqual(await getPayment(t, p.id), body);
      assert.deepEqual(await eventTypes(t, p.id), ['payment.created', 'payment.authorised', 'payment.captured']);
    });

    it('captures part of the amount, releasing the rest, and only once', async () => {
      const p = await authorisedPayment(t, { amount: 1000 });
      const res = await post(t, `/payment/${p.id}/capture`, { amount: 600 });
      assert.equal(res.statusCode, 200, res.body);
      const body = res.json() as PaymentJson;
      assert.equal(body.status, 'partially_captured');
      assert.equal(body.amount, 1000);
      assert.equal(body.amount_captured, 600);

      const again = await post(t, `/payment/${p.id}/capture`, { amount: 100 });
      assert.equal(again.statusCode, 409);
      assert.equal(again.json().code, 'payment_not_capturable');
      assert.equal((await getPayment(t, p.id)).amount_captured, 600);
      assert.deepEqual(await eventTypes(t, p.id), ['payment.created', 'payment.authorised', 'payment.partially_captured']);
    });

    it('refuses to capture more than was authorised, naming the amount', async () => {
      const p = await authorisedPayment(t, { amount: 500 });
      const res = await post(t, `/payment/${p.id}/capture`, { amount: 501 });
      assert.equal(res.statusCode, 409);
      assert.match(res.headers['content-type'] as string, /^application\/problem\+json/);
      const problem = res.json();
      assert.equal(problem.code, 'amount_exceeds_capturable');
      assert.equal(problem.param, '/amount');
      assert.equal(problem.amount_capturable, 500);
      const after = await getPayment(t, p.id);
      assert.equal(after.status, 'authorised');
      assert.equal(after.amount_captured, 0);
    });

    it('rejects malformed amounts with a field pointer', async () => {
      const p = await authorisedPayment(t);
      for (const amount of [0, -5, 1.5, '50']) {
        const res = await post(t, `/payment/${p.id}/capture`, { amount });
        assert.equal(res.statusCode, 400, `amount ${JSON.stringify(amount)}: ${res.body}`);
        assert.equal(res.json().param, '/amount');
        // A fraction or a quoted number is most often major units: the answer names the unit.
        if (typeof amount === 'string' || !Number.isInteger(amount)) assert.match(res.json().detail, /minor units/);
      }
      const unknown = await post(t, `/payment/${p.id}/capture`, { amont: 5 });
      assert.equal(unknown.statusCode, 400);
      assert.equal(unknown.json().param, '/amont');
      assert.equal((await getPayment(t, p.id)).status, 'authorised');
    });

    it('voids an authorisation, after which capture is refused', async () => {
      const p = await authorisedPayment(t);
      const res = await post(t, `/payment/${p.id}/void`);
      assert.equal(res.statusCode, 200, res.body);
      assert.equal(res.json().status, 'voided');
      assert.equal(res.json().expires_at, null);

      const capture = await post(t, `/payment/${p.id}/capture`);
      assert.equal(capture.statusCode, 409);
      assert.equal(capture.json().code, 'payment_not_capturable');
      assert.equal(capture.json().payment_status, 'voided');
      const again = await post(t, `/payment/${p.id}/void`);
      assert.equal(again.statusCode, 409);
      assert.equal(again.json().code, 'payment_not_voidable');
      assert.equal((await getPayment(t, p.id)).amount_captured, 0);
      assert.deepEqual(await eventTypes(t, p.id), ['payment.created', 'payment.authorised', 'payment.voided']);
    });

    it('refuses to void a captured payment', async () => {
      const p = await authorisedPayment(t, { capture: 'auto' });
      assert.equal(p.status, 'captured');
      const res = await post(t, `/payment/${p.id}/void`);
      assert.equal(res.statusCode, 409);
      assert.equal(res.json().code, 'payment_not_voidable');
      assert.match(res.json().detail, /refund/);
      assert.equal((await getPayment(t, p.id)).status, 'captured');
    });

    it('refuses a payment the customer has not finished', async () => {
      const created = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ capture: 'manual' }) });
      assert.equal(created.statusCode, 201);
      const res = await post(t, `/payment/${created.json().id}/capture`);
      assert.equal(res.statusCode, 409);
      assert.equal(res.json().code, 'payment_not_capturable');
    });

    it('replays a capture sent again with the same Idempotency-Key', async () => {
      const p = await authorisedPayment(t, { amount: 800 });
      const acquirer = countAcquirerCalls([t.gateway]);
      const headers = { 'idempotency-key': `cap-${p.id}` };
      const first = await post(t, `/payment/${p.id}/capture`, { amount: 300 }, headers);
      const second = await post(t, `/payment/${p.id}/capture`, { amount: 300 }, headers);
      assert.equal(first.statusCode, 200);
      assert.equal(second.statusCode, 200);
      assert.equal(second.headers['idempotent-replayed'], 'true');
      assert.equal(second.body, first.body);
      assert.equal(acquirer.count('capture', p.id), 1);
      const other = await post(t, `/payment/${p.id}/capture`, { amount: 400 }, headers);
      assert.equal(other.statusCode, 422);
      assert.equal(other.json().code, 'idempotency_key_reused');
      assert.equal((await getPayment(t, p.id)).amount_captured, 300);
    });

    it('replays a void sent again with the same Idempotency-Key', async () => {
      const p = await authorisedPayment(t);
      const headers = { 'idempotency-key': `void-${p.id}` };
      const first = await post(t, `/payment/${p.id}/void`, undefined, headers);
      const second = await post(t, `/payment/${p.id}/void`, undefined, headers);
      assert.equal(first.statusCode, 200);
      assert.equal(second.statusCode, 200);
      assert.equal(second.headers['idempotent-replayed'], 'true');
      assert.equal(second.body, first.body);
    });

    it('takes an empty JSON body, {} and no body as one request, also to Idempotency-Key', async () => {
      const p = await authorisedPayment(t);
      const json = { 'idempotency-key': `empty-${p.id}`, 'content-type': 'application/json' };
      const voids = [
        await t.request({ method: 'POST', url: `/payment/${p.id}/void`, headers: json, payload: '' }),
        await t.request({ method: 'POST', url: `/payment/${p.id}/void`, headers: json, payload: '{ }' }),
        await t.request({ method: 'POST', url: `/payment/${p.id}/void`, headers: json, payload: '{}' }),
        await post(t, `/payment/${p.id}/void`, undefined, { 'idempotency-key': `empty-${p.id}` }),
      ];
      assert.deepEqual(voids.map((r) => [r.statusCode, r.headers['idempotent-replayed']]), [[200, undefined], [200, 'true'], [200, 'true'], [200, 'true']], voids.map((r) => r.body).join('\n'));
      assert.equal((await getPayment(t, p.id)).status, 'voided');
      // A body with something in it is still read and checked as sent.
      const other = await t.request({ method: 'POST', url: `/payment/${p.id}/void`, headers: json, payload: '{"x":1}' });
      assert.equal(other.statusCode, 400);
    });

    it('refuses a JSON null body like any body that is not an object, and leaves the payment as it was', async () => {
      const p = await authorisedPayment(t, { amount: 1000 });
      const json = { 'content-type': 'application/json' };
      for (const action of ['capture', 'void', 'refund']) {
        for (const payload of ['null', ' null ', '[]']) {
          const res = await t.request({ method: 'POST', url: `/payment/${p.id}/${action}`, headers: json, payload });
          assert.equal(res.statusCode, 400, `${action} ${payload}: ${res.body}`);
          assert.deepEqual([res.json().code, res.json().param], ['invalid_type', ''], `${action} ${payload}`);
        }
      }
      const after = await getPayment(t, p.id);
      assert.deepEqual([after.status, after.amount_captured], ['authorised', 0]);
      assert.deepEqual(await eventTypes(t, p.id), ['payment.created', 'payment.authorised']);
    });

    it('reports a refused capture (test card 4000 0000 0000 0259) without changing the balance', async () => {
      const p = await authorisedPayment(t, { payment_method: { number: CAPTURE_FAILS } });
      assert.equal(p.status, 'authorised');
      const res = await post(t, `/payment/${p.id}/capture`);
      assert.equal(res.statusCode, 422);
      assert.equal(res.json().code, 'capture_failed');
      assert.equal(res.json().decline_code, 'capture_refused');
      assert.equal(res.json().payment_status, 'authorised');
      const after = await getPayment(t, p.id);
      assert.equal(after.status, 'authorised');
      assert.equal(after.amount_captured, 0);
      assert.match(after.failure_message ?? '', /^capture of USD 1\.00 failed: /);
      assert.deepEqual(await eventTypes(t, p.id), ['payment.created', 'payment.authorised', 'payment.capture_failed']);
      // The authorisation still stands and can be released.
      const voided = await post(t, `/payment/${p.id}/void`);
      assert.equal(voided.statusCode, 200);
      assert.equal(voided.json().status, 'voided');
    });

    it('captures and refunds a 13-digit card that shares only its shown digits with a refusing test card', async () => {
      // The BIN of a 13-digit card is its first 4: 4000 and the last 4 of 4000 0000 0000 0259
      // (capture refused) and 4000 0000 0000 5126 (refund fails) name no test card here.
      for (const [number, refusing] of [['4000010020259', 'capture'], ['4000010025126', 'refund']] as const) {
        const p = await authorisedPayment(t, { payment_method: { number } });
        const captured = await post(t, `/payment/${p.id}/capture`);
        assert.equal(captured.statusCode, 200, `${refusing}: ${captured.body}`);
        assert.equal(captured.json().payment_method.card.bin, '4000');
        const refunded = await post(t, `/payment/${p.id}/refund`, { amount: 100 });
        assert.equal(refunded.statusCode, 201, refunded.body);
        assert.equal(refunded.json().status, 'succeeded', `${refusing}: ${refunded.body}`);
      }
    });

    it('captures and refunds a 16- or 19-digit card that shows the BIN and last 4 of a refusing test card', async () => {
      // "Any other valid card number is approved frictionlessly": 4000 00… 0259 of other middle
      // digits shows 400000 and 0259 like the refusing card, yet is not in the table.
      for (const [number, refusing] of [
        ['4000000000180259', 'capture'],
        ['4000000000000040259', 'capture'],
        ['4000000000185126', 'refund'],
        ['4000000000000045126', 'refund'],
      ] as const) {
        const p = await authorisedPayment(t, { payment_method: { number } });
        const captured = await post(t, `/payment/${p.id}/capture`);
        assert.equal(captured.statusCode, 200, `${number} ${refusing}: ${captured.body}`);
        assert.equal(captured.json().payment_method.card.bin, '400000');
        const refunded = await post(t, `/payment/${p.id}/refund`, { amount: 100 });
        assert.equal(refunded.statusCode, 201, refunded.body);
        assert.equal(refunded.json().status, 'succeeded', `${number} ${refusing}: ${refunded.body}`);
      }
    });

    it('says which amount a refused partial capture asked for, in the payment and its event', async () => {
      const p = await authorisedPayment(t, { amount: 1000, currency: 'KWD', payment_method: { number: CAPTURE_FAILS } });
      assert.equal((await post(t, `/payment/${p.id}/capture`, { amount: 600 })).statusCode, 422);
      const after = await getPayment(t, p.id);
      assert.equal(after.failure_message, 'capture of KWD 0.600 failed: The acquirer refused the capture.');
      const [event] = (await t.request({ method: 'GET', url: `/events?payment=${p.id}&type=payment.capture_failed` })).json().data as Array<{ data: { object: { failure_message: string } } }>;
      assert.equal(event!.data.object.failure_message, after.failure_message);
    });

    it('does not store a refused capture for its key: a retry with the same key asks again', async () => {
      const p = await authorisedPayment(t, { payment_method: { number: CAPTURE_FAILS } });
      const headers = { 'idempotency-key': `refused-${p.id}` };
      assert.equal((await post(t, `/payment/${p.id}/capture`, {}, headers)).statusCode, 422);
      const again = await post(t, `/payment/${p.id}/capture`, {}, headers);
      assert.equal(again.statusCode, 422);
      assert.equal(again.headers['idempotent-replayed'], undefined);
    });

    it('replays, not refuses, a capture retried with its key after the scheduler took its claim over', async () => {
      const p = await authorisedPayment(t);
      const acquirer = t.gateway.services.ctx.acquirer;
      const capture = acquirer.capture;
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let holding!: () => void;
      const held = new Promise<void>((r) => (holding = r));
      let calls = 0;
      acquirer.capture = async (req) => {
        // The owner's call hangs past the claim's lease; the scheduler's goes through.
        if (++calls === 1) {
          holding();
          await released;
        }
        return capture.call(acquirer, req);
      };
      try {
        const headers = { 'idempotency-key': `takeover-${p.id}` };
        const owner = post(t, `/payment/${p.id}/capture`, {}, headers);
        await held;
        t.clock.advance(CLAIM_LEASE_MS);
        await runCaptureScheduler(t.gateway.services);
        release();
        assert.equal((await owner).statusCode, 202);
        const retry = await post(t, `/payment/${p.id}/capture`, {}, headers);
        assert.equal(retry.headers['idempotent-replayed'], 'true', retry.body);
        assert.equal((retry.json() as PaymentJson).id, p.id);
        assert.equal((await getPayment(t, p.id)).status, 'captured');
      } finally {
        acquirer.capture = capture;
      }
    });

    it("answers 404 for another merchant's payment, and moves nothing", async () => {
      const p = await authorisedPayment(t);
      const other = await t.gateway.services.merchants.createMerchant('Other shop');
      const key = await t.gateway.services.merchants.createSecretKey(other.id, 'other');
      for (const action of ['capture', 'void', 'refund']) {
        const res = await post(t, `/payment/${p.id}/${action}`, undefined, { 'x-secret-key': key.secret_key });
        assert.equal(res.statusCode, 404, action);
        assert.equal(res.json().code, 'payment_not_found');
      }
      const missing = await post(t, '/payment/pay_0000000000000000000000000000000/capture');
      assert.equal(missing.statusCode, 404);
      assert.equal((await getPayment(t, p.id)).status, 'authorised');
    });

    if (dialect === 'postgres') {
      it("answers another merchant's payment without waiting for its row lock, as it answers a missing one", async () => {
        const p = await authorisedPayment(t);
        const other = await t.gateway.services.merchants.createMerchant('Lock prober');
        const key = await t.gateway.services.merchants.createSecretKey(other.id, 'prober');
        // The owner's own capture holding the row, as a settlement in progress does.
        const owner = new pg.Client({ connectionString: t.config.databaseUrl! });
        await owner.connect();
        try {
          await owner.query('begin');
          await owner.query('select id from payments where id = $1 for update', [p.id]);
          for (const action of ['capture', 'void', 'refund']) {
            const answered = post(t, `/payment/${p.id}/${action}`, undefined, { 'x-secret-key': key.secret_key });
            const waited = new Promise<'waited'>((resolve) => setTimeout(() => resolve('waited'), 2_000).unref());
            const first = await Promise.race([answered, waited]);
            assert.notEqual(first, 'waited', `${action}: another merchant's request waited on the owner's row lock, telling the payment exists`);
            const res = await answered;
            assert.equal(res.statusCode, 404, action);
            assert.equal(res.json().code, 'payment_not_found');
          }
        } finally {
          await owner.query('rollback');
          await owner.end();
        }
      });
    }
  });
}

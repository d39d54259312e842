import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { expectProblem, json, mit, payByCard } from './support.js';
import type { AuthoriseResult } from '../../src/ports/acquirer.js';

/** The issuer's answer to an MIT of this amount: a decline for want of funds. */
const DECLINED_AMOUNT = 1313;

for (const dialect of DIALECTS) {
  describe(`instalment plans are counted (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
      const acquirer = t.gateway.services.ctx.acquirer;
      const authorise = acquirer.authorise.bind(acquirer);
      acquirer.authorise = async (req): Promise<AuthoriseResult> =>
        req.amount === DECLINED_AMOUNT ? { outcome: 'declined', declineCode: 'insufficient_funds', message: 'The card has insufficient funds.', retryable: true } : authorise(req);
    });
    after(async () => {
      await t?.close();
    });

    const plan = (customer: string, instalments: number) => payByCard(t, { customer, payment_data: { payment_type: 'cit', payment_sub_type: 'instalment-initial', instalments } });
    const instalment = (token: string, previous: string, amount?: number) => mit(t, { token, previous_payment_id: previous, sub_type: 'instalment-subsequent', ...(amount ? { amount } : {}) });

    it('asks an instalment-initial payment for the length of its plan, and no other payment', async () => {
      const missing = await payByCardRaw(t, { payment_type: 'cit', payment_sub_type: 'instalment-initial' });
      assert.equal(expectProblem(missing, 400, 'instalments_required').param, '/payment_data/instalments');
      const elsewhere = await payByCardRaw(t, { payment_type: 'cit', payment_sub_type: 'recurring-initial', instalments: 3 });
      assert.equal(expectProblem(elsewhere, 400, 'instalments_not_allowed').param, '/payment_data/instalments');
      const initial = await plan('cust-inst-shown', 4);
      assert.equal(initial.payment_data.instalments, 4);
    });

    it('refuses the instalment after the last, naming the initial payment or an earlier instalment', async () => {
      const initial = await plan('cust-inst-3', 3);
      const token = initial.payment_method.token as string;
      const second = json(await instalment(token, initial.id));
      assert.equal(second.status, 'captured');
      const third = json(await instalment(token, second.id));
      assert.equal(third.status, 'captured');
      for (const previous of [initial.id, third.id]) {
        const res = await instalment(token, previous);
        const problem = expectProblem(res, 422, 'instalments_exhausted');
        assert.equal(problem.param, '/payment_data/previous_payment_id');
        assert.match(problem.detail, new RegExp(`${initial.id}.*3 payments`));
      }
    });

    it('gives a declined instalment its place back for the retry', async () => {
      const initial = await plan('cust-inst-declined', 2);
      const token = initial.payment_method.token as string;
      assert.equal(json(await instalment(token, initial.id, DECLINED_AMOUNT)).status, 'declined');
      assert.equal(json(await instalment(token, initial.id)).status, 'captured');
      expectProblem(await instalment(token, initial.id), 422, 'instalments_exhausted');
    });

    it('gives back the place of a stepped-up instalment the merchant withdraws', async () => {
      const initial = await payByCard(t, { customer: 'cust-inst-step-up', number: '4000002760003184', payment_data: { payment_type: 'cit', payment_sub_type: 'instalment-initial', instalments: 2 } });
      assert.equal(initial.status, 'captured');
      const token = initial.payment_method.token as string;
      const stepped = json(await instalment(token, initial.id));
      assert.equal(stepped.status, 'requires_action');
      // Its page is open: the place is taken meanwhile.
      expectProblem(await instalment(token, initial.id), 422, 'instalments_exhausted');
      const voided = await t.request({ method: 'POST', url: `/payment/${stepped.id}/void`, payload: {} });
      assert.equal(json(voided).status, 'cancelled', voided.body);
      assert.equal(json(await instalment(token, initial.id)).status, 'requires_action');
    });

    it('keeps the plan\'s count when an instalment on an expired stored card is declined unsent', async () => {
      const now = new Date(t.clock.now());
      const month = now.getUTCMonth() + 1;
      const year = now.getUTCFullYear();
      const card = { customer: 'cust-inst-expiry', number: '5555555555554444', expiry_month: month };
      const initial = await payByCard(t, { ...card, expiry_year: year, payment_data: { payment_type: 'cit', payment_sub_type: 'instalment-initial', instalments: 3 } });
      const token = initial.payment_method.token as string;
      const second = json(await instalment(token, initial.id));
      assert.equal(second.status, 'captured');
      t.clock.advance(40 * 24 * 60 * 60 * 1000);
      for (let i = 0; i < 2; i++) assert.equal(json(await instalment(token, second.id)).decline_code, 'expired_card');
      // The customer renews the card: the plan has one payment left, not three.
      await payByCard(t, { ...card, expiry_year: year + 3 });
      assert.equal(json(await instalment(token, second.id)).status, 'captured');
      expectProblem(await instalment(token, second.id), 422, 'instalments_exhausted');
    });

    it('lets only one of two concurrent MITs take the last instalment', async () => {
      const initial = await plan('cust-inst-race', 2);
      const token = initial.payment_method.token as string;
      const answers = await Promise.all([instalment(token, initial.id), instalment(token, initial.id)]);
      const statuses = answers.map((r) => r.statusCode).sort();
      assert.deepEqual(statuses, [201, 422], answers.map((r) => r.body).join('\n'));
      expectProblem(answers.find((r) => r.statusCode === 422)!, 422, 'instalments_exhausted');
    });
  });
}

/** A storing CIT with this payment_data, answered as sent (no page finished). */
async function payByCardRaw(t: TestGateway, paymentData: Record<string, unknown>) {
  const body = await exampleBody({ channel: 'sandbox', customer: { reference: 'cust-inst-raw' } });
  body.payment_method = { type: 'card', number: '4242424242424242', expiry_month: 12, expiry_year: 2077, cvc: '123', store_for_future_use: true };
  body.payment_data = paymentData;
  return t.request({ method: 'POST', url: '/payment/authorise', payload: body });
}

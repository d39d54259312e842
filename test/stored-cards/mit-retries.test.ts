import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { expectProblem, json, mit, payByCard } from './support.js';
import type { AuthoriseRequest, AuthoriseResult } from '../../src/ports/acquirer.js';

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;
/** The issuer's answer to an MIT of this amount: a decline for want of funds, to be retried later. */
const DECLINED_AMOUNT = 1717;

for (const dialect of DIALECTS) {
  describe(`retries of declined merchant-initiated payments (${dialect})`, () => {
    let t: TestGateway;
    let calls: AuthoriseRequest[];
    before(async () => {
      t = await startTestGateway({ dialect });
      const acquirer = t.gateway.services.ctx.acquirer;
      const authorise = acquirer.authorise.bind(acquirer);
      acquirer.authorise = async (req): Promise<AuthoriseResult> => {
        calls.push(req);
        return req.amount === DECLINED_AMOUNT ? { outcome: 'declined', declineCode: 'insufficient_funds', message: 'The card has insufficient funds.', retryable: true } : authorise(req);
      };
    });
    beforeEach(() => {
      calls = [];
    });
    after(async () => {
      await t?.close();
    });

    it('sends no MIT on a card after a "do not retry" decline, until an approval of a new agreement', async () => {
      const initial = await payByCard(t, { customer: 'cust-dnr', number: '4000000000000341' });
      const token = initial.payment_method.token as string;
      const declined = json(await mit(t, { token, previous_payment_id: initial.id }));
      assert.equal(declined.status, 'declined');
      assert.equal(declined.retry_advice, 'do_not_retry');
      calls = [];
      const problem = expectProblem(await mit(t, { token, previous_payment_id: initial.id }), 422, 'mit_retry_not_allowed');
      assert.equal(problem.param, '/payment_method');
      assert.match(problem.detail, new RegExp(declined.id));
      // Not even an industry-practice MIT, nor one a day later.
      t.clock.advance(DAY);
      expectProblem(await mit(t, { token, previous_payment_id: initial.id, sub_type: 'one-off', industry_usage: 'no_show' }), 422, 'mit_retry_not_allowed');
      assert.equal(calls.length, 0, 'the acquirer was not asked');
      // The customer pays again with the card: the issuer approves it, and MITs under that agreement are sent.
      const again = await payByCard(t, { customer: 'cust-dnr', number: '4000000000000341' });
      assert.equal(again.payment_method.token, token);
      assert.equal(json(await mit(t, { token, previous_payment_id: again.id })).status, 'declined');
      assert.equal(calls.length, 2);
    });

    it('refuses an MIT after 10 declines of the card in 24 hours, and after 15 in 30 days', async () => {
      const initial = await payByCard(t, { customer: 'cust-caps', number: '5555555555554444' });
      const token = initial.payment_method.token as string;
      const attempt = () => mit(t, { token, previous_payment_id: initial.id, amount: DECLINED_AMOUNT });
      for (let i = 0; i < 10; i += 1) {
        assert.equal(json(await attempt()).status, 'declined');
        t.clock.advance(HOUR);
      }
      calls = [];
      const day = expectProblem(await attempt(), 422, 'mit_retry_limit_reached');
      assert.equal(day.param, '/payment_method');
      assert.match(day.detail, /10 merchant-initiated payments on this card in the last 24 hours/);
      // An approval is no decline: the card stays refused while the declines are recent.
      expectProblem(await mit(t, { token, previous_payment_id: initial.id }), 422, 'mit_retry_limit_reached');
      assert.equal(calls.length, 0);

      // The first decline leaves the day: one more may go.
      t.clock.advance(14 * HOUR);
      assert.equal(json(await attempt()).status, 'declined');
      expectProblem(await attempt(), 422, 'mit_retry_limit_reached');
      t.clock.advance(DAY);
      for (let i = 0; i < 4; i += 1) assert.equal(json(await attempt()).status, 'declined');
      const month = expectProblem(await attempt(), 422, 'mit_retry_limit_reached');
      assert.match(month.detail, /15 merchant-initiated payments on this card in the last 30 days/);
      // Another card of the same customer is not this one's declines.
      const other = await payByCard(t, { customer: 'cust-caps', number: '4242424242424242' });
      assert.equal(json(await mit(t, { token: other.payment_method.token, previous_payment_id: other.id })).status, 'captured');
      t.clock.advance(30 * DAY);
      assert.equal(json(await mit(t, { token, previous_payment_id: initial.id })).status, 'captured');
    });
  });
}

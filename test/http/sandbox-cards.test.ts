import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { SANDBOX_CHALLENGE_CODE, TEST_CARDS } from '../../src/adapters/acquirers/sandbox/test-cards.js';

/** The decline codes docs/authorise.md's outcomes table lists, before the ones the gateway gives of its own. */
function documentedIssuerDeclines(): string[] {
  const row = readFileSync(new URL('../../docs/authorise.md', import.meta.url), 'utf8').split('\n').find((l) => l.startsWith('| `declined` |'))!;
  const list = /`decline_code` \(([^;]*);/.exec(row)![1]!;
  return [...list.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!);
}

const README = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** A card's row in the README's test card table (written with spaces). */
function readmeRow(number: string): string {
  return README.split('\n').find((l) => l.startsWith('| ') && l.split('|')[1]!.replace(/[\s`]/g, '') === number) ?? '';
}

for (const dialect of DIALECTS) {
  describe(`sandbox test cards on the hosted page (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(async () => {
      await t.close();
    });

    it('reach every decline code docs/authorise.md lists, but for the wrong challenge codes, with the retry advice they publish', async () => {
      const reached = new Map<string, string>();
      for (const card of TEST_CARDS) {
        const payload = await exampleBody({ payment_method: { number: card.number, cvc: card.brand === 'amex' ? '0123' : '012' } });
        const res = await t.request({ method: 'POST', url: '/payment/authorise', payload });
        assert.equal(res.statusCode, 201, res.body);
        const token = new URL(res.json().redirect_url).pathname.split('/').pop()!;
        const view = card.flow === 'challenge' ? await t.gateway.services.checkout.answerChallenge(token, SANDBOX_CHALLENGE_CODE) : await t.gateway.services.checkout.complete(token);
        const payment = (await t.request({ method: 'GET', url: `/payment/${view.payment.id}` })).json();
        if (payment.status === 'declined') {
          reached.set(payment.decline_code, `${payment.retry_advice}`);
          // Published (GET /sandbox/test-cards, the README) so a merchant can test its retry logic.
          for (const said of [card.description, readmeRow(card.number)]) {
            assert.match(said, new RegExp(`${payment.decline_code}.*retry_advice.*${payment.retry_advice}`), `${card.number}: ${said}`);
          }
        }
      }
      // Three wrong codes on any challenge card give authentication_failed, as the hosted page tests show.
      const missing = documentedIssuerDeclines().filter((code) => code !== 'authentication_failed' && !reached.has(code));
      assert.deepEqual(missing, [], `no test card declines with ${missing.join(', ')}`);
      assert.equal(reached.get('authentication_required'), 'retry_with_new_details');
    });
  });
}

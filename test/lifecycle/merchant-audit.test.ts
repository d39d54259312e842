import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { auditTrail } from '../../src/app/audit.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { authorisedPayment, post } from './helpers.js';
import { payByCard } from '../stored-cards/support.js';

/** The rows the audit log holds about `target`, oldest first. */
async function auditOf(t: TestGateway, target: string) {
  const rows = await auditTrail(t.gateway.services.ctx, t.credentials.merchant_id, 500);
  return rows.filter((r) => r.target === target).reverse();
}

for (const dialect of DIALECTS) {
  describe(`the audit log names the key behind a merchant's money moves and card deletions (${dialect})`, () => {
    let t: TestGateway;
    let actor: string;
    before(async () => {
      t = await startTestGateway({ dialect });
      const [key] = await t.gateway.services.merchants.listSecretKeys(t.credentials.merchant_id);
      actor = `merchant:${t.credentials.merchant_id}/${key!.id}`;
    });
    after(() => t.close());

    it('capture, then refund: each request once, with the key, the amount and where it came from', async () => {
      const p = await authorisedPayment(t);
      assert.equal((await post(t, `/payment/${p.id}/capture`, { amount: 60 }, { 'idempotency-key': 'cap-1' })).statusCode, 200);
      // A replay is the same request: it is not audited twice.
      assert.equal((await post(t, `/payment/${p.id}/capture`, { amount: 60 }, { 'idempotency-key': 'cap-1' })).statusCode, 200);
      const refund = await post(t, `/payment/${p.id}/refund`, { amount: 10, reason: 'damaged' });
      assert.equal(refund.statusCode, 201, refund.body);
      const rows = await auditOf(t, p.id);
      assert.deepEqual(
        rows.map((r) => [r.action, r.actor, r.outcome, r.detail]),
        [
          ['payment.capture', actor, 'success', { amount: 60 }],
          ['payment.refund', actor, 'success', { amount: 10, refund_id: (refund.json() as { id: string }).id }],
        ],
      );
      assert.match(rows[0]!.source, /^ip:/);
    });

    it('void, and a request the payment refuses is not recorded as done', async () => {
      const p = await authorisedPayment(t);
      assert.equal((await post(t, `/payment/${p.id}/void`)).statusCode, 200);
      assert.equal((await post(t, `/payment/${p.id}/capture`)).statusCode, 409);
      assert.deepEqual(
        (await auditOf(t, p.id)).map((r) => [r.action, r.actor, r.detail]),
        [['payment.void', actor, { amount: p.amount }]],
      );
    });

    it('deleting a stored card, once however often it is asked, without the customer the card was stored for', async () => {
      // Merchants often use the customer's e-mail address as its reference: the audit row, kept
      // long after the card, names the card (its pm_ id and last 4), not the person.
      const paid = await payByCard(t, { customer: 'jane.doe@example.com' });
      const pm = paid.payment_method.token as string;
      assert.equal((await t.request({ method: 'DELETE', url: `/payment-methods/${pm}` })).statusCode, 200);
      assert.equal((await t.request({ method: 'DELETE', url: `/payment-methods/${pm}` })).statusCode, 200);
      const rows = await auditOf(t, pm);
      assert.deepEqual(
        rows.map((r) => [r.action, r.actor, r.outcome, r.detail]),
        [['payment_method.delete', actor, 'success', { card_last4: '4242' }]],
      );
      const everyRow = JSON.stringify(await auditTrail(t.gateway.services.ctx, t.credentials.merchant_id, 500));
      assert.ok(!everyRow.includes('jane.doe@example.com'), everyRow);
    });
  });
}

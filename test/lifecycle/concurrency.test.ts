import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { authorisedPayment, type CountingAcquirer, countAcquirerCalls, eventTypes, getPayment, post } from './helpers.js';

function count<T>(items: T[], pred: (x: T) => boolean): number {
  return items.filter(pred).length;
}

for (const dialect of DIALECTS) {
  describe(`concurrent requests on one payment (${dialect})`, () => {
    let t: TestGateway;
    let acquirer: CountingAcquirer;
    before(async () => {
      t = await startTestGateway({ dialect });
      acquirer = countAcquirerCalls([t.gateway]);
    });
    after(async () => {
      await t.close();
    });

    it('10 captures at once: exactly one succeeds, the balance moves once', async () => {
      const p = await authorisedPayment(t, { amount: 1000 });
      // Different amounts, so a second successful capture could not hide.
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => post(t, `/payment/${p.id}/capture`, { amount: 100 * (i + 1) })));
      const ok = results.filter((r) => r.statusCode === 200);
      assert.equal(ok.length, 1, results.map((r) => r.statusCode).join(','));
      for (const r of results.filter((x) => x.statusCode !== 200)) {
        assert.equal(r.statusCode, 409);
        assert.equal(r.json().code, 'payment_not_capturable');
      }
      const won = ok[0]!.json();
      const final = await getPayment(t, p.id);
      assert.equal(final.amount_captured, won.amount_captured);
      assert.equal(final.status, won.amount_captured === 1000 ? 'captured' : 'partially_captured');
      assert.equal(acquirer.count('capture', p.id), 1);
      const events = await eventTypes(t, p.id);
      assert.equal(count(events, (e) => e === 'payment.captured' || e === 'payment.partially_captured'), 1);
    });

    it('10 captures at once with one Idempotency-Key: one capture, the rest replay (the claim or the result) or wait', async () => {
      const p = await authorisedPayment(t);
      const headers = { 'idempotency-key': `same-${p.id}` };
      const results = await Promise.all(Array.from({ length: 10 }, () => post(t, `/payment/${p.id}/capture`, {}, headers)));
      const ok = results.filter((r) => r.statusCode === 200);
      assert.ok(ok.length >= 1);
      for (const r of ok) assert.equal(r.body, ok[0]!.body);
      for (const r of results.filter((x) => x.statusCode !== 200)) {
        // The key is taken with the claim, before the acquirer answers: a request arriving
        // between the two replays the claim's 202 (capturing) rather than meeting a 409.
        if (r.statusCode === 202) {
          assert.equal(r.headers['idempotent-replayed'], 'true', r.body);
          assert.equal(r.json().status, 'capturing');
          continue;
        }
        assert.equal(r.statusCode, 409);
        assert.equal(r.json().code, 'idempotency_key_in_use', r.body);
      }
      assert.equal(acquirer.count('capture', p.id), 1);
      assert.equal((await getPayment(t, p.id)).amount_captured, p.amount);
    });

    it('capture racing void ends in exactly one legal state', async () => {
      for (let round = 0; round < 6; round++) {
        const p = await authorisedPayment(t, { amount: 500 });
        const capture = () => post(t, `/payment/${p.id}/capture`);
        const voidIt = () => post(t, `/payment/${p.id}/void`);
        const [c, v] = round % 2 === 0 ? await Promise.all([capture(), voidIt()]) : (await Promise.all([voidIt(), capture()])).reverse();
        assert.deepEqual([c!.statusCode, v!.statusCode].sort(), [200, 409], `round ${round}: ${c!.body} / ${v!.body}`);
        const final = await getPayment(t, p.id);
        const events = await eventTypes(t, p.id);
        if (c!.statusCode === 200) {
          assert.equal(v!.json().code, 'payment_not_voidable');
          assert.equal(final.status, 'captured');
          assert.equal(final.amount_captured, 500);
          assert.ok(events.includes('payment.captured') && !events.includes('payment.voided'), events.join(','));
          assert.equal(acquirer.count('void', p.id), 0);
        } else {
          assert.equal(c!.json().code, 'payment_not_capturable');
          assert.equal(final.status, 'voided');
          assert.equal(final.amount_captured, 0);
          assert.ok(events.includes('payment.voided') && !events.includes('payment.captured'), events.join(','));
          assert.equal(acquirer.count('capture', p.id), 0);
        }
      }
    });

    it('refunds at once never exceed the captured amount', async () => {
      const p = await authorisedPayment(t, { amount: 1000, capture: 'auto' });
      const results = await Promise.all(Array.from({ length: 5 }, () => post(t, `/payment/${p.id}/refund`, { amount: 300 })));
      assert.equal(count(results, (r) => r.statusCode === 201), 3, results.map((r) => r.statusCode).join(','));
      for (const r of results.filter((x) => x.statusCode !== 201)) {
        assert.equal(r.statusCode, 409);
        assert.equal(r.json().code, 'amount_exceeds_refundable');
      }
      const final = await getPayment(t, p.id);
      assert.equal(final.amount_refunded, 900);
      assert.equal(final.status, 'partially_refunded');
      assert.equal(acquirer.count('refund', p.id), 3);
      assert.equal(count(await eventTypes(t, p.id), (e) => e === 'refund.succeeded'), 3);
    });
  });
}

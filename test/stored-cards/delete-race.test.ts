import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RowInsert } from '../../src/adapters/storage/compiled.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { json, mit, pageToken, payByCard } from './support.js';

/**
 * A merchant-initiated payment reads its stored card, writes the payment, asks the acquirer,
 * then records the verdict. A DELETE of the card answered before the acquirer is asked stops
 * the payment; one answered while the acquirer answers lets its verdict stand (the payment was
 * sent before the deletion), but never lets a step-up seal the erased number again.
 */
for (const dialect of DIALECTS) {
  describe(`a merchant-initiated payment racing the DELETE of its stored card (${dialect})`, () => {
    let t: TestGateway;
    const acquirerCalls: string[] = [];
    before(async () => {
      t = await startTestGateway({ dialect });
      const acquirer = t.gateway.services.ctx.acquirer;
      for (const call of ['authorise', 'capture'] as const) {
        const original = (acquirer[call] as (req: never) => Promise<unknown>).bind(acquirer);
        (acquirer as unknown as Record<string, unknown>)[call] = async (req: never) => {
          acquirerCalls.push(call);
          await hooks.duringAuthorise?.();
          hooks.duringAuthorise = undefined;
          return original(req);
        };
      }
      const db = t.gateway.services.ctx.database as { insert: (rows: RowInsert[]) => Promise<void> };
      const insert = db.insert.bind(db);
      db.insert = async (rows) => {
        if (rows.some((r) => r.table === 'payments' && (r as { row: { payment_type: string } }).row.payment_type === 'mit')) {
          await hooks.beforeInsert?.();
          hooks.beforeInsert = undefined;
        }
        return insert(rows);
      };
    });
    after(() => t?.close());

    const hooks: { beforeInsert?: () => Promise<void>; duringAuthorise?: () => Promise<void> } = {};

    const cases = [
      ['before the payment is written', 'beforeInsert', '4242424242424242', []],
      ['before the payment is written (a card the issuer steps up)', 'beforeInsert', '4000002760003184', []],
      ['while the issuer answers that it wants the cardholder', 'duringAuthorise', '4000002760003184', ['authorise']],
    ] as const;
    for (const [when, hook, number, calls] of cases) {
      it(`declines it, charges nothing and seals nothing when the DELETE is answered ${when}`, async () => {
        const initial = await payByCard(t, { customer: `cust-race-${hook}-${number.slice(-4)}`, number });
        const token = initial.payment_method.token as string;
        let deleted = false;
        hooks[hook] = async () => {
          const del = await t.request({ method: 'DELETE', url: `/payment-methods/${token}` });
          assert.equal(del.statusCode, 200, del.body);
          deleted = json(del).deleted === true;
        };
        acquirerCalls.length = 0;
        const res = await mit(t, { token, previous_payment_id: initial.id });
        assert.ok(deleted, 'the DELETE ran');
        assert.equal(res.statusCode, 201, res.body);
        const body = json(res);
        assert.deepEqual([body.status, body.decline_code, body.redirect_url ?? null], ['declined', 'payment_method_deleted', null]);
        assert.deepEqual(acquirerCalls, calls);
        const sealed = await t.gateway.services.ctx.database.db.selectFrom('card_secrets').select('payment_id').where('payment_id', '=', body.id).execute();
        assert.deepEqual(sealed, []);
        // Later payments on the token are refused outright, as before.
        assert.equal((await mit(t, { token, previous_payment_id: initial.id })).statusCode, 422);
      });
    }

    it('lets the acquirer\'s approval stand when the DELETE is answered while the acquirer answers', async () => {
      const initial = await payByCard(t, { customer: 'cust-race-approved' });
      const token = initial.payment_method.token as string;
      hooks.duringAuthorise = async () => {
        assert.equal((await t.request({ method: 'DELETE', url: `/payment-methods/${token}` })).statusCode, 200);
      };
      acquirerCalls.length = 0;
      const res = await mit(t, { token, previous_payment_id: initial.id });
      assert.equal(res.statusCode, 201, res.body);
      assert.equal(json(res).status, 'captured');
      assert.deepEqual(acquirerCalls, ['authorise', 'capture']);
      assert.equal((await mit(t, { token, previous_payment_id: initial.id })).statusCode, 422);
    });

    it('leaves a step-up page opened before the DELETE payable, as docs/stored-cards.md says: void withdraws it', async () => {
      const initial = await payByCard(t, { customer: 'cust-race-open-page', number: '4000002760003184' });
      const token = initial.payment_method.token as string;
      const open = async () => {
        const p = json(await mit(t, { token, previous_payment_id: initial.id }));
        assert.equal(p.status, 'requires_action');
        return p;
      };
      const paid = await open();
      const withdrawn = await open();
      assert.equal((await t.request({ method: 'DELETE', url: `/payment-methods/${token}` })).statusCode, 200);

      // The page holds its own sealed copy of the card until it ends: the customer can still pay there.
      const done = await t.gateway.services.checkout.answerChallenge(pageToken(paid.redirect_url), '1234');
      assert.equal(done.payment.status, 'captured');
      // The stored card stays deleted: the approval does not store it again.
      const card = json(await t.request({ method: 'GET', url: `/payment-methods/${token}` }));
      assert.equal(card.deleted, true);
      assert.equal((await mit(t, { token, previous_payment_id: initial.id })).statusCode, 422);

      // What the merchant does to stop such a page: void its payment.
      assert.equal(json(await t.request({ method: 'POST', url: `/payment/${withdrawn.id}/void` })).status, 'cancelled');
      const view = await t.gateway.services.checkout.answerChallenge(pageToken(withdrawn.redirect_url), '1234');
      assert.equal(view.payment.status, 'cancelled');
    });
  });
}

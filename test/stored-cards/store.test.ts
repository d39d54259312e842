import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { eventsOf, expectProblem, getPayment, json, mit, otherMerchant, pageToken, payByCard, type Json } from './support.js';

for (const dialect of DIALECTS) {
  describe(`stored cards (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(async () => {
      await t?.close();
    });

    const db = () => t.gateway.services.ctx.database.db;

    it('answers the spec example (a recurring-initial CIT) with 201 and stores its card once approved', async () => {
      const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody() });
      assert.equal(res.statusCode, 201, res.body);
      const created = json(res);
      assert.equal(created.status, 'requires_action');
      assert.equal(created.payment_method.token, null, 'nothing is stored before approval');
      assert.equal((await db().selectFrom('payment_methods').select('id').where('initial_payment_id', '=', created.id).execute()).length, 0);

      await t.gateway.services.checkout.complete(pageToken(created.redirect_url));
      const done = await getPayment(t, created.id);
      assert.equal(done.status, 'captured');
      assert.match(done.payment_method.token, /^pm_[0-9a-f]{32}$/);
      assert.match(done.network_reference, /^\d{15}$/);
    });

    it('puts the pm_ token on the payment and on the events after approval', async () => {
      const paid = await payByCard(t, { customer: 'cust-events', number: '5555555555554444' });
      const token = paid.payment_method.token as string;
      assert.match(token, /^pm_/);
      const events = await eventsOf(t, paid.id);
      assert.deepEqual(events.map((e) => e.type), ['payment.created', 'payment.authorised', 'payment.captured']);
      assert.equal(events[0]!.data.object.payment_method.token, null);
      assert.equal(events[1]!.data.object.payment_method.token, token);
      assert.equal(events[2]!.data.object.payment_method.token, token);

      const row = await db().selectFrom('payment_methods').selectAll().where('id', '=', token).executeTakeFirstOrThrow();
      assert.equal(row.customer_reference, 'cust-events');
      assert.equal(row.initial_payment_id, paid.id);
      assert.equal(row.initial_network_reference, paid.network_reference);
      assert.equal(row.last4, '4444');
      assert.ok(row.pan_ct && !row.pan_ct.includes('5555555555554444'));
      assert.ok(!JSON.stringify(row).includes('123'.padStart(4, ' ')), 'no CVC column or value');
      assert.equal(Object.keys(row).some((k) => k.includes('cvc')), false);
    });

    it('stores nothing when the payment is declined', async () => {
      const paid = await payByCard(t, { customer: 'cust-declined', number: '4000000000000002' });
      assert.equal(paid.status, 'declined');
      assert.equal(paid.payment_method.token, null);
      const rows = await db().selectFrom('payment_methods').select('id').where('customer_reference', '=', 'cust-declined').execute();
      assert.equal(rows.length, 0);
    });

    it('recognises the same card stored twice and keeps one token, taking the newer expiry', async () => {
      const first = await payByCard(t, { customer: 'cust-twice', expiry_month: 3, expiry_year: 2040 });
      const second = await payByCard(t, { customer: 'cust-twice', expiry_month: 9, expiry_year: 2041 });
      assert.equal(second.payment_method.token, first.payment_method.token);
      assert.equal(second.payment_method.card.fingerprint, first.payment_method.card.fingerprint);

      const other = await payByCard(t, { customer: 'cust-twice', number: '2223003122003222' });
      assert.notEqual(other.payment_method.token, first.payment_method.token);

      const list = json(await t.request({ method: 'GET', url: '/customers/cust-twice/payment-methods' }));
      assert.equal(list.object, 'list');
      assert.equal(list.data.length, 2);
      // The envelope of every list: a client pages them all with one loop.
      assert.equal(list.has_more, false);
      const visa = list.data.find((pm: { id: string }) => pm.id === first.payment_method.token);
      assert.deepEqual(
        { brand: visa.card.brand, last4: visa.card.last4, expiry_month: visa.card.expiry_month, expiry_year: visa.card.expiry_year, fingerprint: visa.card.fingerprint },
        { brand: 'visa', last4: '4242', expiry_month: 9, expiry_year: 2041, fingerprint: first.payment_method.card.fingerprint },
      );
      assert.ok(!Number.isNaN(Date.parse(visa.created_at)));
      assert.ok(!JSON.stringify(list).includes('4242424242424242'));

      // Presented again with an older (still valid) expiry: the stored card keeps the later one.
      const older = await payByCard(t, { customer: 'cust-twice', expiry_month: 1, expiry_year: 2040 });
      assert.equal(older.payment_method.token, first.payment_method.token);
      const after = json(await t.request({ method: 'GET', url: `/payment-methods/${first.payment_method.token}` }));
      assert.deepEqual([after.card.expiry_month, after.card.expiry_year], [9, 2041]);
    });

    it("reads no channel in the approval that stores a card again on a sandbox channel: the page knows the channel's mode", async () => {
      const customer = 'cust-again-in-sandbox';
      const first = await payByCard(t, { customer });
      const body = await exampleBody({ channel: 'sandbox', customer: { reference: customer } });
      body.payment_method = { type: 'card', number: '4242424242424242', expiry_month: 12, expiry_year: 2077, cvc: '123', store_for_future_use: true };
      body.payment_data = { payment_type: 'cit', payment_sub_type: 'recurring-initial', credential_on_file: true };
      const created = json(await t.request({ method: 'POST', url: '/payment/authorise', payload: body }));
      // Every query of every executor, a transaction's too, goes through the executors' base class.
      const base = Object.getPrototypeOf(Object.getPrototypeOf(db().getExecutor())) as { executeQuery(query: { sql: string }): Promise<unknown> };
      const executeQuery = base.executeQuery;
      const run: string[] = [];
      base.executeQuery = function (this: unknown, query: { sql: string }) {
        run.push(query.sql);
        return executeQuery.call(this, query);
      };
      try {
        await t.gateway.services.checkout.complete(pageToken(created.redirect_url));
      } finally {
        base.executeQuery = executeQuery;
      }
      assert.equal((await getPayment(t, created.id)).payment_method.token, first.payment_method.token);
      assert.deepEqual(run.filter((text) => /"channels"/.test(text) && /"mode"/.test(text)), []);
    });

    it('shows a 13-digit stored card with the shorter BIN, and corrects one stored with 6 digits when it is presented again', async () => {
      const number = '4929381234562';
      const first = await payByCard(t, { customer: 'cust-short', number });
      const token = first.payment_method.token as string;
      const shownBin = async () => json(await t.request({ method: 'GET', url: `/payment-methods/${token}` })).card.bin as string;
      assert.equal(await shownBin(), '4929');
      // Stored before BINs under 15 digits were shortened: its first 6 and last 4 leave 3 digits hidden.
      await t.gateway.services.ctx.database.db.updateTable('payment_methods').set({ bin: number.slice(0, 6) }).where('id', '=', token).execute();
      const again = await payByCard(t, { customer: 'cust-short', number });
      assert.equal(again.payment_method.token, token);
      assert.equal(again.payment_method.card.bin, '4929');
      assert.equal(await shownBin(), '4929');
    });

    it('lists the cards of a customer reference as long as the API allows (128 characters, any script)', async () => {
      for (const customer of ['c'.repeat(128), 'é'.repeat(128)]) {
        const paid = await payByCard(t, { customer });
        const res = await t.request({ method: 'GET', url: `/customers/${encodeURIComponent(customer)}/payment-methods` });
        assert.equal(res.statusCode, 200, res.body);
        assert.deepEqual(json(res).data.map((pm: { id: string }) => pm.id), [paid.payment_method.token]);
      }
      const tooLong = await t.request({ method: 'GET', url: `/customers/${'c'.repeat(129)}/payment-methods` });
      assert.equal(tooLong.statusCode, 400, tooLong.body);
      assert.equal(json(tooLong).param, '/params/reference');
    });

    it('takes a token on a customer-initiated payment through the hosted page, with a fresh CVC', async () => {
      const stored = await payByCard(t, { customer: 'cust-cit' });
      const token = stored.payment_method.token as string;
      const body = await exampleBody({ customer: { reference: 'cust-cit' }, payment_data: undefined });
      body.payment_method = { type: 'token', token, cvc: '321' };
      const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: body });
      assert.equal(res.statusCode, 201, res.body);
      const created = json(res);
      assert.equal(created.status, 'requires_action');
      assert.ok(created.redirect_url);
      assert.equal(created.payment_method.token, token);
      assert.equal(created.payment_data.credential_on_file, true);
      const secret = await db().selectFrom('card_secrets').selectAll().where('payment_id', '=', created.id).executeTakeFirstOrThrow();
      assert.ok(secret.cvc_ct, 'the fresh CVC is sealed like a card CVC');

      await t.gateway.services.checkout.complete(pageToken(created.redirect_url));
      const done = await getPayment(t, created.id);
      assert.equal(done.status, 'captured');
      assert.equal(done.payment_method.token, token);
      assert.deepEqual(await db().selectFrom('card_secrets').select('cvc_ct').where('payment_id', '=', created.id).execute(), [], 'number and CVC end with the page');

      body.payment_method = { type: 'token', token, cvc: '12' };
      expectProblem(await t.request({ method: 'POST', url: '/payment/authorise', payload: body }), 400, 'invalid_cvc');
      body.customer = { reference: 'someone-else' };
      body.payment_method = { type: 'token', token };
      expectProblem(await t.request({ method: 'POST', url: '/payment/authorise', payload: body }), 422, 'payment_method_customer_mismatch');
    });

    it('asks for a customer reference before it stores a card', async () => {
      const body = await exampleBody({ customer: undefined });
      const problem = expectProblem(await t.request({ method: 'POST', url: '/payment/authorise', payload: body }), 400, 'store_requires_customer_reference');
      assert.equal(problem.param, '/customer/reference');
    });

    it('shows each merchant a fingerprint of its own for the same card: one across its payments, stored cards and events', async () => {
      const other = await otherMerchant(t, 'fingerprint-shop');
      const mine = await payByCard(t, { customer: 'cust-fp', number: '5555555555554444' });
      const theirs = await payByCard(t, { customer: 'cust-fp', number: '5555555555554444', key: other.key, channel: other.channel });
      const shown = (p: Json) => (p.payment_method as { card: { fingerprint: string } }).card.fingerprint;
      assert.match(shown(mine), /^[A-Za-z0-9_-]{22}$/);
      // Unrelated between merchants: neither can link the cardholder or test a number against the other's.
      assert.notEqual(shown(mine), shown(theirs));
      const stored = await db().selectFrom('payments').select('card_fingerprint').where('id', 'in', [mine.id as string, theirs.id as string]).execute();
      assert.equal(new Set(stored.map((r) => r.card_fingerprint)).size, 1, 'the stored fingerprint is one per card');
      assert.ok(![shown(mine), shown(theirs)].includes(stored[0]!.card_fingerprint), 'the stored fingerprint is never shown');
      // One value per merchant wherever it shows the card.
      const again = await payByCard(t, { customer: 'cust-fp-2', number: '5555555555554444' });
      const card = json(await t.request({ method: 'GET', url: `/payment-methods/${mine.payment_method.token}` })).card as { fingerprint: string };
      const events = await eventsOf(t, mine.id as string);
      assert.deepEqual(new Set([shown(again), card.fingerprint, ...events.map((e) => shown((e.data as { object: Json }).object))]), new Set([shown(mine)]));
    });

    it("never shows or lets another merchant use a merchant's stored card", async () => {
      const paid = await payByCard(t, { customer: 'cust-shared' });
      const token = paid.payment_method.token as string;
      const other = await otherMerchant(t);
      const asOther = { 'x-secret-key': other.key };

      const list = json(await t.request({ method: 'GET', url: '/customers/cust-shared/payment-methods', headers: asOther }));
      assert.deepEqual(list.data, []);
      expectProblem(await t.request({ method: 'GET', url: `/payment-methods/${token}`, headers: asOther }), 404, 'payment_method_not_found');
      expectProblem(await t.request({ method: 'DELETE', url: `/payment-methods/${token}`, headers: asOther }), 404, 'payment_method_not_found');

      const useMit = await mit(t, { token, previous_payment_id: paid.id, key: other.key, channel: other.channel });
      expectProblem(useMit, 404, 'payment_method_not_found');
      const cit = await exampleBody({ channel: other.channel, customer: { reference: 'cust-shared' }, payment_data: undefined });
      cit.payment_method = { type: 'token', token };
      expectProblem(await t.request({ method: 'POST', url: '/payment/authorise', payload: cit, headers: asOther }), 404, 'payment_method_not_found');

      // The owner still has it, untouched.
      const own = json(await t.request({ method: 'GET', url: `/payment-methods/${token}` }));
      assert.equal(own.deleted, false);
      const ownMit = await mit(t, { token, previous_payment_id: paid.id });
      assert.equal(ownMit.statusCode, 201, ownMit.body);
    });

    it('erases the card number on DELETE, after which the token fails cleanly', async () => {
      const paid = await payByCard(t, { customer: 'cust-delete' });
      const token = paid.payment_method.token as string;

      const sealed = (await db().selectFrom('payment_methods').select('pan_ct').where('id', '=', token).executeTakeFirstOrThrow()).pan_ct!;
      const del = await t.request({ method: 'DELETE', url: `/payment-methods/${token}` });
      assert.equal(del.statusCode, 200, del.body);
      assert.equal(json(del).deleted, true);
      const row = await db().selectFrom('payment_methods').selectAll().where('id', '=', token).executeTakeFirstOrThrow();
      assert.equal(row.pan_ct, null);
      assert.equal(row.wrapped_dek, null);
      assert.equal(row.kek_id, null);

      if (dialect === 'sqlite') {
        // As SQLite writes a sealed value: its IV and GCM tag side by side (stored-values.ts).
        const [iv, , tag] = sealed.split('.');
        const footprint = Buffer.concat([Buffer.from(iv!, 'base64'), Buffer.from(tag!, 'base64')]);
        const holding = () => readdirSync(t.dataDir).filter((f) => f.startsWith('gateway.sqlite') && readFileSync(join(t.dataDir, f)).includes(footprint));
        assert.ok(holding().length > 0, 'the sealed number should be in the files before the shredder runs');
        const started = Date.now();
        while (holding().length > 0 && Date.now() - started < 5000) await new Promise((resolve) => setTimeout(resolve, 100));
        assert.deepEqual(holding(), [], 'an erased card number stays readable in the database files');
      }

      const list = json(await t.request({ method: 'GET', url: '/customers/cust-delete/payment-methods' }));
      assert.deepEqual(list.data, []);
      assert.equal((await t.request({ method: 'DELETE', url: `/payment-methods/${token}` })).statusCode, 200);

      const later = await mit(t, { token, previous_payment_id: paid.id });
      const problem = expectProblem(later, 422, 'payment_method_deleted');
      assert.equal(problem.param, '/payment_method/token');
      const payments = await db().selectFrom('payments').select('id').where('payment_method_id', '=', token).execute();
      assert.deepEqual(payments.map((p) => p.id), [paid.id], 'no payment was created for the refused MIT');

      // Storing the card again after deletion gives a new token.
      const again = await payByCard(t, { customer: 'cust-delete' });
      assert.notEqual(again.payment_method.token, token);
    });
  });
}

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import type { AuthoriseRequest } from '../../src/ports/acquirer.js';
import { eventsOf, expectProblem, getPayment, json, mit, otherMerchant, pageToken, payByCard } from './support.js';
import { runCaptureScheduler } from '../../src/workers/capture-scheduler.js';
import { sweepExpired } from '../../src/workers/expiry-sweeper.js';
import { merchantReturnAfter } from '../support/http.js';

const DAY = 24 * 60 * 60 * 1000;

for (const dialect of DIALECTS) {
  describe(`merchant-initiated payments (${dialect})`, () => {
    let t: TestGateway;
    /** Every request the acquirer received, to see what an MIT passed on (and that some never reach it). */
    let calls: AuthoriseRequest[];
    before(async () => {
      t = await startTestGateway({ dialect });
      const acquirer = t.gateway.services.ctx.acquirer;
      const authorise = acquirer.authorise.bind(acquirer);
      acquirer.authorise = async (req) => {
        calls.push(req);
        return authorise(req);
      };
    });
    // Each test starts with no calls of its own, so it passes alone (--test-name-pattern) too.
    beforeEach(() => {
      calls = [];
    });
    after(async () => {
      await t?.close();
    });
    const callsFor = (paymentId: string) => calls.filter((c) => c.paymentId === paymentId);

    it('authorises an MIT with a token and previous_payment_id synchronously, carrying the initial network reference', async () => {
      const initial = await payByCard(t, { customer: 'cust-mit' });
      const token = initial.payment_method.token as string;
      assert.match(initial.network_reference, /^\d{15}$/);

      const res = await mit(t, { token, previous_payment_id: initial.id });
      assert.equal(res.statusCode, 201, res.body);
      const p = json(res);
      assert.equal(p.status, 'captured');
      assert.equal(p.redirect_url, null);
      assert.equal(p.payment_data.payment_type, 'mit');
      assert.equal(p.payment_method.token, token);
      assert.equal(p.initial_network_reference, initial.network_reference);
      assert.ok(p.network_reference && p.network_reference !== initial.network_reference);
      // The stored card's customer, by whom the payment is also listed.
      assert.deepEqual(p.customer, { reference: 'cust-mit' });

      const [call] = callsFor(p.id);
      assert.equal(call?.initiator, 'mit');
      assert.equal(call?.storedCredential, true);
      assert.equal(call?.previousNetworkReference, initial.network_reference);
      assert.equal(call?.card.cvc, undefined);

      const again = await getPayment(t, p.id);
      assert.equal(again.initial_network_reference, initial.network_reference);
      assert.deepEqual(again.customer, { reference: 'cust-mit' });
      assert.deepEqual((await eventsOf(t, p.id)).map((e) => e.type), ['payment.created', 'payment.authorised', 'payment.captured']);

      // A later MIT may follow the previous one: the agreement's initial reference is carried on.
      const next = json(await mit(t, { token, previous_payment_id: p.id }));
      assert.equal(next.status, 'captured');
      assert.equal(next.initial_network_reference, initial.network_reference);
    });

    it('tells the acquirer where each payment sits in its agreement, as schemes flag it', async () => {
      const initial = await payByCard(t, { customer: 'cust-flags', payment_data: { payment_type: 'cit', payment_sub_type: 'instalment-initial', instalments: 12 } });
      const token = initial.payment_method.token as string;
      const part = json(await mit(t, { token, previous_payment_id: initial.id, sub_type: 'instalment-subsequent' }));
      const noShow = json(await mit(t, { token, previous_payment_id: initial.id, sub_type: 'one-off', industry_usage: 'no_show' }));
      const sent = (id: string) => {
        const call = callsFor(id)[0];
        return [call?.initiator, call?.paymentSubType, call?.industryUsage];
      };
      // The CIT that stores the card is the agreement's initial one, told apart from a later use of it.
      assert.deepEqual(sent(initial.id), ['cit', 'instalment-initial', 'none']);
      assert.deepEqual(sent(part.id), ['mit', 'instalment-subsequent', 'none']);
      assert.deepEqual(sent(noShow.id), ['mit', 'one-off', 'no_show']);
    });

    it('honours Idempotency-Key on MITs: a retry replays the final answer and charges once', async () => {
      const initial = await payByCard(t, { customer: 'cust-idem' });
      const opts = { token: initial.payment_method.token, previous_payment_id: initial.id, idempotencyKey: 'mit-idem-1' };
      const first = await mit(t, opts);
      const second = await mit(t, opts);
      assert.equal(first.statusCode, 201);
      assert.equal(second.statusCode, 201);
      assert.equal(second.headers['idempotent-replayed'], 'true');
      assert.equal(second.body, first.body);
      assert.equal(json(second).status, 'captured');
      const count = await t.gateway.services.ctx.database.db.selectFrom('payments').select('id').where('payment_method_id', '=', initial.payment_method.token).where('payment_type', '=', 'mit').execute();
      assert.equal(count.length, 1);
    });

    it('accepts a bare previous_network_reference (e.g. from another acquirer) and passes it on', async () => {
      const initial = await payByCard(t, { customer: 'cust-nref' });
      const res = await mit(t, { token: initial.payment_method.token, previous_network_reference: '123456789012345', sub_type: 'unscheduled-subsequent' });
      assert.equal(res.statusCode, 201, res.body);
      const p = json(res);
      assert.equal(p.status, 'captured');
      assert.equal(p.initial_network_reference, '123456789012345');
      assert.equal(callsFor(p.id)[0]?.previousNetworkReference, '123456789012345');
      // Scheme references are digits that can look like a card number (this one passes Luhn with a Diners prefix): never refused as one.
      const cardShaped = await mit(t, { token: initial.payment_method.token, previous_network_reference: '381234567890128', sub_type: 'unscheduled-subsequent' });
      assert.equal(cardShaped.statusCode, 201, cardShaped.body);
    });

    it('refuses an MIT without a valid initial agreement, naming the rule', async () => {
      const stored = await payByCard(t, { customer: 'cust-rules' });
      const token = stored.payment_method.token as string;
      const refused = async (o: Parameters<typeof mit>[1], status: number, code: string) => {
        const before = (await t.gateway.services.ctx.database.db.selectFrom('payments').select('id').execute()).length;
        const problem = expectProblem(await mit(t, { token, ...o }), status, code);
        const afterCount = (await t.gateway.services.ctx.database.db.selectFrom('payments').select('id').execute()).length;
        assert.equal(afterCount, before, `${code}: nothing is written`);
        return problem;
      };

      assert.equal((await refused({}, 400, 'mit_requires_initial_reference')).param, '/payment_data/previous_payment_id');
      assert.equal((await refused({ previous_payment_id: 'pay_00000000000000000000000000000000' }, 422, 'initial_payment_not_found')).param, '/payment_data/previous_payment_id');

      // Never finished by the customer, so never approved.
      const body = await exampleBody({ customer: { reference: 'cust-rules' } });
      const pending = json(await t.request({ method: 'POST', url: '/payment/authorise', payload: body }));
      await refused({ previous_payment_id: pending.id }, 422, 'initial_payment_not_authorised');

      // Approved, but the card was not kept as a credential on file.
      const oneOff = await payByCard(t, { customer: 'cust-rules', store: false, payment_data: { payment_type: 'cit' } });
      assert.equal(oneOff.payment_data.credential_on_file, false);
      await refused({ previous_payment_id: oneOff.id, sub_type: 'unscheduled-subsequent' }, 422, 'initial_payment_not_credential_on_file');

      const mismatch = await refused({ previous_payment_id: stored.id, sub_type: 'instalment-subsequent' }, 422, 'agreement_type_mismatch');
      assert.match(mismatch.detail, /belongs to a recurring agreement: send payment_sub_type "recurring-subsequent"$/);
      // The detail is read by people: "an" before a vowel.
      const unscheduled = await payByCard(t, { customer: 'cust-rules', payment_data: { payment_type: 'cit' } });
      assert.equal(unscheduled.payment_data.payment_sub_type, 'unscheduled-initial');
      const { detail } = expectProblem(
        await mit(t, { token: unscheduled.payment_method.token, previous_payment_id: unscheduled.id, sub_type: 'recurring-subsequent' }),
        422,
        'agreement_type_mismatch',
      );
      assert.match(detail, /belongs to an unscheduled agreement: send payment_sub_type "unscheduled-subsequent"$/);
      await refused({ previous_payment_id: stored.id, previous_network_reference: '999999999999999' }, 422, 'previous_network_reference_mismatch');

      const mastercard = await payByCard(t, { customer: 'cust-rules', number: '5555555555554444' });
      await refused({ previous_payment_id: mastercard.id }, 422, 'initial_payment_card_mismatch');

      // The same card, but another customer's agreement: a stored credential is one cardholder's consent.
      const theirSignUp = await payByCard(t, { customer: 'cust-rules-other' });
      const elsewhere = await refused({ previous_payment_id: theirSignUp.id }, 422, 'initial_payment_customer_mismatch');
      assert.equal(elsewhere.param, '/payment_data/previous_payment_id');
      assert.match(elsewhere.detail, /cust-rules-other/);
      const card = { type: 'card', number: '4242424242424242', expiry_month: 12, expiry_year: 2077 };
      await refused({ method: card, customer: 'cust-rules', previous_payment_id: theirSignUp.id }, 422, 'initial_payment_customer_mismatch');

      // Another merchant's agreement is reported exactly like a missing one.
      const other = await otherMerchant(t);
      const theirs = await payByCard(t, { customer: 'cust-rules', key: other.key, channel: other.channel });
      await refused({ previous_payment_id: theirs.id }, 422, 'initial_payment_not_found');

      await refused({ previous_payment_id: stored.id, sub_type: 'recurring-initial' }, 400, 'initial_requires_cit');
      const withCvc = await mit(t, { method: { type: 'token', token, cvc: '123' }, previous_payment_id: stored.id });
      expectProblem(withCvc, 400, 'mit_cvc_not_allowed');
    });

    it('says no industry-practice MIT can follow a payment taken in a currency since withdrawn, rather than asking for that currency', async () => {
      const visa = await payByCard(t, { customer: 'cust-withdrawn' });
      // As an earlier version took it, before BGN was withdrawn.
      await t.gateway.services.ctx.database.db.updateTable('payments').set({ currency: 'BGN' }).where('id', '=', visa.id).execute();
      const noShow = (currency: string) => mit(t, { token: visa.payment_method.token, previous_payment_id: visa.id, industry_usage: 'no_show', sub_type: 'one-off', currency });
      expectProblem(await noShow('BGN'), 400, 'invalid_currency');
      const elsewhere = expectProblem(await noShow('EUR'), 422, 'industry_usage_currency_mismatch');
      assert.equal(elsewhere.param, '/currency');
      assert.doesNotMatch(elsewhere.detail, /send currency BGN/);
      assert.match(elsewhere.detail, /BGN is no longer accepted/);
    });

    it('keeps an industry-practice MIT to the currency of the payment it follows, and a resubmission to the amount declined', async () => {
      // Declined for insufficient funds: worth asking again, with the card the merchant keeps.
      const declined = await payByCard(t, { customer: 'cust-resubmit', number: '4000000000009995', store: false });
      assert.equal(declined.retry_advice, 'retry_later');
      const card = { type: 'card', number: '4000000000009995', expiry_month: 12, expiry_year: 2077 };
      const resubmit = (o: { amount: number; currency?: string }) => mit(t, { method: card, previous_payment_id: declined.id, industry_usage: 'resubmission', sub_type: 'one-off', ...o });

      const more = expectProblem(await resubmit({ amount: 101 }), 422, 'resubmission_amount_exceeds_declined');
      assert.equal(more.param, '/amount');
      assert.match(more.detail, /USD 1\.00/);
      const elsewhere = expectProblem(await resubmit({ amount: 100, currency: 'EUR' }), 422, 'industry_usage_currency_mismatch');
      assert.equal(elsewhere.param, '/currency');
      const visa = await payByCard(t, { customer: 'cust-no-show' });
      expectProblem(await mit(t, { token: visa.payment_method.token, previous_payment_id: visa.id, industry_usage: 'no_show', sub_type: 'one-off', currency: 'EUR' }), 422, 'industry_usage_currency_mismatch');
      assert.equal(calls.filter((c) => c.initiator === 'mit').length, 0, 'nothing refused reached the acquirer');

      for (const amount of [100, 50]) assert.equal(json(await resubmit({ amount })).decline_code, 'insufficient_funds');
      // A reauthorisation or a delayed charge may be for another amount than the payment it follows.
      const reauthorised = json(await mit(t, { token: visa.payment_method.token, previous_payment_id: visa.id, industry_usage: 'reauthorisation', sub_type: 'one-off', amount: 150 }));
      assert.equal(reauthorised.status, 'captured');
      assert.equal(reauthorised.initial_network_reference, visa.network_reference);
    });

    it("passes on the named payment's own network reference for an industry-practice MIT following an MIT of the agreement", async () => {
      const initial = await payByCard(t, { customer: 'cust-reauth-mit' });
      const token = initial.payment_method.token as string;
      // A subscription's charge, authorised only: its hold lapses before the goods ship.
      const charge = json(await mit(t, { token, previous_payment_id: initial.id, amount: 1200 }));
      assert.equal(charge.initial_network_reference, initial.network_reference);
      const reauthorised = json(await mit(t, { token, previous_payment_id: charge.id, industry_usage: 'reauthorisation', sub_type: 'one-off', amount: 1200 }));
      assert.equal(reauthorised.status, 'captured');
      assert.equal(callsFor(reauthorised.id)[0]?.previousNetworkReference, charge.network_reference, 'the reauthorised transaction, not the agreement it belongs to');
      assert.equal(reauthorised.initial_network_reference, charge.network_reference);
      // Either reference is still accepted alongside the payment's id.
      for (const given of [charge.network_reference, initial.network_reference]) {
        const res = await mit(t, { token, previous_payment_id: charge.id, previous_network_reference: given, industry_usage: 'delayed_charge', sub_type: 'one-off', amount: 300 });
        assert.equal(json(res).initial_network_reference, charge.network_reference, res.body);
      }
    });

    it('keeps the agreement\'s initial reference for an agreement MIT that follows an industry-practice one', async () => {
      const initial = await payByCard(t, { customer: 'cust-reauth-chain' });
      const token = initial.payment_method.token as string;
      const charge = json(await mit(t, { token, previous_payment_id: initial.id, amount: 1200 }));
      // The subscription charge's hold lapsed: reauthorised, still a charge of the agreement.
      const reauthorised = json(await mit(t, { token, previous_payment_id: charge.id, industry_usage: 'reauthorisation', amount: 1200 }));
      assert.equal(reauthorised.initial_network_reference, charge.network_reference);
      const nextMonth = json(await mit(t, { token, previous_payment_id: reauthorised.id, amount: 1200 }));
      assert.equal(nextMonth.status, 'captured');
      assert.equal(callsFor(nextMonth.id)[0]?.previousNetworkReference, initial.network_reference, "the agreement's initial reference, not the reauthorised charge's");
      assert.equal(nextMonth.initial_network_reference, initial.network_reference);
      const named = await mit(t, { token, previous_payment_id: reauthorised.id, previous_network_reference: initial.network_reference, amount: 1200 });
      assert.equal(named.statusCode, 201, named.body);
    });

    it('refuses to resubmit a payment whose decline it advised never to retry', async () => {
      const initial = await payByCard(t, { customer: 'cust-no-retry', number: '4000000000000341' });
      const token = initial.payment_method.token as string;
      const declined = json(await mit(t, { token, previous_payment_id: initial.id }));
      assert.deepEqual([declined.decline_code, declined.retry_advice], ['do_not_honor', 'do_not_retry']);
      const refused = expectProblem(await mit(t, { token, previous_payment_id: declined.id, industry_usage: 'resubmission', sub_type: 'one-off', amount: declined.amount }), 422, 'resubmission_not_retryable');
      assert.equal(refused.param, '/payment_data/previous_payment_id');
      assert.match(refused.detail, /do_not_honor/);
      assert.equal(calls.filter((c) => c.initiator === 'mit').length, 1, 'only the declined MIT reached the acquirer');
    });

    it('refuses to resubmit without the customer a decline that asked for new details: an authentication, a CVC', async () => {
      // 4000 0000 0000 3063: the issuer wanted the challenge the frictionless page skipped; 0127: the CVC was wrong.
      for (const [number, code] of [['4000000000003063', 'authentication_required'], ['4000000000000127', 'incorrect_cvc']] as const) {
        const declined = await payByCard(t, { customer: 'cust-new-details', number, store: false, payment_data: { payment_type: 'cit' } });
        assert.deepEqual([declined.decline_code, declined.retry_advice], [code, 'retry_with_new_details']);
        const card = { type: 'card', number, expiry_month: 12, expiry_year: 2077 };
        const refused = expectProblem(await mit(t, { method: card, previous_payment_id: declined.id, industry_usage: 'resubmission', sub_type: 'one-off', amount: declined.amount }), 422, 'resubmission_needs_new_details');
        assert.equal(refused.param, '/payment_data/previous_payment_id');
        assert.match(refused.detail, new RegExp(code));
      }
      assert.equal(calls.filter((c) => c.initiator === 'mit').length, 0, 'no resubmission reached the acquirer');
    });

    it('declines MITs on the decline-later card 4000 0000 0000 0341, after approving its CIT', async () => {
      // An earlier test's MIT on this card was declined "do_not_retry": only an agreement approved since may be charged.
      t.clock.advance(1000);
      const initial = await payByCard(t, { customer: 'cust-0341', number: '4000000000000341' });
      assert.equal(initial.status, 'captured');
      const res = await mit(t, { token: initial.payment_method.token, previous_payment_id: initial.id });
      assert.equal(res.statusCode, 201, res.body);
      const p = json(res);
      assert.equal(p.status, 'declined');
      assert.equal(p.decline_code, 'do_not_honor');
      assert.equal(p.redirect_url, null);
      assert.equal(callsFor(p.id).length, 1);
      assert.deepEqual((await eventsOf(t, p.id)).map((e) => e.type), ['payment.created', 'payment.declined']);
    });

    it('answers an automatic capture the acquirer refuses (4000 0000 0000 0259) as the payment is stored: authorised, with its failure_message', async () => {
      const body = await exampleBody({ customer: { reference: 'cust-0259' } });
      body.payment_method = { type: 'card', number: '4000000000000259', expiry_month: 12, expiry_year: 2077, cvc: '123', store_for_future_use: true };
      body.payment_data = { payment_type: 'cit', payment_sub_type: 'recurring-initial', credential_on_file: true };
      const created = json(await t.request({ method: 'POST', url: '/payment/authorise', payload: body }));
      // The hosted page's confirm answers with the page as it recorded it, without reading it back.
      const view = await t.gateway.services.checkout.complete(pageToken(created.redirect_url));
      const initial = await getPayment(t, created.id);
      assert.equal(initial.status, 'authorised');
      assert.match(initial.failure_message, /^automatic capture failed: /);
      assert.equal(view.payment.status, 'authorised');
      assert.equal(view.payment.failure_message, initial.failure_message);
      assert.equal(view.session.state, 'done');
      // Told as a refused delayed or manual capture is: the merchant captures again or voids.
      const told = (await eventsOf(t, created.id)).map((e) => e.type);
      assert.deepEqual(told, ['payment.created', 'payment.authorised', 'payment.capture_failed']);
      assert.match((await eventsOf(t, created.id)).at(-1)!.data.object.failure_message, /^automatic capture failed: /);

      const res = await mit(t, { token: initial.payment_method.token, previous_payment_id: initial.id });
      assert.equal(res.statusCode, 201, res.body);
      const p = json(res);
      assert.equal(p.status, 'authorised');
      assert.deepEqual(p, await getPayment(t, p.id));
      assert.match(p.failure_message, /^automatic capture failed: /);
    });

    it('steps up MITs on 4000 0027 6000 3184: requires_action with a redirect_url the customer can finish', async () => {
      const initial = await payByCard(t, { customer: 'cust-3184', number: '4000002760003184' });
      assert.equal(initial.status, 'captured');
      const res = await mit(t, { token: initial.payment_method.token, previous_payment_id: initial.id });
      assert.equal(res.statusCode, 201, res.body);
      const p = json(res);
      assert.equal(p.status, 'requires_action');
      assert.match(p.redirect_url, new RegExp(`/pay/${p.id}-[A-Za-z0-9_-]{43}$`));
      assert.equal((await getPayment(t, p.id)).redirect_url, p.redirect_url);

      // The customer opens the link, as in a browser: page, CSRF cookie, form post. The issuer
      // asked for the cardholder, and a link sent by e-mail is opened by scanners and previews
      // too: the page never confirms by itself, it asks for the customer's answer.
      const path = new URL(p.redirect_url).pathname;
      const page = await t.app.inject({ method: 'GET', url: path });
      assert.equal(page.statusCode, 200);
      assert.match(page.body, /Visa <span aria-hidden="true">••••<\/span><span class="sr-only">ending in<\/span> 3184/);
      assert.doesNotMatch(page.body, /requestSubmit/);
      assert.match(page.body, /action="\/pay\/[^"]+\/challenge"/);
      const cookie = String(page.headers['set-cookie']).split(';')[0]!;
      const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)?.[1];
      assert.ok(csrf);
      const post = (action: string, payload: string) =>
        t.app.inject({ method: 'POST', url: `${path}/${action}`, headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, payload });
      const skipped = await post('confirm', `csrf=${encodeURIComponent(csrf)}`);
      assert.equal(skipped.statusCode, 303);
      assert.equal(skipped.headers.location, path, 'a confirm without the customer answering went back to the merchant');
      assert.equal((await getPayment(t, p.id)).status, 'requires_action');
      const confirm = await post('challenge', `csrf=${encodeURIComponent(csrf)}&otp=1234`);
      assert.equal(confirm.statusCode, 303, confirm.body);
      assert.equal((await merchantReturnAfter(t.app, confirm)).searchParams.get('status'), 'captured');
      const done = await getPayment(t, p.id);
      assert.equal(done.status, 'captured');
      assert.equal(done.payment_method.token, initial.payment_method.token);
    });

    it('tells the acquirer a stepped-up MIT the customer finishes is theirs: a CIT with no MIT reason', async () => {
      const initial = await payByCard(t, { customer: 'cust-3184-reason', number: '4000002760003184' });
      const token = initial.payment_method.token as string;
      for (const o of [{ sub_type: 'recurring-subsequent' }, { sub_type: 'one-off', industry_usage: 'no_show' }]) {
        const p = json(await mit(t, { token, previous_payment_id: initial.id, ...o }));
        assert.equal(p.status, 'requires_action');
        const done = await t.gateway.services.checkout.answerChallenge(pageToken(p.redirect_url), '1234');
        assert.equal(done.payment.status, 'captured');
        const [asked, finished] = callsFor(p.id).map((c) => [c.initiator, c.paymentSubType, c.industryUsage]);
        assert.deepEqual(asked, ['mit', o.sub_type, o.industry_usage ?? 'none']);
        // Authenticated by the customer on the page: no MIT reason code, which schemes take only on MITs.
        assert.deepEqual(finished, ['cit', o.sub_type, 'none']);
      }
    });

    it('lets the merchant withdraw a stepped-up MIT with void: its link then pays nothing', async () => {
      const initial = await payByCard(t, { customer: 'cust-3184-withdrawn', number: '4000002760003184' });
      const p = json(await mit(t, { token: initial.payment_method.token, previous_payment_id: initial.id }));
      assert.equal(p.status, 'requires_action');

      const withdraw = () => t.request({ method: 'POST', url: `/payment/${p.id}/void`, headers: { 'idempotency-key': `withdraw-${p.id}` } });
      const res = await withdraw();
      assert.equal(res.statusCode, 200, res.body);
      const withdrawn = json(res);
      assert.equal(withdrawn.status, 'cancelled');
      assert.equal(withdrawn.redirect_url, null);
      assert.equal(withdrawn.expires_at, null);
      const again = await withdraw();
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.equal(again.body, res.body);

      // The customer opens the link the merchant had already sent and answers the challenge.
      const view = await t.gateway.services.checkout.answerChallenge(pageToken(p.redirect_url), '1234');
      assert.equal(view.payment.status, 'cancelled');
      const page = await t.app.inject({ method: 'GET', url: new URL(p.redirect_url).pathname });
      assert.match(page.body, /This payment was cancelled/);
      assert.equal(callsFor(p.id).length, 1, 'the acquirer was asked once, for the MIT the issuer stepped up');
      const after = await getPayment(t, p.id);
      assert.equal(after.status, 'cancelled');
      assert.equal(after.redirect_url, null);
      assert.deepEqual((await eventsOf(t, p.id)).map((e) => e.type), ['payment.created', 'payment.cancelled']);
      const sealed = await t.gateway.services.ctx.database.db.selectFrom('card_secrets').select('payment_id').where('payment_id', '=', p.id).execute();
      assert.equal(sealed.length, 0, 'the card sealed for the page is erased with it');
      expectProblem(await t.request({ method: 'POST', url: `/payment/${p.id}/void` }), 409, 'payment_not_voidable');
    });

    it('declines an expired stored card with expired_card without asking the acquirer, until the card is updated', async () => {
      const now = new Date(t.clock.now());
      const month = now.getUTCMonth() + 1;
      const year = now.getUTCFullYear();
      const initial = await payByCard(t, { customer: 'cust-expiry', expiry_month: month, expiry_year: year });
      const token = initial.payment_method.token as string;

      t.clock.advance(40 * DAY);
      calls = [];
      const listed = json(await t.request({ method: 'GET', url: '/customers/cust-expiry/payment-methods' }));
      assert.equal(listed.data[0].card.expired, true);
      const res = await mit(t, { token, previous_payment_id: initial.id });
      assert.equal(res.statusCode, 201, res.body);
      const p = json(res);
      assert.equal(p.status, 'declined');
      assert.equal(p.decline_code, 'expired_card');
      assert.equal(p.retry_advice, 'retry_with_new_details');
      assert.equal(calls.length, 0, 'the acquirer was not asked');

      // With the customer present it is the same: no hosted page for a card that cannot pay.
      const cit = await exampleBody({ customer: { reference: 'cust-expiry' }, payment_data: undefined });
      cit.payment_method = { type: 'token', token };
      const citRes = await t.request({ method: 'POST', url: '/payment/authorise', payload: cit });
      assert.equal(citRes.statusCode, 201, citRes.body);
      assert.equal(json(citRes).status, 'declined');
      assert.equal(json(citRes).decline_code, 'expired_card');
      assert.equal(json(citRes).redirect_url, null);
      assert.equal(calls.length, 0);

      // The merchant updates the card: a new CIT with the new expiry keeps the token.
      const renewed = await payByCard(t, { customer: 'cust-expiry', expiry_month: month, expiry_year: year + 3 });
      assert.equal(renewed.payment_method.token, token);
      const retry = json(await mit(t, { token, previous_payment_id: renewed.id }));
      assert.equal(retry.status, 'captured');
      assert.equal(retry.payment_method.card.expiry_year, year + 3);
    });

    it('accepts raw card data on an MIT from a merchant that keeps cards itself, without CVC', async () => {
      const initial = await payByCard(t, { customer: 'cust-raw', store: false });
      assert.equal(initial.payment_data.credential_on_file, true);
      const card = { type: 'card', number: '4242424242424242', expiry_month: 12, expiry_year: 2077 };
      const res = await mit(t, { method: card, previous_payment_id: initial.id });
      assert.equal(res.statusCode, 201, res.body);
      const p = json(res);
      assert.equal(p.status, 'captured');
      assert.equal(p.payment_method.token, null);
      assert.equal(p.initial_network_reference, initial.network_reference);
      expectProblem(await mit(t, { method: { ...card, cvc: '123' }, previous_payment_id: initial.id }), 400, 'mit_cvc_not_allowed');
    });

    it('ties an MIT to the customer of the payment it names when either leaves the customer out', async () => {
      const card = { type: 'card', number: '4242424242424242', expiry_month: 12, expiry_year: 2077 };
      const initial = await payByCard(t, { customer: 'cust-named' });
      // Raw card data without customer.reference: it is that customer's agreement, and their payment.
      const unnamed = json(await mit(t, { method: card, previous_payment_id: initial.id }));
      assert.equal(unnamed.status, 'captured');
      assert.deepEqual(unnamed.customer, { reference: 'cust-named' });
      assert.deepEqual((await getPayment(t, unnamed.id)).customer, { reference: 'cust-named' });
      const listed = json(await t.request({ method: 'GET', url: '/payments?customer_reference=cust-named' }));
      assert.ok(listed.data.some((p: { id: string }) => p.id === unnamed.id), 'listed under the agreement\'s customer');

      // An agreement made for no customer is no consent of a customer the MIT names.
      const anonymous = await payByCard(t, { customer: null, store: false, payment_data: { payment_type: 'cit', payment_sub_type: 'unscheduled-initial', credential_on_file: true } });
      assert.equal(anonymous.customer, null);
      const before = calls.length;
      for (const named of [{ method: card, customer: 'cust-named' }, { token: initial.payment_method.token as string }]) {
        const problem = expectProblem(await mit(t, { ...named, previous_payment_id: anonymous.id, sub_type: 'unscheduled-subsequent' }), 422, 'initial_payment_customer_mismatch');
        assert.equal(problem.param, '/payment_data/previous_payment_id');
        assert.match(problem.detail, /no customer/);
      }
      assert.equal(calls.length, before, 'nothing refused reached the acquirer');
      const neither = json(await mit(t, { method: card, previous_payment_id: anonymous.id, sub_type: 'unscheduled-subsequent' }));
      assert.equal(neither.status, 'captured');
      assert.equal(neither.customer, null);
    });

    it("refuses an industry-practice MIT that the named payment's state or age rules out", async () => {
      const initial = await payByCard(t, { customer: 'cust-practice' });
      const token = initial.payment_method.token as string;
      const charge = async (capture: 'auto' | 'manual' = 'auto') => json(await mit(t, { token, previous_payment_id: initial.id, amount: 1000, capture }));
      const practice = (usage: string, previous: string) => mit(t, { token, previous_payment_id: previous, industry_usage: usage, sub_type: 'one-off', amount: 500 });
      const refused = async (usage: string, previous: string, code: string) => {
        const problem = expectProblem(await practice(usage, previous), 422, code);
        assert.equal(problem.param, '/payment_data/previous_payment_id', code);
        return problem;
      };
      const request = (id: string, action: string, payload = '{}') =>
        t.request({ method: 'POST', url: `/payment/${id}/${action}`, headers: { 'content-type': 'application/json' }, payload });
      const before = calls.length;

      // Approved and captured: nothing was declined, so nothing to resubmit.
      const captured = await charge();
      await refused('resubmission', captured.id, 'resubmission_requires_declined_payment');
      // Approved, not captured yet: nothing charged that a delayed charge could follow.
      const held = await charge('manual');
      assert.equal(held.status, 'authorised');
      await refused('delayed_charge', held.id, 'delayed_charge_requires_captured_payment');
      // Voided: the merchant released the hold, the sale it was for is off.
      assert.equal(json(await request(held.id, 'void')).status, 'voided');
      for (const usage of ['delayed_charge', 'reauthorisation']) {
        const problem = await refused(usage, held.id, 'industry_usage_payment_closed');
        assert.match(problem.detail, /"voided"/);
      }
      // Fully refunded: the customer was given everything back.
      const refunded = await charge();
      assert.equal((await request(refunded.id, 'refund')).statusCode, 201);
      assert.equal((await getPayment(t, refunded.id)).status, 'refunded');
      for (const usage of ['delayed_charge', 'reauthorisation']) await refused(usage, refunded.id, 'industry_usage_payment_closed');
      // Partly refunded is still a sale that took place: a later charge for it may follow.
      const partly = await charge();
      assert.equal((await request(partly.id, 'refund', '{"amount":400}')).statusCode, 201);
      assert.equal((await getPayment(t, partly.id)).status, 'partially_refunded');
      assert.equal(json(await practice('delayed_charge', partly.id)).status, 'captured');
      assert.equal(calls.length - before, 5, 'only the four charges and the delayed charge reached the acquirer');

      // Ages: a resubmission within 14 days of the decline, a delayed charge within 90 of the approval.
      const card = { type: 'card', number: '4000000000009995', expiry_month: 12, expiry_year: 2077 };
      const declined = await payByCard(t, { customer: 'cust-practice', number: '4000000000009995', store: false });
      const resubmit = () => mit(t, { method: card, previous_payment_id: declined.id, industry_usage: 'resubmission', sub_type: 'one-off', amount: declined.amount });
      t.clock.advance(14 * DAY);
      const retried = json(await resubmit());
      assert.equal(retried.decline_code, 'insufficient_funds');
      t.clock.advance(1000);
      const late = expectProblem(await resubmit(), 422, 'industry_usage_too_late');
      assert.equal(late.param, '/payment_data/previous_payment_id');
      assert.match(late.detail, /14 days/);
      // A chain of retries counts from the first decline: naming the last retry starts no new 14 days.
      const chained = expectProblem(await mit(t, { method: card, previous_payment_id: retried.id as string, industry_usage: 'resubmission', sub_type: 'one-off', amount: declined.amount }), 422, 'industry_usage_too_late');
      assert.match(chained.detail, /14 days/);
      t.clock.advance(90 * DAY - 14 * DAY - 2000);
      const added = json(await practice('delayed_charge', partly.id));
      assert.equal(added.status, 'captured');
      t.clock.advance(2000);
      assert.match((await refused('delayed_charge', partly.id, 'industry_usage_too_late')).detail, /90 days/);
      // So does a delayed charge naming the last one: the stay it follows ended as long ago.
      assert.match((await refused('delayed_charge', added.id as string, 'industry_usage_too_late')).detail, /90 days/);
    });

    it('is not expired while the acquirer takes longer than a hosted page lives, and an approval after expiry is given back', async () => {
      // Its own gateway: hosted pages living 30 s, the shortest allowed.
      const short = await startTestGateway({ dialect, env: { HOSTED_PAGE_TTL_SECONDS: '30' } });
      try {
        const acquirer = short.gateway.services.ctx.acquirer;
        const { authorise, refund } = acquirer;
        const released: string[] = [];
        // Captured at once (capture "auto"), so giving it back is a refund.
        acquirer.refund = async (req) => {
          released.push(req.paymentId);
          return refund.call(acquirer, req);
        };
        const slowly = async (advanceMs: number) => {
          const initial = await payByCard(short, { customer: `cust-slow-${advanceMs}` });
          let answer!: () => void;
          const answered = new Promise<void>((r) => (answer = r));
          let asked!: () => void;
          const askedAcquirer = new Promise<void>((r) => (asked = r));
          acquirer.authorise = async (req) => {
            asked();
            await answered;
            return authorise.call(acquirer, req);
          };
          try {
            const pending = mit(short, { token: initial.payment_method.token as string, previous_payment_id: initial.id, amount: 1000 });
            const early = await Promise.race([askedAcquirer.then(() => null), pending]);
            assert.equal(early, null, early ? `answered before asking the acquirer: ${early.statusCode} ${early.body}` : '');
            short.clock.advance(advanceMs);
            await sweepExpired(short.gateway.services);
            answer();
            return json(await pending);
          } finally {
            acquirer.authorise = authorise;
          }
        };
        // Longer than the page's 30 s: still the acquirer's answer that counts.
        const slow = await slowly(31_000);
        assert.equal(slow.status, 'captured');
        assert.equal((await getPayment(short, slow.id)).status, 'captured');
        // Past any acquirer's time (the process might have died): expired, and the late approval released.
        const late = await slowly(3 * 60_000);
        assert.equal(late.status, 'expired');
        await runCaptureScheduler(short.gateway.services);
        assert.deepEqual(released, [late.id]);
        // Its expiry, with the acquirer's answer still out, had queued a reversal of the
        // authorisation and a refund of the capture asked at once: the late approval's capture
        // is refunded by that refund (now known to be due), not by a second one.
        const releases = await short.gateway.services.ctx.database.db.selectFrom('releases').select(['action', 'reason']).where('payment_id', '=', late.id).orderBy('action').execute();
        assert.deepEqual(releases, [{ action: 'refund', reason: 'late_approval' }, { action: 'void', reason: 'unconfirmed_authorisation' }]);
      } finally {
        await short.close();
      }
    });
  });
}

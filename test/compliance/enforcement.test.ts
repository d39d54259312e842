import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { DAY_MS, approvalValidUntil } from '../../src/domain/compliance.js';
import { runComplianceChecks } from '../../src/workers/compliance-reminders.js';
import { ComplianceGate } from '../../src/app/compliance.js';
import { DIALECTS, type TestGateway, exampleBody } from '../support/gateway.js';
import { assertProblem, postAuthorise } from '../support/http.js';
import { LIVE_CHANNEL, approveMerchant, dateDaysAgo, declareVolume, expectStatus, operator, startComplianceGateway, upload } from './fixtures.js';
import { unpackJson } from '../../src/adapters/storage/packed-json.js';
import { payByCard } from '../stored-cards/support.js';
import { createLogger } from '../../src/logger.js';

async function liveCardPayment(t: TestGateway) {
  return postAuthorise(t, await exampleBody({ channel: LIVE_CHANNEL }));
}

async function status(t: TestGateway) {
  return (await expectStatus(t.request({ method: 'GET', url: '/merchant/compliance' }), 200)).json();
}

async function eventsOfType(t: TestGateway, type: string) {
  return t.gateway.services.ctx.database.db.selectFrom('events').selectAll().where('merchant_id', '=', t.credentials.merchant_id).where('type', '=', type).orderBy('id').execute();
}

for (const dialect of DIALECTS) {
  describe(`compliance enforcement (${dialect})`, () => {
    describe('a live channel and card data', () => {
      let t: TestGateway;
      before(async () => {
        t = await startComplianceGateway(dialect);
      });
      after(() => t.close());

      it('refuses card data before approval with compliance_required, sandbox channels meanwhile work', async () => {
        const refused = assertProblem(await liveCardPayment(t), 403, 'compliance_required', '/payment_method');
        assert.match(refused.detail, /PCI DSS/);
        const sandbox = await postAuthorise(t, await exampleBody());
        assert.equal(sandbox.statusCode, 201, sandbox.body);
      });

      it('still refuses while the submission waits for review', async () => {
        await expectStatus(declareVolume(t, 250_000), 200);
        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 30) }), 201);
        await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 3) }), 201);
        assert.equal((await status(t)).status, 'pending');
        assertProblem(await liveCardPayment(t), 403, 'compliance_required');
      });

      it('accepts card data once the operator approves, until the last millisecond of validity', async () => {
        const approved = await expectStatus(operator(t, 'POST', `/operator/compliance/merchants/${t.credentials.merchant_id}/approve`), 200);
        const view = approved.json();
        assert.equal(view.status, 'approved');
        assert.equal(view.approved_basis, 'saq');
        const res = await liveCardPayment(t);
        assert.equal(res.statusCode, 201, res.body);
        assert.equal(res.json().channel, LIVE_CHANNEL);

        // Annual validation: a year after the SAQ (signed 3 days before) was signed, not after the review.
        const expiresAt = Date.parse(view.expires_at);
        const saq = view.documents.find((d: { type: string; status: string }) => d.type === 'saq' && d.status === 'approved');
        assert.equal(expiresAt, approvalValidUntil(Date.parse(view.approved_at), [Date.parse(saq.document_date)]), 'valid for one year from the SAQ');
        assert.ok(expiresAt - Date.parse(view.approved_at) < 363 * DAY_MS);
        t.clock.set(expiresAt - 1);
        const last = await liveCardPayment(t);
        assert.equal(last.statusCode, 201, last.body);
      });

      it('refuses again with compliance_expired once the validity ends, without waiting for a cache', async () => {
        const expiresAt = Date.parse((await status(t)).expires_at);
        t.clock.set(expiresAt);
        const refused = assertProblem(await liveCardPayment(t), 403, 'compliance_expired');
        assert.match(refused.detail, /expired/);
        const view = await status(t);
        assert.equal(view.status, 'expired');
        assert.equal(view.card_data_on_live_channels, 'refused');
        assert.deepEqual(view.missing.map((m: { item: string }) => m.item), ['asv_scan', 'saq']);
        const sandbox = await postAuthorise(t, await exampleBody());
        assert.equal(sandbox.statusCode, 201, sandbox.body);
      });
    });

    describe('the gate\'s cache', () => {
      let t: TestGateway;
      before(async () => {
        t = await startComplianceGateway(dialect);
      });
      after(() => t.close());

      it('does not keep a row read before a change this process made', async () => {
        const { ctx } = t.gateway.services;
        const gate = ComplianceGate.of(ctx);
        const merchant = t.credentials.merchant_id;
        const now = t.clock.now();
        await ctx.database.db.insertInto('compliance_profiles').values({ merchant_id: merchant, approved_at: now, valid_until: now + 365 * DAY_MS, approved_basis: 'saq', updated_at: now }).execute();
        // The gate's read is held after it has read the approval, until the approval is gone.
        const executor = ctx.database.db.getExecutor() as unknown as { executeQuery: (...args: unknown[]) => Promise<unknown> };
        const original = executor.executeQuery;
        let release!: () => void;
        const held = new Promise<void>((r) => (release = r));
        let read!: () => void;
        const wasRead = new Promise<void>((r) => (read = r));
        executor.executeQuery = async function (this: unknown, ...args: unknown[]) {
          const result = await original.apply(this, args);
          if (/from "compliance_profiles"/.test((args[0] as { sql: string }).sql)) {
            executor.executeQuery = original;
            read();
            await held;
          }
          return result;
        };
        const inFlight = gate.check(merchant, 'live', 'card');
        await wasRead;
        await ctx.database.db.updateTable('compliance_profiles').set({ approved_at: null, valid_until: null, approved_basis: null }).where('merchant_id', '=', merchant).execute();
        gate.forget(merchant);
        release();
        await inFlight;
        await assert.rejects(gate.check(merchant, 'live', 'card'), { code: 'compliance_required' });
      });
    });

    describe('how long an approval lasts', () => {
      let t: TestGateway;
      beforeEach(async () => {
        t = await startComplianceGateway(dialect);
      });
      afterEach(() => t.close());
      const approve = () => operator(t, 'POST', `/operator/compliance/merchants/${t.credentials.merchant_id}/approve`);

      it('will not approve on an SAQ signed a year ago: it would expire as it is approved', async () => {
        await expectStatus(declareVolume(t, 250_000), 200);
        await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 360) }), 201);
        t.clock.advance(5 * DAY_MS);
        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1) }), 201);
        assertProblem(await approve(), 409, 'document_outdated');
        assertProblem(await liveCardPayment(t), 403, 'compliance_required');
      });

      it('refuses at upload an SAQ whose year has ended, instead of taking a submission no review can approve', async () => {
        // Its last day, 27 February, has ended in every time zone (UTC-12) at noon UTC on the 28th.
        t.clock.set(Date.UTC(2025, 1, 28, 12));
        await expectStatus(declareVolume(t, 250_000), 200);
        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1) }), 201);
        const refused = assertProblem(await upload(t, { type: 'saq', date: '2024-02-29' }), 422, 'document_too_old', '/document_date');
        assert.match(refused.detail, /through 2025-02-27, until 2025-02-28 12:00 UTC/);
        const view = await status(t);
        assert.equal(view.review_pending, false);
        assert.deepEqual(view.missing.map((m: { item: string }) => m.item), ['saq']);
      });

      it('does not call a renewal complete while the approved ASV scan it would carry over is past 90 days', async () => {
        await approveMerchant(t);
        t.clock.advance(300 * DAY_MS);
        await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 1) }), 201);
        let view = await status(t);
        assert.equal(view.status, 'approved');
        assert.deepEqual(view.missing.map((m: { item: string }) => m.item), ['asv_scan'], 'the merchant is told to upload a new scan');
        assert.equal(view.review_pending, false);
        const listed = (await expectStatus(operator(t, 'GET', '/operator/compliance/submissions'), 200)).json();
        assert.deepEqual(listed.data, [], 'nothing the operator could approve is listed for review');
        assert.match(assertProblem(await approve(), 409, 'submission_incomplete').detail, /ASV scan report/);

        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 2) }), 201);
        view = await status(t);
        assert.deepEqual(view.missing, []);
        assert.equal(view.review_pending, true);
        await expectStatus(approve(), 200);
      });

      it('renews on a fresh SAQ beside an older approved AOC when the volume asks only for an SAQ', async () => {
        await expectStatus(declareVolume(t, 250_000), 200);
        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1) }), 201);
        await expectStatus(upload(t, { type: 'aoc', date: dateDaysAgo(t, 200) }), 201);
        await expectStatus(approve(), 200);
        t.clock.advance(60 * DAY_MS);
        const saqDate = dateDaysAgo(t, 1);
        await expectStatus(upload(t, { type: 'saq', date: saqDate }), 201);
        const view = (await expectStatus(approve(), 200)).json();
        assert.equal(view.approved_basis, 'saq');
        assert.equal(Date.parse(view.expires_at), approvalValidUntil(Date.parse(view.approved_at), [Date.parse(saqDate)]));
      });

      it('counts the year from the AOC an approval rests on, not from an older SAQ sent beside it', async () => {
        await expectStatus(declareVolume(t, 7_000_000), 200);
        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1) }), 201);
        await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 300) }), 201);
        const aocDate = dateDaysAgo(t, 2);
        await expectStatus(upload(t, { type: 'aoc', date: aocDate }), 201);
        const view = (await expectStatus(approve(), 200)).json();
        assert.equal(view.approved_basis, 'aoc');
        assert.equal(Date.parse(view.expires_at), approvalValidUntil(Date.parse(view.approved_at), [Date.parse(aocDate)]));
      });
    });

    describe('what an approval rests on', () => {
      let t: TestGateway;
      before(async () => {
        t = await startComplianceGateway(dialect);
      });
      after(() => t.close());
      const approve = () => operator(t, 'POST', `/operator/compliance/merchants/${t.credentials.merchant_id}/approve`);

      it('will not approve an ASV scan that has aged past 90 days while it waited for review', async () => {
        await expectStatus(declareVolume(t, 250_000), 200);
        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 80) }), 201);
        await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 5) }), 201);
        t.clock.advance(20 * DAY_MS);
        assertProblem(await approve(), 409, 'document_outdated');
        assertProblem(await liveCardPayment(t), 403, 'compliance_required');
      });

      it('asks for an AOC when the counted live volume is above 6,000,000, whatever is declared', async () => {
        const { ctx } = t.gateway.services;
        await ctx.database.db.updateTable('compliance_profiles').set({ counted_transactions: 7_000_000 }).where('merchant_id', '=', t.credentials.merchant_id).execute();
        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1) }), 201);
        assert.deepEqual((await status(t)).required_documents, ['asv_scan', 'aoc']);
        assertProblem(await approve(), 409, 'submission_incomplete');
      });

      it('does not let a stored card saved on a sandbox channel, or a token with a fresh CVC, take card data live without approval', async () => {
        const stored = await payByCard(t, { customer: 'cust-sandbox-card' });
        const token = stored.payment_method.token as string;
        const viaToken = async (extra: Record<string, unknown>) => {
          const body = await exampleBody({ channel: LIVE_CHANNEL });
          delete body.customer;
          body.payment_method = { type: 'token', token, ...extra };
          return postAuthorise(t, body);
        };
        assertProblem(await viaToken({}), 422, 'payment_method_not_live');
        assertProblem(await viaToken({ cvc: '123' }), 403, 'compliance_required');
      });
    });

    describe('merchant-initiated payments on a live channel', () => {
      let t: TestGateway;
      before(async () => {
        t = await startComplianceGateway(dialect);
        await approveMerchant(t);
      });
      after(() => t.close());

      /** A live MIT with the card the merchant keeps itself, following `previous`. */
      const liveMit = async (previous: string) => {
        const body = await exampleBody({ channel: LIVE_CHANNEL });
        delete body.device_info;
        delete body.customer;
        body.payment_method = { type: 'card', number: '4242424242424242', expiry_month: 12, expiry_year: 2077 };
        body.payment_data = { payment_type: 'mit', payment_sub_type: 'recurring-subsequent', previous_payment_id: previous };
        return postAuthorise(t, body);
      };

      it('refuses to follow an agreement set up on a sandbox channel, whose consent and network reference the schemes never saw', async () => {
        const sandboxInitial = await payByCard(t, { customer: 'cust-sandbox-agreement', store: false });
        const refused = assertProblem(await liveMit(sandboxInitial.id), 422, 'initial_payment_not_live', '/payment_data/previous_payment_id');
        assert.match(refused.detail, /sandbox/);
        const made = await t.gateway.services.ctx.database.db.selectFrom('payments').select('id').where('payment_type', '=', 'mit').execute();
        assert.equal(made.length, 0, 'nothing written');

        const liveInitial = await payByCard(t, { customer: 'cust-live-agreement', store: false, channel: LIVE_CHANNEL });
        const charged = await liveMit(liveInitial.id);
        assert.equal(charged.statusCode, 201, charged.body);
        assert.equal(charged.json().initial_network_reference, liveInitial.network_reference);
      });

      it('charges live a card stored again through a live channel after it was first stored through a sandbox one', async () => {
        const customer = 'cust-sandbox-then-live';
        const inSandbox = await payByCard(t, { customer, number: '5555555555554444' });
        const token = inSandbox.payment_method.token as string;
        const live = await payByCard(t, { customer, number: '5555555555554444', channel: LIVE_CHANNEL });
        assert.equal(live.payment_method.token, token, 'the same card for the same customer keeps its token');

        const body = await exampleBody({ channel: LIVE_CHANNEL });
        delete body.device_info;
        delete body.customer;
        body.payment_method = { type: 'token', token };
        body.payment_data = { payment_type: 'mit', payment_sub_type: 'recurring-subsequent', previous_payment_id: live.id };
        const charged = await postAuthorise(t, body);
        assert.equal(charged.statusCode, 201, charged.body);
        assert.equal(charged.json().status, 'captured');
      });

      it("moves a stored card's agreement to the live payment that stored it again, so its live MITs never carry the sandbox one", async () => {
        const customer = 'cust-agreement-moves-live';
        const number = '2223003122003222';
        const inSandbox = await payByCard(t, { customer, number });
        const token = inSandbox.payment_method.token as string;
        const readCard = async () => (await t.request({ method: 'GET', url: `/payment-methods/${token}` })).json();
        assert.equal((await readCard()).initial_payment_id, inSandbox.id);

        const live = await payByCard(t, { customer, number, channel: LIVE_CHANNEL });
        const card = await readCard();
        assert.equal(card.initial_payment_id, live.id, 'the agreement a live MIT can follow is the live one');
        assert.equal(card.initial_network_reference, live.network_reference);

        // As docs/stored-cards.md charges it: previous_payment_id from the stored card.
        const body = await exampleBody({ channel: LIVE_CHANNEL });
        delete body.device_info;
        delete body.customer;
        body.payment_method = { type: 'token', token };
        body.payment_data = { payment_type: 'mit', payment_sub_type: 'recurring-subsequent', previous_payment_id: card.initial_payment_id };
        const charged = await postAuthorise(t, body);
        assert.equal(charged.statusCode, 201, charged.body);
        assert.equal(charged.json().initial_network_reference, live.network_reference);

        // Storing it through a sandbox payment once more leaves the live agreement in place.
        await payByCard(t, { customer, number });
        assert.equal((await readCard()).initial_payment_id, live.id);
      });

      it("counts no sandbox decline against a card's live MITs: the schemes never saw it", async () => {
        const number = '4000000000000341';
        const liveInitial = await payByCard(t, { customer: 'cust-live-retries', number, store: false, channel: LIVE_CHANNEL });
        const sandboxInitial = await payByCard(t, { customer: 'cust-sandbox-retries', number, store: false });
        const rawMit = async (channel: string, previous: string) => {
          const body = await exampleBody({ channel });
          delete body.device_info;
          delete body.customer;
          body.payment_method = { type: 'card', number, expiry_month: 12, expiry_year: 2077 };
          body.payment_data = { payment_type: 'mit', payment_sub_type: 'recurring-subsequent', previous_payment_id: previous };
          return postAuthorise(t, body);
        };
        const inSandbox = await rawMit('sandbox', sandboxInitial.id);
        assert.equal(inSandbox.json().retry_advice, 'do_not_retry', inSandbox.body);
        assertProblem(await rawMit('sandbox', sandboxInitial.id), 422, 'mit_retry_not_allowed', '/payment_method');
        // The live agreement was approved before the sandbox decline, which no issuer gave.
        const live = await rawMit(LIVE_CHANNEL, liveInitial.id);
        assert.equal(live.statusCode, 201, live.body);
        assert.equal(live.json().status, 'declined');
      });

      it('never sends a card stored through a live channel to the sandbox, with or without the customer', async () => {
        const customer = 'cust-live-card-in-sandbox';
        const live = await payByCard(t, { customer, channel: LIVE_CHANNEL });
        const token = live.payment_method.token as string;
        const inSandbox = async (method: Record<string, unknown>, data: Record<string, unknown>) => {
          const body = await exampleBody();
          delete body.customer;
          body.payment_method = { type: 'token', token, ...method };
          body.payment_data = data;
          return postAuthorise(t, body);
        };
        const db = t.gateway.services.ctx.database.db;
        const before = (await db.selectFrom('payments').select('id').execute()).length;
        const mit = assertProblem(
          await inSandbox({}, { payment_type: 'mit', payment_sub_type: 'recurring-subsequent', previous_payment_id: live.id }),
          422,
          'payment_method_live_only',
          '/payment_method/token',
        );
        assert.match(mit.detail, /live channel/);
        assertProblem(await inSandbox({ cvc: '123' }, { payment_type: 'cit', payment_sub_type: 'one-off' }), 422, 'payment_method_live_only', '/payment_method/token');
        assert.equal((await db.selectFrom('payments').select('id').execute()).length, before, 'nothing written');
      });
    });

    describe('the 6,000,000 boundary', () => {
      let t: TestGateway;
      before(async () => {
        t = await startComplianceGateway(dialect);
      });
      after(() => t.close());

      it('asks for an SAQ at 6,000,000 and an AOC at 6,000,001', async () => {
        assert.deepEqual((await expectStatus(declareVolume(t, 6_000_000), 200)).json().required_documents, ['asv_scan', 'saq']);
        assert.deepEqual((await expectStatus(declareVolume(t, 6_000_001), 200)).json().required_documents, ['asv_scan', 'aoc']);
      });

      it('will not approve an SAQ above 6,000,000, and approves an AOC', async () => {
        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1) }), 201);
        const saq = (await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 1) }), 201)).json();
        assert.equal(saq.compliance.status, 'missing');
        assert.deepEqual(saq.compliance.missing.map((m: { item: string }) => m.item), ['aoc']);
        assertProblem(await operator(t, 'POST', `/operator/compliance/merchants/${t.credentials.merchant_id}/approve`), 409, 'submission_incomplete');
        await expectStatus(upload(t, { type: 'aoc', date: dateDaysAgo(t, 1) }), 201);
        const view = (await expectStatus(operator(t, 'POST', `/operator/compliance/merchants/${t.credentials.merchant_id}/approve`), 200)).json();
        assert.equal(view.approved_basis, 'aoc');
      });

      it('refuses a volume that is not a whole number with a field-naming 400', async () => {
        for (const bad of [-1, 1.5, '100']) {
          const res = await t.request({ method: 'PUT', url: '/merchant/compliance/volume', headers: { 'content-type': 'application/json' }, payload: JSON.stringify({ annual_transactions: bad }) });
          assertProblem(res, 400, undefined, '/annual_transactions');
        }
      });
    });

    describe('outgrowing an SAQ', () => {
      let t: TestGateway;
      before(async () => {
        t = await startComplianceGateway(dialect);
        await approveMerchant(t, 1000);
      });
      after(() => t.close());

      it('tells the merchant an AOC is now required and keeps accepting cards for the grace period', async () => {
        const view = (await expectStatus(declareVolume(t, 6_000_001), 200)).json();
        assert.equal(view.status, 'approved');
        assert.ok(view.aoc_required, 'aoc_required is set');
        assert.equal(Date.parse(view.aoc_required.grace_period_ends_at) - Date.parse(view.aoc_required.since), 90 * DAY_MS);
        assert.deepEqual(view.missing.map((m: { item: string }) => m.item), ['aoc']);
        const events = await eventsOfType(t, 'compliance.aoc_required');
        assert.equal(events.length, 1);
        assert.equal(events[0]!.payment_id, null);
        assert.equal((await liveCardPayment(t)).statusCode, 201);
      });

      it('refuses card data when the grace period ends without an AOC', async () => {
        const view = await status(t);
        t.clock.set(Date.parse(view.aoc_required.grace_period_ends_at));
        const refused = assertProblem(await liveCardPayment(t), 403, 'compliance_required');
        assert.match(refused.detail, /Attestation of Compliance/);
      });

      it('counts authorised live payments of the last 12 months, not sandbox ones', async () => {
        const { db } = t.gateway.services.ctx.database;
        const now = t.clock.now();
        await db.updateTable('payments').set({ authorised_at: now - DAY_MS }).where('merchant_id', '=', t.credentials.merchant_id).execute();
        const live = await db.selectFrom('payments').innerJoin('channels', 'channels.id', 'payments.channel_id').select('payments.id').where('channels.mode', '=', 'live').execute();
        const sandbox = await db.selectFrom('payments').innerJoin('channels', 'channels.id', 'payments.channel_id').select('payments.id').where('channels.mode', '=', 'sandbox').execute();
        assert.ok(live.length >= 1);
        assert.equal(await t.gateway.services.compliance.countedTransactions(t.credentials.merchant_id, now), live.length);
        // Counted a payment at a time, the chunks add up to the same.
        assert.equal(await t.gateway.services.compliance.countedTransactions(t.credentials.merchant_id, now, 1), live.length);
        assert.equal(sandbox.length, 0);
        await runComplianceChecks(t.gateway.services);
        assert.equal((await status(t)).annual_transactions.counted_last_12_months, live.length);
        assert.equal(await t.gateway.services.compliance.countedTransactions(t.credentials.merchant_id, now + 366 * DAY_MS), 0);
      });
    });

    describe('expiry reminders', () => {
      let t: TestGateway;
      let expiresAt: number;
      before(async () => {
        t = await startComplianceGateway(dialect);
        await approveMerchant(t);
        expiresAt = Date.parse((await status(t)).expires_at);
      });
      after(() => t.close());

      it('records one reminder 30 days and one 7 days before expiry, then the expiry notice, as outbox events', async () => {
        t.clock.set(expiresAt - 31 * DAY_MS);
        await runComplianceChecks(t.gateway.services);
        assert.equal((await eventsOfType(t, 'compliance.expiring')).length, 0);

        t.clock.set(expiresAt - 30 * DAY_MS);
        await runComplianceChecks(t.gateway.services);
        await runComplianceChecks(t.gateway.services);
        let reminders = await eventsOfType(t, 'compliance.expiring');
        assert.equal(reminders.length, 1);
        assert.equal(JSON.parse(unpackJson(reminders[0]!.body)).data.object.days_before_expiry, 30);

        t.clock.set(expiresAt - 7 * DAY_MS);
        await runComplianceChecks(t.gateway.services);
        await runComplianceChecks(t.gateway.services);
        reminders = await eventsOfType(t, 'compliance.expiring');
        assert.equal(reminders.length, 2);
        const seven = reminders[1]!;
        assert.equal(JSON.parse(unpackJson(seven.body)).data.object.days_before_expiry, 7);
        assert.equal(seven.payment_id, null);
        const liveChannel = await t.gateway.services.merchants.requireChannelByReference(LIVE_CHANNEL);
        assert.equal(seven.channel_id, liveChannel.id);
        assert.equal(JSON.parse(unpackJson(seven.body)).type, 'compliance.expiring');

        t.clock.set(expiresAt + 1);
        await runComplianceChecks(t.gateway.services);
        await runComplianceChecks(t.gateway.services);
        assert.equal((await eventsOfType(t, 'compliance.expired')).length, 1);
        assert.equal((await eventsOfType(t, 'compliance.expiring')).length, 2);
      });
    });

    describe('an expiry reminder sent late', () => {
      let t: TestGateway;
      let expiresAt: number;
      before(async () => {
        t = await startComplianceGateway(dialect);
        await approveMerchant(t);
        expiresAt = Date.parse((await status(t)).expires_at);
      });
      after(() => t.close());

      it('says how many days are really left, not the 30 it was due at', async () => {
        // The 30-day reminder was never sent (an approval granted 12 days before its end, workers stopped for weeks).
        t.clock.set(expiresAt - 12 * DAY_MS - 3_600_000);
        await runComplianceChecks(t.gateway.services);
        const [late] = await eventsOfType(t, 'compliance.expiring');
        assert.equal(JSON.parse(unpackJson(late!.body)).data.object.days_before_expiry, 13);

        t.clock.set(expiresAt - 2 * DAY_MS);
        await runComplianceChecks(t.gateway.services);
        const reminders = await eventsOfType(t, 'compliance.expiring');
        assert.equal(reminders.length, 2);
        assert.equal(JSON.parse(unpackJson(reminders[1]!.body)).data.object.days_before_expiry, 2);
      });
    });

    describe("the operator's log", () => {
      it('warns once when a validation expires and live card payments stop, naming the merchant', async () => {
        const lines: Array<{ level: number; msg: string; merchant_id?: string; valid_until?: string }> = [];
        const t = await startComplianceGateway(dialect, {}, createLogger('info', { write: (text: string) => void lines.push(JSON.parse(text)) }));
        try {
          await approveMerchant(t);
          const expiresAt = (await status(t)).expires_at as string;
          t.clock.set(Date.parse(expiresAt) + 1);
          await runComplianceChecks(t.gateway.services);
          await runComplianceChecks(t.gateway.services);
          const expired = lines.filter((l) => l.level === 40 && /PCI DSS validation expired/.test(l.msg));
          assert.deepEqual(
            expired.map((l) => [l.merchant_id, l.valid_until]),
            [[t.credentials.merchant_id, expiresAt]],
            JSON.stringify(lines.filter((l) => l.level >= 40)),
          );
        } finally {
          await t.close();
        }
      });
    });
  });
}

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { authorisedPayment, countAcquirerCalls, eventTypes, getPayment, post, REFUND_FAILS } from './helpers.js';
import { EVENT_READ_COLUMNS, eventBody } from '../../src/app/events.js';
import { CLAIM_LEASE_MS } from '../../src/domain/payment-state.js';
import { runCaptureScheduler } from '../../src/workers/capture-scheduler.js';

interface RefundJson {
  id: string;
  object: string;
  payment_id: string;
  amount: number;
  status: string;
  reason: string | null;
  failure_code: string | null;
}

for (const dialect of DIALECTS) {
  describe(`refunds (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(async () => {
      await t.close();
    });

    it('refunds in several parts up to the captured amount, then refuses more', async () => {
      const p = await authorisedPayment(t, { amount: 1000, capture: 'auto' });
      assert.equal(p.status, 'captured');

      const first = await post(t, `/payment/${p.id}/refund`, { amount: 300, reason: 'one item returned' });
      assert.equal(first.statusCode, 201, first.body);
      const r1 = first.json() as RefundJson;
      assert.match(r1.id, /^re_[0-9a-f]{32}$/);
      assert.equal(r1.object, 'refund');
      assert.equal(r1.status, 'succeeded');
      assert.equal(r1.reason, 'one item returned');
      let payment = await getPayment(t, p.id);
      assert.equal(payment.status, 'partially_refunded');
      assert.equal(payment.amount_refunded, 300);

      t.clock.advance(1000);
      const second = await post(t, `/payment/${p.id}/refund`, { amount: 500 });
      assert.equal(second.statusCode, 201);
      assert.equal((await getPayment(t, p.id)).amount_refunded, 800);

      const over = await post(t, `/payment/${p.id}/refund`, { amount: 201 });
      assert.equal(over.statusCode, 409);
      assert.equal(over.json().code, 'amount_exceeds_refundable');
      assert.equal(over.json().param, '/amount');
      assert.equal(over.json().amount_refundable, 200);
      assert.equal((await getPayment(t, p.id)).amount_refunded, 800);

      // No amount: whatever is left.
      t.clock.advance(1000);
      const rest = await post(t, `/payment/${p.id}/refund`);
      assert.equal(rest.statusCode, 201);
      assert.equal(rest.json().amount, 200);
      payment = await getPayment(t, p.id);
      assert.equal(payment.status, 'refunded');
      assert.equal(payment.amount_captured, 1000);
      assert.equal(payment.amount_refunded, 1000);

      const more = await post(t, `/payment/${p.id}/refund`, { amount: 1 });
      assert.equal(more.statusCode, 409);
      assert.equal(more.json().code, 'payment_not_refundable');

      const list = await t.request({ method: 'GET', url: `/payment/${p.id}/refunds` });
      assert.equal(list.statusCode, 200);
      const refunds = list.json().data as RefundJson[];
      assert.deepEqual(refunds.map((r) => [r.amount, r.status]), [[300, 'succeeded'], [500, 'succeeded'], [200, 'succeeded']]);
      assert.deepEqual(await eventTypes(t, p.id), ['payment.created', 'payment.authorised', 'payment.captured', 'refund.succeeded', 'refund.succeeded', 'refund.succeeded']);
    });

    it('refunds only what a partial capture took', async () => {
      const p = await authorisedPayment(t, { amount: 1000 });
      assert.equal((await post(t, `/payment/${p.id}/capture`, { amount: 400 })).statusCode, 200);
      const over = await post(t, `/payment/${p.id}/refund`, { amount: 401 });
      assert.equal(over.statusCode, 409);
      assert.equal(over.json().code, 'amount_exceeds_refundable');
      const full = await post(t, `/payment/${p.id}/refund`);
      assert.equal(full.json().amount, 400);
      const after = await getPayment(t, p.id);
      assert.equal(after.status, 'refunded');
      assert.equal(after.amount_refunded, 400);
    });

    it('refuses to refund an uncaptured payment', async () => {
      const p = await authorisedPayment(t);
      const res = await post(t, `/payment/${p.id}/refund`, { amount: 10 });
      assert.equal(res.statusCode, 409);
      assert.equal(res.json().code, 'payment_not_refundable');
      assert.equal(res.json().payment_status, 'authorised');
      assert.match(res.json().detail, /void/);
      const list = await t.request({ method: 'GET', url: `/payment/${p.id}/refunds` });
      assert.deepEqual(list.json().data, []);
      assert.equal((await getPayment(t, p.id)).amount_refunded, 0);
    });

    it('rejects malformed refund input with a field pointer', async () => {
      const p = await authorisedPayment(t, { capture: 'auto' });
      const cases: Array<[unknown, string]> = [
        [{ amount: 0 }, '/amount'],
        [{ amount: 2.5 }, '/amount'],
        [{ reason: 'x'.repeat(501) }, '/reason'],
        [{ reason: 7 }, '/reason'],
        [{ amount: 1, note: 'x' }, '/note'],
        [{ reason: 'refund to 4242 4242 4242 4242' }, '/reason'],
      ];
      for (const [body, pointer] of cases) {
        const res = await post(t, `/payment/${p.id}/refund`, body);
        assert.equal(res.statusCode, 400, JSON.stringify(body));
        assert.equal(res.json().param, pointer);
      }
      // 2.50 in major units, most likely: the answer says amounts are minor units.
      assert.match((await post(t, `/payment/${p.id}/refund`, { amount: 2.5 })).json().detail, /minor units/);
      assert.equal((await getPayment(t, p.id)).amount_refunded, 0);
    });

    it('replays a refund sent again with the same Idempotency-Key', async () => {
      const p = await authorisedPayment(t, { amount: 900, capture: 'auto' });
      const acquirer = countAcquirerCalls([t.gateway]);
      const headers = { 'idempotency-key': `refund-${p.id}` };
      const first = await post(t, `/payment/${p.id}/refund`, { amount: 250 }, headers);
      const second = await post(t, `/payment/${p.id}/refund`, { amount: 250 }, headers);
      assert.equal(first.statusCode, 201);
      assert.equal(second.statusCode, 201);
      assert.equal(second.headers['idempotent-replayed'], 'true');
      assert.equal(second.body, first.body);
      assert.equal(acquirer.count('refund', p.id), 1);
      assert.equal((await getPayment(t, p.id)).amount_refunded, 250);
      const list = await t.request({ method: 'GET', url: `/payment/${p.id}/refunds` });
      assert.equal(list.json().data.length, 1);
    });

    it('replays a refund retried with its key in another JSON spelling, and refuses one for another amount', async () => {
      const p = await authorisedPayment(t, { amount: 900, capture: 'auto' });
      const headers = { 'content-type': 'application/json', 'idempotency-key': `refund-spelling-${p.id}` };
      const send = (payload: string) => t.request({ method: 'POST', url: `/payment/${p.id}/refund`, payload, headers });
      const first = await send('{"amount":250,"reason":"one returned"}');
      assert.equal(first.statusCode, 201, first.body);
      // A client that serialises its retry again (another library, another language) writes the
      // same request with other bytes: refused, it would be sent again under a new key.
      for (const retry of ['{ "reason": "one returned",\n  "amount": 250 }', '{"amount":250.0,"reason":"one \\u0072eturned"}']) {
        const again = await send(retry);
        assert.equal(again.statusCode, 201, `${retry}: ${again.body}`);
        assert.equal(again.headers['idempotent-replayed'], 'true');
        assert.equal(again.body, first.body);
      }
      for (const other of ['{"amount":300,"reason":"one returned"}', '{"amount":250}', '{"amount":250,"reason":"One returned"}']) {
        const refused = await send(other);
        assert.equal(refused.statusCode, 422, `${other}: ${refused.body}`);
        assert.equal(refused.json().code, 'idempotency_key_reused');
      }
      assert.equal((await getPayment(t, p.id)).amount_refunded, 250);
      assert.equal((await t.request({ method: 'GET', url: `/payment/${p.id}/refunds` })).json().data.length, 1);
    });

    it('records a failed refund (test card 4000 0000 0000 5126) and leaves the balance alone', async () => {
      const p = await authorisedPayment(t, { amount: 700, capture: 'auto', payment_method: { number: REFUND_FAILS } });
      assert.equal(p.status, 'captured');
      const res = await post(t, `/payment/${p.id}/refund`, { amount: 100 });
      assert.equal(res.statusCode, 201);
      const refund = res.json() as RefundJson;
      assert.equal(refund.status, 'failed');
      assert.equal(refund.failure_code, 'refund_failed');
      const after = await getPayment(t, p.id);
      assert.equal(after.status, 'captured');
      assert.equal(after.amount_refunded, 0);
      // A failed refund holds nothing back: the whole capture is still refundable (and fails again).
      const again = await post(t, `/payment/${p.id}/refund`, { amount: 700 });
      assert.equal(again.statusCode, 201);
      assert.equal(again.json().status, 'failed');
      assert.deepEqual(await eventTypes(t, p.id), ['payment.created', 'payment.authorised', 'payment.captured', 'refund.failed', 'refund.failed']);
      const event = await t.gateway.services.ctx.database.db
        .selectFrom('events')
        .leftJoin('payments', 'payments.id', 'events.payment_id')
        .leftJoin('channels', 'channels.id', 'events.channel_id')
        .select(EVENT_READ_COLUMNS)
        .where('events.payment_id', '=', p.id)
        .where('events.type', '=', 'refund.failed')
        .orderBy('events.sequence')
        .executeTakeFirstOrThrow();
      const object = JSON.parse(eventBody(event)).data.object;
      assert.equal(object.id, refund.id);
      assert.equal(object.payment.id, p.id);
      assert.equal(object.payment.amount_refunded, 0);
    });

    it('replays, never repeats, a refund whose claim the scheduler took over before its owner answered', async () => {
      const p = await authorisedPayment(t, { amount: 1000, capture: 'auto' });
      const acquirer = t.gateway.services.ctx.acquirer;
      const refund = acquirer.refund;
      const asked: string[] = [];
      let release!: () => void;
      const released = new Promise<void>((r) => (release = r));
      let holding!: () => void;
      const held = new Promise<void>((r) => (holding = r));
      acquirer.refund = async (req) => {
        asked.push(req.refundId);
        // The owner's call hangs past the claim's lease; the scheduler's goes through.
        if (asked.length === 1) {
          holding();
          await released;
        }
        return refund.call(acquirer, req);
      };
      try {
        const owner = post(t, `/payment/${p.id}/refund`, { amount: 300 }, { 'idempotency-key': 'refund-takeover' });
        await held;
        t.clock.advance(CLAIM_LEASE_MS);
        await runCaptureScheduler(t.gateway.services);
        release();
        const first = (await owner).json() as RefundJson;
        const retry = await post(t, `/payment/${p.id}/refund`, { amount: 300 }, { 'idempotency-key': 'refund-takeover' });
        assert.equal(retry.statusCode, 201, retry.body);
        assert.equal(retry.headers['idempotent-replayed'], 'true');
        assert.equal((retry.json() as RefundJson).id, first.id);
        assert.equal((retry.json() as RefundJson).status, 'succeeded');
        assert.equal((await getPayment(t, p.id)).amount_refunded, 300);
        assert.deepEqual([...new Set(asked)], [first.id]);
      } finally {
        acquirer.refund = refund;
      }
    });

    it('takes, captures and refunds the largest amount a 12-digit ISO 8583 amount field carries, and no more', async () => {
      const largest = 999_999_999_999;
      const p = await authorisedPayment(t, { amount: largest, currency: 'JPY', capture: 'auto' });
      assert.equal(p.status, 'captured');
      assert.equal(p.amount_captured, largest);
      assert.equal((await post(t, `/payment/${p.id}/refund`, { amount: 1 })).statusCode, 201);
      const rest = await post(t, `/payment/${p.id}/refund`, { amount: largest - 1 });
      assert.equal(rest.statusCode, 201, rest.body);
      const final = await getPayment(t, p.id);
      assert.equal(final.status, 'refunded');
      assert.equal(final.amount_refunded, largest);
      const over = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ amount: largest + 1, currency: 'JPY' }) });
      assert.equal(over.statusCode, 400);
      assert.equal(over.json().code, 'out_of_range');
    });

    it("pages through a payment's refunds oldest first, and names a bad cursor or limit", async () => {
      const p = await authorisedPayment(t, { amount: 1000, capture: 'auto' });
      const made: string[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await post(t, `/payment/${p.id}/refund`, { amount: 10 });
        assert.equal(res.statusCode, 201, res.body);
        made.push(res.json<RefundJson>().id);
        t.clock.advance(1);
      }
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const res = await t.request({ method: 'GET', url: `/payment/${p.id}/refunds?limit=2${cursor ? `&starting_after=${cursor}` : ''}` });
        assert.equal(res.statusCode, 200, res.body);
        const page = res.json<{ data: RefundJson[]; has_more: boolean; next_starting_after: string | null }>();
        assert.ok(page.data.length <= 2);
        seen.push(...page.data.map((r) => r.id));
        assert.equal(page.has_more, page.next_starting_after !== null);
        cursor = page.next_starting_after;
        pages++;
      } while (cursor);
      assert.deepEqual(seen, made);
      assert.equal(pages, 3);
      const whole = (await t.request({ method: 'GET', url: `/payment/${p.id}/refunds` })).json<{ data: RefundJson[]; has_more: boolean }>();
      assert.deepEqual([whole.data.length, whole.has_more], [5, false]);

      const other = await authorisedPayment(t, { capture: 'auto' });
      const bad = await t.request({ method: 'GET', url: `/payment/${other.id}/refunds?starting_after=${made[0]}` });
      assert.equal(bad.statusCode, 400, bad.body);
      assert.deepEqual([bad.json().code, bad.json().param], ['invalid_cursor', '/querystring/starting_after']);
      const notRefund = await t.request({ method: 'GET', url: `/payment/${p.id}/refunds?starting_after=${p.id}` });
      assert.deepEqual([notRefund.statusCode, notRefund.json().code], [400, 'invalid_cursor']);
      const limit = await t.request({ method: 'GET', url: `/payment/${p.id}/refunds?limit=101` });
      assert.equal(limit.statusCode, 400, limit.body);
      assert.equal(limit.json().param, '/querystring/limit');
    });

    it("answers 404 for another merchant's refunds", async () => {
      const p = await authorisedPayment(t, { capture: 'auto' });
      const other = await t.gateway.services.merchants.createMerchant('Other shop');
      const key = await t.gateway.services.merchants.createSecretKey(other.id, 'other');
      const res = await t.request({ method: 'GET', url: `/payment/${p.id}/refunds`, headers: { 'x-secret-key': key.secret_key } });
      assert.equal(res.statusCode, 404);
      assert.equal(res.json().code, 'payment_not_found');
    });

    it('reads a refund back at the Location its 201 names, and hides it from another merchant like a missing one', async () => {
      const p = await authorisedPayment(t, { capture: 'auto' });
      const created = await post(t, `/payment/${p.id}/refund`, { amount: 100, reason: 'damaged' });
      assert.equal(created.statusCode, 201, created.body);
      const refund = created.json() as RefundJson;
      assert.equal(created.headers.location, `/refunds/${refund.id}`);

      const read = await t.request({ method: 'GET', url: `/refunds/${refund.id}` });
      assert.equal(read.statusCode, 200, read.body);
      assert.deepEqual(read.json(), refund);

      const other = await t.gateway.services.merchants.createMerchant('Refund reader');
      const key = await t.gateway.services.merchants.createSecretKey(other.id, 'other');
      const foreign = await t.request({ method: 'GET', url: `/refunds/${refund.id}`, headers: { 'x-secret-key': key.secret_key } });
      const unknownId = refund.id.slice(0, -4) + (refund.id.endsWith('0000') ? '1111' : '0000');
      const missing = await t.request({ method: 'GET', url: `/refunds/${unknownId}` });
      assert.equal(foreign.statusCode, 404);
      assert.equal(foreign.json().code, 'refund_not_found');
      assert.equal(foreign.json().param, '/params/id');
      assert.equal(missing.json().code, 'refund_not_found');
      assert.equal(foreign.json().detail.replace(refund.id, 'X'), missing.json().detail.replace(unknownId, 'X'));
      const garbled = await t.request({ method: 'GET', url: '/refunds/4242424242424242' });
      assert.equal(garbled.statusCode, 404);
      assert.ok(!garbled.body.includes('4242424242424242'));
    });
  });
}

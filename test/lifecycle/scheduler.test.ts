import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import pino from 'pino';
import { createGateway, type Gateway } from '../../src/server.js';
import type { Acquirer, CaptureRequest, SimpleResult } from '../../src/ports/acquirer.js';
import { CLAIM_LEASE_MS, LATE_CAPTURE_GRACE_MS } from '../../src/domain/payment-state.js';
import { runCaptureScheduler } from '../../src/workers/capture-scheduler.js';
import { sweepExpired } from '../../src/workers/expiry-sweeper.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { authorisedPayment, CAPTURE_FAILS, countAcquirerCalls, eventTypes, getPayment, post, restart, secondGateway } from './helpers.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

function releasesOf(t: TestGateway, paymentId: string) {
  return t.gateway.services.ctx.database.db.selectFrom('releases').selectAll().where('payment_id', '=', paymentId).execute();
}

function captures(events: string[]): number {
  return events.filter((e) => e === 'payment.captured').length;
}

for (const dialect of DIALECTS) {
  describe(`delayed capture and expiry (${dialect})`, () => {
    let t: TestGateway;
    const extra: Gateway[] = [];
    beforeEach(async () => {
      t = await startTestGateway({ dialect });
    });
    afterEach(async () => {
      for (const g of extra.splice(0)) await g.close();
      await t.close();
    });

    it('captures once the delay has passed, and not before', async () => {
      const acquirer = countAcquirerCalls([t.gateway]);
      const authorisedAt = t.clock.now();
      const p = await authorisedPayment(t, { capture: 'auto', capture_delay: '30m' });
      assert.equal(p.status, 'authorised');
      assert.equal(p.capture_at, new Date(authorisedAt + 30 * MINUTE).toISOString());

      assert.equal(await runCaptureScheduler(t.gateway.services), 0);
      t.clock.advance(30 * MINUTE - 1);
      assert.equal(await runCaptureScheduler(t.gateway.services), 0);
      assert.equal((await getPayment(t, p.id)).status, 'authorised');

      t.clock.advance(1);
      assert.equal(await runCaptureScheduler(t.gateway.services), 1);
      const captured = await getPayment(t, p.id);
      assert.equal(captured.status, 'captured');
      assert.equal(captured.amount_captured, p.amount);
      assert.equal(captured.capture_at, null);

      t.clock.advance(HOUR);
      assert.equal(await runCaptureScheduler(t.gateway.services), 0);
      assert.equal(acquirer.count('capture', p.id), 1);
      assert.equal(captures(await eventTypes(t, p.id)), 1);
    });

    it('a manual capture brings a delayed one forward, and it is not captured again', async () => {
      const acquirer = countAcquirerCalls([t.gateway]);
      const p = await authorisedPayment(t, { amount: 1000, capture: 'auto', capture_delay: '1d' });
      const res = await post(t, `/payment/${p.id}/capture`, { amount: 250 });
      assert.equal(res.statusCode, 200);
      assert.equal(res.json().capture_at, null);
      t.clock.advance(DAY);
      await runCaptureScheduler(t.gateway.services);
      const after = await getPayment(t, p.id);
      assert.equal(after.status, 'partially_captured');
      assert.equal(after.amount_captured, 250);
      assert.equal(acquirer.count('capture', p.id), 1);
    });

    it('a void cancels the delayed capture', async () => {
      const acquirer = countAcquirerCalls([t.gateway]);
      const p = await authorisedPayment(t, { capture: 'auto', capture_delay: '12h' });
      const res = await post(t, `/payment/${p.id}/void`);
      assert.equal(res.statusCode, 200);
      assert.equal(res.json().capture_at, null);
      t.clock.advance(12 * HOUR);
      await runCaptureScheduler(t.gateway.services);
      assert.equal((await getPayment(t, p.id)).status, 'voided');
      assert.equal(acquirer.count('capture', p.id), 0);
    });

    it('a void the acquirer refuses still calls the delayed capture off: the merchant wanted the money released', async () => {
      const inner = t.gateway.services.ctx.acquirer;
      t.gateway.services.ctx.acquirer = Object.assign(Object.create(inner) as Acquirer, {
        void: async (_req: CaptureRequest): Promise<SimpleResult> => ({ outcome: 'failed', code: 'void_refused', message: 'past the cut-off for voids.' }),
      });
      const acquirer = countAcquirerCalls([t.gateway]);
      const p = await authorisedPayment(t, { capture: 'auto', capture_delay: '12h' });
      const res = await post(t, `/payment/${p.id}/void`);
      assert.equal(res.statusCode, 422, res.body);
      assert.equal(res.json().code, 'void_failed');
      assert.match(res.json().detail, /delayed capture is called off/);
      const after = await getPayment(t, p.id);
      assert.equal(after.status, 'authorised');
      assert.deepEqual(await eventTypes(t, p.id), ['payment.created', 'payment.authorised', 'payment.void_failed']);
      assert.equal((after as unknown as { capture_at: string | null }).capture_at, null);
      t.clock.advance(12 * HOUR);
      await runCaptureScheduler(t.gateway.services);
      assert.equal((await getPayment(t, p.id)).status, 'authorised');
      assert.equal(acquirer.count('capture', p.id), 0);
      // The merchant can still take the money itself.
      assert.equal((await post(t, `/payment/${p.id}/capture`)).statusCode, 200);
    });

    it('a void refused after it was answered 202 tells the merchant with payment.void_failed, and its delayed capture stays called off', async () => {
      const inner = t.gateway.services.ctx.acquirer;
      let answer: SimpleResult = { outcome: 'pending', message: 'queued at the acquirer' };
      t.gateway.services.ctx.acquirer = Object.assign(Object.create(inner) as Acquirer, {
        void: async (_req: CaptureRequest): Promise<SimpleResult> => answer,
      });
      const acquirer = countAcquirerCalls([t.gateway]);
      const p = await authorisedPayment(t, { capture: 'auto', capture_delay: '12h' });
      const res = await post(t, `/payment/${p.id}/void`);
      assert.equal(res.statusCode, 202, res.body);
      assert.equal(res.json().status, 'voiding');

      answer = { outcome: 'failed', code: 'void_refused', message: 'past the cut-off for voids.' };
      t.clock.advance(CLAIM_LEASE_MS);
      assert.equal(await runCaptureScheduler(t.gateway.services), 1);
      const after = await getPayment(t, p.id);
      assert.equal(after.status, 'authorised');
      assert.equal(after.capture_at, null);
      assert.match(after.failure_message ?? '', /void failed: past the cut-off for voids\. Its delayed capture is called off/);
      assert.deepEqual(await eventTypes(t, p.id), ['payment.created', 'payment.authorised', 'payment.void_failed']);
      const [event] = await t.gateway.services.ctx.database.db.selectFrom('events').select(['sequence']).where('payment_id', '=', p.id).where('type', '=', 'payment.void_failed').execute();
      assert.equal(event!.sequence, after.sequence);

      t.clock.advance(12 * HOUR);
      await runCaptureScheduler(t.gateway.services);
      assert.equal(acquirer.count('capture', p.id), 0);
    });

    it('a restart while a delayed capture is pending still captures it, once', async () => {
      const p = await authorisedPayment(t, { capture: 'auto', capture_delay: '1h' });
      const g2 = await restart(t);
      extra.push(g2);
      const acquirer = countAcquirerCalls([g2]);
      t.clock.advance(HOUR);
      assert.equal(await runCaptureScheduler(g2.services), 1);
      assert.equal(await runCaptureScheduler(g2.services), 0);
      const after = await getPayment(t, p.id, g2);
      assert.equal(after.status, 'captured');
      assert.equal(after.amount_captured, p.amount);
      assert.equal(acquirer.count('capture', p.id), 1);
      assert.equal(captures(await eventTypes(t, p.id, g2)), 1);
    });

    it('a capture whose process died mid-call is taken over after its lease and settled once', async () => {
      // The first process's acquirer never answers: it "dies" with the claim held.
      const calls: Array<{ op: 'capture' | 'void' | 'refund'; paymentId: string; amount: number }> = [];
      const hanging: Acquirer = Object.assign(Object.create(t.gateway.services.ctx.acquirer) as Acquirer, {
        capture: (req: CaptureRequest) => {
          calls.push({ op: 'capture' as const, paymentId: req.paymentId, amount: req.amount });
          return new Promise<SimpleResult>(() => {});
        },
      });
      const p = await authorisedPayment(t, { amount: 1000 });
      t.gateway.services.ctx.acquirer = hanging;
      void post(t, `/payment/${p.id}/capture`, { amount: 700 });
      const deadline = Date.now() + 10_000;
      while (calls.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.equal(calls.length, 1);
      assert.equal((await getPayment(t, p.id)).status, 'capturing');

      const g2 = await restart(t);
      extra.push(g2);
      const acquirer = countAcquirerCalls([g2], calls);
      t.clock.advance(CLAIM_LEASE_MS - 1);
      assert.equal(await runCaptureScheduler(g2.services), 0);
      assert.equal((await getPayment(t, p.id, g2)).status, 'capturing');
      t.clock.advance(1);
      assert.equal(await runCaptureScheduler(g2.services), 1);
      const after = await getPayment(t, p.id, g2);
      assert.equal(after.status, 'partially_captured');
      assert.equal(after.amount_captured, 700);
      // Asked twice (the acquirer dedupes by payment id), recorded once.
      assert.equal(acquirer.count('capture', p.id), 2);
      assert.deepEqual(await eventTypes(t, p.id, g2), ['payment.created', 'payment.authorised', 'payment.partially_captured']);
    });

    it('an unconfirmed capture or refund (acquirer pending) holds its claim until the acquirer confirms', async () => {
      const inner = t.gateway.services.ctx.acquirer;
      let answer: 'pending' | 'confirm' = 'pending';
      const pending = { outcome: 'pending' as const, message: 'queued at the acquirer' };
      t.gateway.services.ctx.acquirer = Object.assign(Object.create(inner) as Acquirer, {
        capture: async (req: CaptureRequest) => (answer === 'pending' ? pending : inner.capture(req)),
        refund: async (req: CaptureRequest & { refundId: string }) => (answer === 'pending' ? pending : inner.refund(req)),
      });
      const p = await authorisedPayment(t, { amount: 1000 });
      const res = await post(t, `/payment/${p.id}/capture`);
      assert.equal(res.statusCode, 202);
      assert.equal(res.json().status, 'capturing');
      const voidWhileCapturing = await post(t, `/payment/${p.id}/void`);
      assert.equal(voidWhileCapturing.statusCode, 409);
      assert.equal(voidWhileCapturing.json().code, 'payment_not_voidable');

      answer = 'confirm';
      t.clock.advance(CLAIM_LEASE_MS);
      assert.equal(await runCaptureScheduler(t.gateway.services), 1);
      assert.equal((await getPayment(t, p.id)).status, 'captured');

      answer = 'pending';
      const refund = await post(t, `/payment/${p.id}/refund`, { amount: 600 });
      assert.equal(refund.statusCode, 201);
      assert.equal(refund.json().status, 'pending');
      // The pending refund holds its amount.
      const over = await post(t, `/payment/${p.id}/refund`, { amount: 401 });
      assert.equal(over.statusCode, 409);
      assert.equal(over.json().amount_refundable, 400);

      answer = 'confirm';
      t.clock.advance(CLAIM_LEASE_MS);
      assert.equal(await runCaptureScheduler(t.gateway.services), 1);
      const list = await t.request({ method: 'GET', url: `/payment/${p.id}/refunds` });
      assert.deepEqual(list.json().data.map((r: { status: string }) => r.status), ['succeeded']);
      const after = await getPayment(t, p.id);
      assert.equal(after.status, 'partially_refunded');
      assert.equal(after.amount_refunded, 600);
      assert.deepEqual(await eventTypes(t, p.id), ['payment.created', 'payment.authorised', 'payment.captured', 'refund.succeeded']);
    });

    it('several schedulers at once capture each payment exactly once', async () => {
      // PostgreSQL: two processes sharing the work with SKIP LOCKED; SQLite is single-process, so concurrent runs in one.
      const other = dialect === 'postgres' ? await secondGateway(t) : t.gateway;
      if (other !== t.gateway) extra.push(other);
      const acquirer = countAcquirerCalls([t.gateway, other]);
      const payments = [];
      for (let i = 0; i < 8; i++) payments.push(await authorisedPayment(t, { capture: 'auto', capture_delay: '30m' }));
      t.clock.advance(30 * MINUTE);
      const runs = await Promise.all([t.gateway, other, t.gateway, other].map((g) => runCaptureScheduler(g.services, 3)));
      let more = runs.reduce((a, b) => a + b, 0);
      let total = more;
      while (more > 0) {
        more = (await Promise.all([t.gateway, other].map((g) => runCaptureScheduler(g.services, 3)))).reduce((a, b) => a + b, 0);
        total += more;
      }
      assert.equal(total, payments.length);
      for (const p of payments) {
        assert.equal((await getPayment(t, p.id)).status, 'captured');
        assert.equal(acquirer.count('capture', p.id), 1, p.id);
        assert.equal(captures(await eventTypes(t, p.id)), 1);
      }
    });

    it('a refused delayed capture (test card 4000 0000 0000 0259) is reported and not retried by itself', async () => {
      const acquirer = countAcquirerCalls([t.gateway]);
      const p = await authorisedPayment(t, { capture: 'auto', capture_delay: '30m', payment_method: { number: CAPTURE_FAILS } });
      t.clock.advance(30 * MINUTE);
      await runCaptureScheduler(t.gateway.services);
      const after = await getPayment(t, p.id);
      assert.equal(after.status, 'authorised');
      assert.equal(after.capture_at, null);
      assert.equal(after.amount_captured, 0);
      assert.match(after.failure_message ?? '', /^capture of \S+ [\d,.]+ failed: /);
      t.clock.advance(HOUR);
      await runCaptureScheduler(t.gateway.services);
      assert.equal(acquirer.count('capture', p.id), 1);
      assert.deepEqual(await eventTypes(t, p.id), ['payment.created', 'payment.authorised', 'payment.capture_failed']);
    });

    it('expires and releases an authorisation not captured within its validity', async () => {
      const acquirer = countAcquirerCalls([t.gateway]);
      const p = await authorisedPayment(t);
      const validity = t.config.authorisationValidityMs;
      assert.equal(p.expires_at, new Date(t.clock.now() + validity).toISOString());
      t.clock.advance(validity - 1);
      await sweepExpired(t.gateway.services);
      assert.equal((await getPayment(t, p.id)).status, 'authorised');

      t.clock.advance(1);
      // Past validity the capture is refused even before the sweeper has run.
      const late = await post(t, `/payment/${p.id}/capture`);
      assert.equal(late.statusCode, 409);
      assert.equal(late.json().code, 'authorisation_expired');

      await sweepExpired(t.gateway.services);
      const after = await getPayment(t, p.id);
      assert.equal(after.status, 'expired');
      assert.equal(after.expires_at, null);
      assert.deepEqual(await eventTypes(t, p.id), ['payment.created', 'payment.authorised', 'payment.expired']);
      // The void is queued with the expiry and asked by the scheduler, once.
      assert.deepEqual((await releasesOf(t, p.id)).map((r) => [r.reason, r.action, r.status, r.network_reference]), [['lapsed_authorisation', 'void', 'pending', after.network_reference]]);
      await runCaptureScheduler(t.gateway.services);
      assert.equal(acquirer.count('void', p.id), 1);
      assert.equal((await releasesOf(t, p.id))[0]!.status, 'succeeded');
      t.clock.advance(HOUR);
      await runCaptureScheduler(t.gateway.services);
      assert.equal(acquirer.count('void', p.id), 1);
      const capture = await post(t, `/payment/${p.id}/capture`);
      assert.equal(capture.statusCode, 409);
      assert.equal(capture.json().code, 'payment_not_capturable');
      assert.equal(capture.json().detail, 'an expired payment cannot be captured');
      assert.equal((await post(t, `/payment/${p.id}/refund`, { amount: 1 })).json().detail, 'an expired payment has taken no money to refund');
    });

    it('asks again for the void of an expired authorisation when the acquirer was unreachable, and stops at a refusal', async () => {
      const acquirer = countAcquirerCalls([t.gateway]);
      const reached = acquirer.void;
      const p = await authorisedPayment(t);
      const q = await authorisedPayment(t);
      t.clock.advance(t.config.authorisationValidityMs);
      await sweepExpired(t.gateway.services);
      acquirer.void = async (req) => {
        if (req.paymentId === p.id) throw new Error('connect ECONNREFUSED');
        return { outcome: 'failed', code: 'not_found', message: 'No such authorisation.' };
      };
      await runCaptureScheduler(t.gateway.services);
      const [down] = await releasesOf(t, p.id);
      assert.deepEqual([down!.status, down!.attempts, down!.last_error], ['pending', 1, 'unreachable: The acquirer could not be reached.']);
      // Lapsed at the acquirer already: nothing to release, and not asked again.
      assert.equal((await releasesOf(t, q.id))[0]!.status, 'nothing_held');

      acquirer.void = reached;
      t.clock.advance(MINUTE);
      await runCaptureScheduler(t.gateway.services);
      assert.equal((await releasesOf(t, p.id))[0]!.status, 'succeeded');
      assert.equal(acquirer.count('void', p.id), 1);
      assert.equal(acquirer.count('void', q.id), 0);
    });

    it('a scheduler stopped for longer than the validity lets the authorisations expire instead of capturing them on restart', async () => {
      const p = await authorisedPayment(t, { capture: 'auto', capture_delay: '1d' });
      const atEnd = await authorisedPayment(t, { capture: 'auto', capture_delay: '7d' });
      const g2 = await restart(t);
      extra.push(g2);
      const acquirer = countAcquirerCalls([g2]);
      t.clock.advance(8 * DAY);
      // The capture loop may well run before the expiry loop in the restarted process.
      assert.equal(await runCaptureScheduler(g2.services), 0);
      await sweepExpired(g2.services);
      for (const q of [p, atEnd]) {
        const after = await getPayment(t, q.id, g2);
        assert.equal(after.status, 'expired');
        assert.equal(after.amount_captured, 0);
        assert.equal(after.capture_at, null);
        assert.match(after.failure_message ?? '', /delayed capture due at .* was not made before the authorisation expired/);
        assert.deepEqual(await eventTypes(t, q.id, g2), ['payment.created', 'payment.authorised', 'payment.expired']);
      }
      await runCaptureScheduler(g2.services);
      assert.equal(acquirer.count('capture', p.id) + acquirer.count('capture', atEnd.id), 0);
      assert.equal(acquirer.count('void', p.id), 1);
      assert.equal(acquirer.count('void', atEnd.id), 1);
    });

    it('a delayed capture a little late past the end of the validity is still captured, not expired', async () => {
      const p = await authorisedPayment(t, { capture: 'auto', capture_delay: '7d' });
      t.clock.advance(7 * DAY + LATE_CAPTURE_GRACE_MS - 1);
      await sweepExpired(t.gateway.services);
      assert.equal((await getPayment(t, p.id)).status, 'authorised');
      assert.equal(await runCaptureScheduler(t.gateway.services), 1);
      assert.equal((await getPayment(t, p.id)).status, 'captured');
    });

    it('a validity lowered while the payment page was open brings its delayed capture forward to the end of the new validity', async () => {
      const res = await post(t, '/payment/authorise', await exampleBody({ capture: 'auto', capture_delay: '7d' }));
      assert.equal(res.statusCode, 201, res.body);
      const token = (res.json() as { redirect_url: string }).redirect_url.split('/').pop()!;
      await t.gateway.close();
      t.gateway.close = async () => {};
      const g2 = await createGateway({ ...t.config, authorisationValidityMs: 2 * DAY }, pino({ level: 'silent' }), { clock: t.clock });
      extra.push(g2);
      const acquirer = countAcquirerCalls([g2]);
      await g2.services.checkout.complete(token);
      const p = await getPayment(t, res.json().id, g2);
      assert.equal(p.status, 'authorised');
      assert.equal(p.expires_at, new Date(t.clock.now() + 2 * DAY).toISOString());
      assert.equal(p.capture_at, p.expires_at);

      t.clock.advance(2 * DAY);
      await sweepExpired(g2.services);
      assert.equal(await runCaptureScheduler(g2.services), 1);
      const after = await getPayment(t, p.id, g2);
      assert.equal(after.status, 'captured');
      assert.equal(acquirer.count('capture', p.id), 1);
    });

    it('a delayed capture due at the end of the validity is captured, not expired', async () => {
      const p = await authorisedPayment(t, { capture: 'auto', capture_delay: '7d' });
      t.clock.advance(7 * DAY);
      await sweepExpired(t.gateway.services);
      assert.equal((await getPayment(t, p.id)).status, 'authorised');
      await runCaptureScheduler(t.gateway.services);
      assert.equal((await getPayment(t, p.id)).status, 'captured');
    });
  });
}

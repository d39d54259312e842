import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AUTHORISATION_GRACE_MS } from '../../src/app/checkout.js';
import type { SimpleResult } from '../../src/ports/acquirer.js';
import { runCaptureScheduler } from '../../src/workers/capture-scheduler.js';
import { sweepExpired } from '../../src/workers/expiry-sweeper.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { getPayment } from '../lifecycle/helpers.js';
import { mit, payByCard } from '../stored-cards/support.js';

/**
 * capture "auto" (the default): the hosted page's confirm asks the acquirer to authorise and
 * to capture, then records both in one transaction. If the process dies (or the database
 * write fails) after the capture succeeded and before that transaction commits, the sweeper
 * later expires the payment: besides the reversal of the authorisation (a void, which an
 * acquirer refuses for captured money), the captured amount must be refunded.
 */
for (const dialect of DIALECTS) {
  describe(`crash between the immediate capture and its record (${dialect})`, () => {
    let t: TestGateway;
    const calls: string[] = [];
    let crashNextWrite = false;
    let armed = true;
    before(async () => {
      t = await startTestGateway({ dialect });
      const acquirer = t.gateway.services.ctx.acquirer;
      const capture = acquirer.capture.bind(acquirer);
      acquirer.capture = async (req) => {
        const r = await capture(req);
        calls.push(`capture ${req.paymentId} ${r.outcome}`);
        crashNextWrite = armed; // the process dies right after the acquirer took the money
        return r;
      };
      // A real acquirer refuses to void an authorisation it has already captured.
      acquirer.void = async (req): Promise<SimpleResult> => {
        calls.push(`void ${req.paymentId}`);
        return { outcome: 'failed', code: 'already_captured', message: 'The authorisation was captured; refund it.' };
      };
      const refund = acquirer.refund.bind(acquirer);
      acquirer.refund = async (req) => {
        calls.push(`refund ${req.paymentId}`);
        return refund(req);
      };
      const db = t.gateway.services.ctx.database as { write: (fn: never) => Promise<unknown> };
      const write = db.write.bind(db);
      db.write = (fn) => {
        if (crashNextWrite) {
          crashNextWrite = false;
          return Promise.reject(new Error('simulated crash: the process died before the verdict committed'));
        }
        return write(fn);
      };
    });
    after(async () => {
      await t?.close();
    });

    it('captured money is refunded once the unrecorded payment is expired', async () => {
      const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ capture: 'auto' }) });
      assert.equal(res.statusCode, 201, res.body);
      const created = res.json() as { id: string; redirect_url: string };
      await assert.rejects(t.gateway.services.checkout.complete(created.redirect_url.split('/').pop()!), /simulated crash/);
      assert.deepEqual(calls, [`capture ${created.id} succeeded`]);

      t.clock.advance(Math.max(AUTHORISATION_GRACE_MS, t.config.hostedPageTtlMs) + 1000);
      await sweepExpired(t.gateway.services);
      await runCaptureScheduler(t.gateway.services);

      const payment = await getPayment(t, created.id);
      const releases = await t.gateway.services.ctx.database.db.selectFrom('releases').select(['action', 'reason', 'status']).where('payment_id', '=', created.id).execute();
      const summary = `payment ${payment.status}; acquirer calls: ${calls.join(', ')}; releases: ${JSON.stringify(releases)}`;
      assert.ok(calls.includes(`refund ${created.id}`), `the captured amount was never refunded: ${summary}`);
    });

    it('the same for a merchant-initiated payment (capture auto) whose verdict was never recorded', async () => {
      armed = false;
      const initial = await payByCard(t, { customer: 'cust-crash' });
      calls.length = 0;
      armed = true;
      const res = await mit(t, { token: initial.payment_method.token, previous_payment_id: initial.id });
      assert.equal(res.statusCode, 500);
      const [id] = calls.map((c) => c.split(' ')[1]!);
      t.clock.advance(AUTHORISATION_GRACE_MS + 1000);
      await sweepExpired(t.gateway.services);
      await runCaptureScheduler(t.gateway.services);
      const payment = await getPayment(t, id!);
      const releases = await t.gateway.services.ctx.database.db.selectFrom('releases').select(['action', 'reason', 'status']).where('payment_id', '=', id!).execute();
      assert.ok(calls.includes(`refund ${id}`), `the captured amount was never refunded: payment ${payment.status}; acquirer calls: ${calls.join(', ')}; releases: ${JSON.stringify(releases)}`);
    });
  });
}

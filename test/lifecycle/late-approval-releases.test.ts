import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AUTHORISATION_GRACE_MS } from '../../src/app/checkout.js';
import type { Acquirer, SimpleResult } from '../../src/ports/acquirer.js';
import { runCaptureScheduler } from '../../src/workers/capture-scheduler.js';
import { RELEASE_RETRY, queueRelease, retryDueReleases } from '../../src/app/releases.js';
import { createLogger } from '../../src/logger.js';
import { sweepExpired } from '../../src/workers/expiry-sweeper.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { mit, payByCard } from '../stored-cards/support.js';

function gate<T>() {
  let open!: (v: T) => void;
  const opened = new Promise<T>((r) => (open = r));
  return { opened, open };
}

/**
 * A merchant-initiated payment whose acquirer answers after the expiry sweeper gave up on it
 * (queuing a void and, for its immediate capture, a refund): whatever the approval left taken
 * or held must still be released, whatever state those two releases are in when it arrives.
 */
for (const dialect of DIALECTS) {
  describe(`releases when the approval comes after the expiry (${dialect})`, () => {
    let t: TestGateway;
    let acquirer: Acquirer;
    let restore: () => void;
    before(async () => {
      t = await startTestGateway({ dialect });
      acquirer = t.gateway.services.ctx.acquirer;
      const { authorise, capture, refund } = acquirer;
      const voidCall = acquirer.void;
      restore = () => Object.assign(acquirer, { authorise, capture, refund, void: voidCall });
    });
    after(() => t?.close());

    const releases = (id: string) =>
      t.gateway.services.ctx.database.db.selectFrom('releases').select(['action', 'reason', 'status']).where('payment_id', '=', id).orderBy('action').execute();

    /** Starts an MIT whose authorisation waits for `approve`, and expires it meanwhile. */
    async function expiredWhileAuthorising(customer: string) {
      const initial = await payByCard(t, { customer });
      const authorise = acquirer.authorise.bind(acquirer);
      const approve = gate<void>();
      const asked = gate<string>();
      acquirer.authorise = async (req) => {
        asked.open(req.paymentId);
        await approve.opened;
        return authorise(req);
      };
      const answered = mit(t, { token: initial.payment_method.token as string, previous_payment_id: initial.id });
      const id = await asked.opened;
      t.clock.advance(AUTHORISATION_GRACE_MS + 1000);
      assert.equal(await sweepExpired(t.gateway.services), 1);
      return { id, approve: () => approve.open(), answered };
    }

    it('asks again for the refund whose ask was under way, made before the capture, when the approval takes it over', async () => {
      try {
        // A real acquirer: no void of captured money, no refund of money not captured yet.
        acquirer.void = async (): Promise<SimpleResult> => ({ outcome: 'failed', code: 'nothing_to_void', message: 'Nothing to void.' });
        const refundAsked = gate<void>();
        const refundAnswer = gate<void>();
        let captured = false;
        const capture = acquirer.capture.bind(acquirer);
        acquirer.capture = async (req) => {
          const r = await capture(req);
          captured ||= r.outcome === 'succeeded';
          return r;
        };
        acquirer.refund = async (): Promise<SimpleResult> => {
          // The acquirer decides when it is asked; the answer may reach us much later.
          const taken = captured;
          refundAsked.open();
          await refundAnswer.opened;
          return taken ? { outcome: 'succeeded' } : { outcome: 'failed', code: 'nothing_captured', message: 'Nothing was captured.' };
        };
        const { id, approve, answered } = await expiredWhileAuthorising('cust-refund-in-flight');
        const scheduler = runCaptureScheduler(t.gateway.services);
        await refundAsked.opened;
        // The approval and its capture arrive while the expiry's refund is being asked…
        approve();
        assert.equal((await answered).statusCode, 201);
        // …and that ask's answer, "nothing captured", comes after them.
        refundAnswer.open();
        await scheduler;
        assert.deepEqual((await releases(id)).map((r) => [r.action, r.reason, r.status]), [
          ['refund', 'late_approval', 'pending'],
          ['void', 'unconfirmed_authorisation', 'nothing_held'],
        ]);
        await runCaptureScheduler(t.gateway.services);
        assert.deepEqual((await releases(id)).map((r) => r.status), ['succeeded', 'nothing_held']);
      } finally {
        restore();
      }
    });

    it('voids an approval that was not captured, though the expiry refund is still pending', async () => {
      try {
        acquirer.capture = async (): Promise<SimpleResult> => ({ outcome: 'failed', code: 'capture_refused', message: 'Refused.' });
        // The expiry's void reached the acquirer before the approval: nothing held then.
        acquirer.void = async (): Promise<SimpleResult> => ({ outcome: 'failed', code: 'no_authorisation', message: 'None.' });
        acquirer.refund = async (): Promise<SimpleResult> => {
          throw new Error('ECONNRESET');
        };
        const { id, approve, answered } = await expiredWhileAuthorising('cust-uncaptured');
        await runCaptureScheduler(t.gateway.services);
        approve();
        assert.equal((await answered).statusCode, 201);
        const after = await releases(id);
        assert.ok(after.some((r) => r.action === 'void' && r.reason === 'late_approval' && r.status === 'pending'), JSON.stringify(after));
      } finally {
        restore();
      }
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`a release given up on, as the operator sees it (${dialect})`, () => {
    it('is logged with its merchant and counted in tzero_releases_total, for an alert: money is held that an operator must release', async () => {
      const lines: Array<{ level: number; msg: string; merchant_id?: string; payment_id?: string }> = [];
      const token = 'op_' + 'q'.repeat(40);
      const t = await startTestGateway({ dialect, log: createLogger('info', { write: (text: string) => void lines.push(JSON.parse(text)) }), env: { OPERATOR_TOKEN: token } });
      try {
        const paid = await payByCard(t, { customer: 'cust-release-given-up' });
        const { ctx } = t.gateway.services;
        const payment = await ctx.database.db.selectFrom('payments').selectAll().where('id', '=', paid.id as string).executeTakeFirstOrThrow();
        await ctx.database.write((trx) => queueRelease(trx, ctx, payment, 'late_approval', null, false));
        ctx.acquirer.void = async () => {
          throw new Error('connect ECONNREFUSED acquirer');
        };
        t.clock.advance(RELEASE_RETRY.windowMs + 60_000);
        assert.equal(await retryDueReleases(ctx, 10), 1);
        const gaveUp = lines.filter((l) => l.level === 50 && /gave up releasing money/.test(l.msg));
        assert.deepEqual(gaveUp.map((l) => [l.merchant_id, l.payment_id]), [[t.credentials.merchant_id, paid.id]]);
        const scrape = await t.app.inject({ method: 'GET', url: '/operator/metrics', headers: { authorization: `Bearer ${token}` } });
        assert.match(scrape.body, /^# TYPE tzero_releases_total counter$/m);
        assert.match(scrape.body, /^tzero_releases_total\{outcome="failed"\} 1$/m);
      } finally {
        await t.close();
      }
    });
  });
}

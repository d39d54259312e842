import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem } from '../support/http.js';
import { runCli } from '../support/process.js';
import { paidPayment, Receiver, registerEndpoint, waitFor } from '../webhooks/support.js';

const OPERATOR_TOKEN = 'op_' + randomBytes(24).toString('hex');
const CARD = '4242424242424242';

interface SupportView {
  merchant_id: string;
  merchant_status: 'active' | 'suspended';
  merchant_suspended_at: string | null;
  merchant_suspended_reason: string | null;
  payment: { id: string; status: string; page_open: boolean; redirect_url?: unknown; payment_method: { card: { bin: string; last4: string } } };
  events: Array<{ id: string; type: string; deliveries: Array<{ kind: string; status: string; endpoint_id: string | null; endpoint_origin?: string | null; url?: unknown; recipient: string | null; attempt_count: number; last_status_code: number | null }> }>;
  older_events_left_out: boolean;
}

/**
 * A merchant asks "what happened to pay_…?": the operator answers from the CLI or the
 * operator API, without the merchant's key, seeing what the merchant would see.
 */
for (const dialect of DIALECTS) {
  describe(`payment show, for support (${dialect})`, () => {
    let t: TestGateway;
    let receiver: Receiver;
    let paid: string;
    let open: string;
    let endpointId: string;
    /** Merchants put credentials in callback paths and queries: support sees the origin only. */
    const CALLBACK_SECRET = 'tok3n-s3cret';

    before(async () => {
      t = await startTestGateway({ dialect, workers: true, env: { OPERATOR_TOKEN, DISPATCH_POLL_MS: '50' } });
      receiver = await new Receiver().start();
      receiver.mode = 'fail';
      endpointId = (await registerEndpoint(t, `${receiver.url}/hooks/${CALLBACK_SECRET}?auth=${CALLBACK_SECRET}`, { events: ['payment.captured'] })).id;
      paid = await paidPayment(t);
      const created = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody() });
      open = created.json().id;
      const captured = (await t.request({ method: 'GET', url: `/events?payment=${paid}&type=payment.captured` })).json().data[0].id as string;
      await waitFor('the failing callback tried and recorded', async () => {
        const { deliveries } = (await t.request({ method: 'GET', url: `/events/${captured}` })).json() as SupportView['events'][number];
        return deliveries.some((d) => d.kind === 'webhook' && d.last_status_code === 500);
      });
    });
    after(async () => {
      await receiver?.stop();
      await t?.close();
    });

    const operator = (url: string, token = OPERATOR_TOKEN) => t.app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });

    it('shows the payment as its merchant sees it, its events oldest first and what became of each delivery', async () => {
      const res = await operator(`/operator/payments/${paid}`);
      assert.equal(res.statusCode, 200, res.body);
      const view = res.json() as SupportView;
      assert.equal(view.merchant_id, t.credentials.merchant_id);
      assert.equal(view.payment.status, 'captured');
      assert.equal(view.payment.page_open, false);
      assert.deepEqual([view.payment.payment_method.card.bin, view.payment.payment_method.card.last4], [CARD.slice(0, 6), CARD.slice(-4)]);
      assert.deepEqual(view.events.map((e) => e.type), ['payment.created', 'payment.authorised', 'payment.captured']);
      const callback = view.events[2]!.deliveries.find((d) => d.kind === 'webhook');
      assert.equal(callback?.endpoint_origin, new URL(receiver.url).origin);
      assert.equal(callback?.endpoint_id, endpointId);
      assert.equal(callback && 'url' in callback, false);
      assert.ok(!res.body.includes(CALLBACK_SECRET), 'no callback path or query');
      assert.equal(callback?.last_status_code, 500, 'the failing answer is shown');
      assert.ok(view.events.some((e) => e.deliveries.some((d) => d.kind === 'email' && d.recipient === 'merchant@sandbox.test')), 'the sandbox e-mails are listed');
      assert.equal(view.older_events_left_out, false);
      assert.ok(!res.body.includes(CARD) && !res.body.includes(CARD.slice(0, 8)), 'no more of the card than BIN and last 4');
    });

    it("never shows the open payment page's link, only that one is open", async () => {
      const res = await operator(`/operator/payments/${open}`);
      assert.equal(res.statusCode, 200, res.body);
      const view = res.json() as SupportView;
      assert.equal(view.payment.status, 'requires_action');
      assert.equal(view.payment.page_open, true);
      assert.equal('redirect_url' in view.payment, false);
      assert.ok(!res.body.includes('/pay/'), res.body);
    });

    it('needs the operator token, names an unknown payment, and audits every look', async () => {
      assertProblem(await operator(`/operator/payments/${paid}`, t.credentials.secret_key), 401, 'unauthorized');
      assertProblem(await operator('/operator/payments/pay_00000000000000000000000000000000'), 404, 'payment_not_found');
      const looks = await t.gateway.services.ctx.database.db.selectFrom('audit_log').select(['actor', 'merchant_id', 'target']).where('action', '=', 'payment.view').execute();
      assert.deepEqual(
        looks.map((r) => `${r.actor} ${r.merchant_id} ${r.target}`).sort(),
        [paid, open].map((id) => `operator:api ${t.credentials.merchant_id} ${id}`).sort(),
      );
    });

    if (dialect === 'sqlite') {
      it('npm run cli -- payment show, as text and --json, audited as the operating-system user', async () => {
        const env = { DATA_DIR: t.dataDir };
        const [text, asJson, missing] = await Promise.all([runCli(['payment', 'show', paid], env), runCli(['payment', 'show', paid, '--json'], env), runCli(['payment', 'show', 'pay_00000000000000000000000000000000'], env)]);
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, new RegExp(`^${paid}  captured\\n`));
        assert.match(text.stdout, /card visa 424242…4242, expires 12\/2077/);
        assert.match(text.stdout, /events, oldest first:\n {2}\S+ {2}payment\.created/);
        assert.match(text.stdout, new RegExp(`webhook ${new URL(receiver.url).origin.replace(/[.]/g, '\\.')} \\(${endpointId}\\): (pending|failed) after \\d+ tr(y|ies), last answer 500`));
        assert.equal((JSON.parse(asJson.stdout) as SupportView).payment.id, paid);
        assert.ok(!text.stdout.includes(CALLBACK_SECRET) && !asJson.stdout.includes(CALLBACK_SECRET), 'no callback path or query');
        // A decline says what the merchant is told to do, as GET /payment/{id} does.
        const declined = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ payment_method: { number: '4000000000000002' } }) });
        await t.gateway.services.checkout.complete(new URL(declined.json().redirect_url).pathname.split('/').pop()!);
        const shownDeclined = await runCli(['payment', 'show', declined.json().id], env);
        assert.match(shownDeclined.stdout, /\ndeclined do_not_honor: .+ \(retry advice: do_not_retry\)\n/);
        // What the merchant wrote cannot start a line of its own in the operator's terminal.
        const forged = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ reference: 'order-1\n  1970-01-01T00:00:00.000Z  payment.captured' }) });
        const shownForged = await runCli(['payment', 'show', forged.json().id], env);
        assert.equal(shownForged.code, 0, shownForged.stderr);
        assert.match(shownForged.stdout, /reference order-1\\u000a {2}1970/);
        assert.doesNotMatch(shownForged.stdout, /^ {2}1970/m);
        assert.equal(missing.code, 1);
        assert.match(missing.stderr, /^error: no payment pay_0{32} \[payment_not_found\]/);
        const looks = await t.gateway.services.ctx.database.db.selectFrom('audit_log').select('actor').where('action', '=', 'payment.view').where('source', '=', 'cli').execute();
        assert.deepEqual(looks.map((r) => r.actor), Array(4).fill(`operator:cli:${userInfo().username}`));
      });
    }

    it("says whether the payment's merchant is suspended, since when and why; the merchant's own view never carries the reason", async () => {
      const active = (await operator(`/operator/payments/${paid}`)).json() as SupportView;
      assert.deepEqual([active.merchant_status, active.merchant_suspended_at, active.merchant_suspended_reason], ['active', null, null]);
      const merchants = t.gateway.services.merchants;
      const reason = 'card testing reported by the acquirer';
      await merchants.suspendMerchant(t.credentials.merchant_id, reason);
      try {
        const [listed] = (await merchants.listMerchants()).filter((m) => m.id === t.credentials.merchant_id);
        const suspended = (await operator(`/operator/payments/${paid}`)).json() as SupportView;
        assert.deepEqual([suspended.merchant_status, suspended.merchant_suspended_at, suspended.merchant_suspended_reason], ['suspended', listed!.suspended_at, reason]);
        const own = await t.request({ method: 'GET', url: `/payment/${paid}` });
        assert.equal(own.statusCode, 200, own.body);
        assert.ok(!own.body.includes(reason) && !own.body.includes('suspended'), own.body);
        if (dialect === 'sqlite') {
          const text = await runCli(['payment', 'show', paid], { DATA_DIR: t.dataDir });
          assert.equal(text.code, 0, text.stderr);
          assert.match(text.stdout, new RegExp(`\\nmerchant suspended since ${listed!.suspended_at!.replace(/[.]/g, '\\.')}: ${reason}\\n`));
        }
      } finally {
        await merchants.resumeMerchant(t.credentials.merchant_id);
      }
    });

    it('lists the refunds, a pending one too: its amount is held though no event tells of it yet', async () => {
      const id = await paidPayment(t, { amount: 1000, currency: 'JPY' });
      const refund = (amount: number) => t.request({ method: 'POST', url: `/payment/${id}/refund`, payload: { amount } });
      assert.equal((await refund(300)).json().status, 'succeeded');
      const acquirer = t.gateway.services.ctx.acquirer;
      const answering = acquirer.refund;
      acquirer.refund = () => Promise.reject(new Error('the acquirer did not answer'));
      try {
        const held = await refund(200);
        assert.equal(held.json().status, 'pending', held.body);
      } finally {
        acquirer.refund = answering;
      }
      const view = (await operator(`/operator/payments/${id}`)).json() as SupportView & { refunds: Array<{ amount: number; currency: string; status: string }> };
      assert.equal(view.payment.status, 'partially_refunded');
      assert.deepEqual(view.refunds.map((r) => [r.amount, r.currency, r.status]), [[300, 'JPY', 'succeeded'], [200, 'JPY', 'pending']]);
      if (dialect === 'sqlite') {
        const text = await runCli(['payment', 'show', id], { DATA_DIR: t.dataDir });
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, /\nrefunds, oldest first:\n {2}\S+ {2}re_[0-9a-f]{32} {2}JPY 300 succeeded\n {2}\S+ {2}re_[0-9a-f]{32} {2}JPY 200 pending: the acquirer has not answered yet; the amount is held\n/);
        assert.match(text.stdout, /refunded JPY 300 \(JPY 200 more pending\)/);
      }
    });
  });
}

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { InboxMessage } from '../../src/adapters/mail/eml-inbox.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { MailSink } from '../support/smtp-sink.js';
import { advance, paidPayment, waitFor } from '../webhooks/support.js';

interface Delivery {
  kind: string;
  recipient: string | null;
  status: string;
  attempts: Array<{ status_code: number | null; succeeded: boolean; error: string | null }>;
}

async function deliveriesOf(t: TestGateway, paymentId: string, type: string): Promise<Delivery[]> {
  const list = (await t.request({ method: 'GET', url: `/events?payment=${paymentId}&type=${type}` })).json() as { data: Array<{ id: string }> };
  return ((await t.request({ method: 'GET', url: `/events/${list.data[0]!.id}` })).json() as { deliveries: Delivery[] }).deliveries;
}

function assertNoCardNumber(m: InboxMessage): void {
  for (const part of [m.text, m.html ?? '', m.raw]) {
    assert.ok(!part.includes('4242424242424242'), 'no PAN');
    assert.ok(!part.includes('424242'), 'not even the BIN');
  }
}

for (const dialect of DIALECTS) {
  describe(`notification e-mail over SMTP (${dialect})`, () => {
    let t: TestGateway;
    let sink: MailSink;
    before(async () => {
      sink = await new MailSink().start();
      t = await startTestGateway({ dialect, workers: true, env: { SMTP_URL: `smtp://127.0.0.1:${sink.port}`, MAIL_FROM: 'tZero Pay <payments@tzero-pay.test>', DISPATCH_POLL_MS: '50' } });
      await t.gateway.services.merchants.updateChannel('sandbox', { customerReceipts: true });
    });
    after(async () => {
      await t.close();
      await sink.stop();
    });

    it('sends the merchant notifications and the customer receipt, in text and HTML, with a masked card', async () => {
      const paymentId = await paidPayment(t, { reference: 'order-42' });
      await waitFor('two notifications and a receipt', () => sink.to('merchant@sandbox.test').length >= 2 && sink.to('customer@example.com').length >= 1);

      const captured = sink.to('merchant@sandbox.test').find((m) => m.message.subject.includes('captured'))!;
      assert.ok(captured, 'a payment.captured notification');
      const m = captured.message;
      assert.equal(m.subject, '[Sandbox Shop] Payment was captured: USD 1.00 (order-42)');
      assert.match(m.from, /payments@tzero-pay\.test/);
      for (const expected of ['USD 1.00', 'order-42', 'Visa •••• 4242', 'Sandbox merchant', 'Sandbox Shop', 'captured', paymentId]) {
        assert.ok(m.text.includes(expected), `text has ${expected}`);
        assert.ok(m.html?.includes(expected), `html has ${expected}`);
      }
      assertNoCardNumber(m);
      assert.ok(sink.to('merchant@sandbox.test').some((x) => x.message.subject.includes('was authorised')));

      const receipts = sink.to('customer@example.com');
      assert.equal(receipts.length, 1, 'one receipt for an immediately captured payment');
      const receipt = receipts[0]!.message;
      assert.equal(receipt.subject, 'Your receipt from Sandbox Shop: USD 1.00');
      assert.ok(receipt.text.includes('Paid'));
      assert.ok(receipt.text.includes('Visa •••• 4242'));
      assertNoCardNumber(receipt);

      await waitFor('the e-mail deliveries to be recorded', async () => (await deliveriesOf(t, paymentId, 'payment.captured')).filter((d) => d.kind === 'email' && d.status === 'succeeded').length === 2);
      const emails = (await deliveriesOf(t, paymentId, 'payment.captured')).filter((d) => d.kind === 'email');
      assert.deepEqual(emails.map((d) => d.recipient).sort(), ['customer@example.com', 'merchant@sandbox.test']);
      for (const d of emails) assert.equal(d.attempts[0]!.status_code, 250);
    });

    it('retries a temporary SMTP refusal and gives up on a permanent one', async () => {
      await t.gateway.services.merchants.updateChannel('sandbox', { notifyEmails: ['merchant@sandbox.test', 'gone@sandbox.test'], notifyEvents: ['payment.captured'], customerReceipts: false });
      sink.refuse.set('merchant@sandbox.test', 451);
      sink.refuse.set('gone@sandbox.test', 550);
      const before = sink.to('merchant@sandbox.test').length;
      const paymentId = await paidPayment(t, { reference: 'order-43' });
      await waitFor('both first attempts', async () => (await deliveriesOf(t, paymentId, 'payment.captured')).filter((d) => d.kind === 'email' && d.attempts.length >= 1).length === 2);
      const first = await deliveriesOf(t, paymentId, 'payment.captured');
      const gone = first.find((d) => d.recipient === 'gone@sandbox.test')!;
      assert.equal(gone.status, 'failed', 'a 5xx refusal is not retried');
      assert.equal(gone.attempts[0]!.status_code, 550);
      const temp = first.find((d) => d.recipient === 'merchant@sandbox.test')!;
      assert.equal(temp.status, 'pending');
      assert.equal(temp.attempts[0]!.status_code, 451);

      advance(t, 3_600_000);
      await waitFor('the retried notification', () => sink.to('merchant@sandbox.test').length === before + 1);
      assert.ok(sink.to('merchant@sandbox.test').at(-1)!.message.subject.includes('order-43'));
      assert.equal(sink.to('gone@sandbox.test').length, 0);
    });
  });
}

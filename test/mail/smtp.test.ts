import assert from 'node:assert/strict';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { SMTPServer } from 'smtp-server';
import type { InboxMessage } from '../../src/adapters/mail/eml-inbox.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { MailSink } from '../support/smtp-sink.js';
import { advance, paidPayment, waitFor } from '../webhooks/support.js';
import { mit, payByCard } from '../stored-cards/support.js';

interface Delivery {
  kind: string;
  recipient: string | null;
  status: string;
  attempts: Array<{ status_code: number | null; succeeded: boolean; error: string | null; response_body: string | null }>;
}

async function deliveriesOf(t: TestGateway, paymentId: string, type: string): Promise<Delivery[]> {
  const list = (await t.request({ method: 'GET', url: `/events?payment=${paymentId}&type=${type}` })).json() as { data: Array<{ id: string }> };
  return ((await t.request({ method: 'GET', url: `/events/${list.data[0]!.id}` })).json() as { deliveries: Delivery[] }).deliveries;
}

/**
 * An SMTP server whose answers carry NUL bytes: it refuses `refused@…` and accepts other
 * recipients' messages. smtp-server (MailSink) replaces control characters in what it sends.
 */
async function nulAnsweringSmtp(): Promise<Server> {
  const server = createServer((socket) => {
    let pending = '';
    let inData = false;
    const reply = (line: string): string | Buffer => {
      if (inData) {
        if (line !== '.') return '';
        inData = false;
        return Buffer.from('250 queued\0as 1\r\n');
      }
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'RCPT' && /refused@/i.test(line)) return Buffer.from('550 no\0such\0mailbox\r\n');
      if (verb === 'DATA') {
        inData = true;
        return '354 go on\r\n';
      }
      if (verb === 'QUIT') return '221 bye\r\n';
      return '250 ok\r\n';
    };
    socket.write('220 nul.test ESMTP\r\n');
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let end = pending.indexOf('\r\n'); end >= 0; end = pending.indexOf('\r\n')) {
        const answer = reply(pending.slice(0, end));
        pending = pending.slice(end + 2);
        if (answer.length) socket.write(answer);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** The replies a scripted server gives where they differ from plain acceptance. */
interface SmtpScript {
  greeting?: string;
  mailFrom?: string;
  rcptTo?: string;
  /** The answer to the message, after its closing dot. */
  data?: string;
}

/** An SMTP server that answers as `script()` says at the moment it is asked. */
async function scriptedSmtp(script: () => SmtpScript): Promise<Server> {
  const server = createServer((socket) => {
    const s = script();
    let pending = '';
    let inData = false;
    const reply = (line: string): string => {
      if (inData) {
        if (line !== '.') return '';
        inData = false;
        return `${s.data ?? '250 queued'}\r\n`;
      }
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'MAIL') return `${s.mailFrom ?? '250 ok'}\r\n`;
      if (verb === 'RCPT') return `${s.rcptTo ?? '250 ok'}\r\n`;
      if (verb === 'DATA') {
        inData = true;
        return '354 go on\r\n';
      }
      if (verb === 'QUIT') return '221 bye\r\n';
      return '250 ok\r\n';
    };
    socket.write(`${s.greeting ?? '220 scripted.test ESMTP'}\r\n`);
    socket.on('data', (chunk: Buffer) => {
      pending += chunk.toString('latin1');
      for (let end = pending.indexOf('\r\n'); end >= 0; end = pending.indexOf('\r\n')) {
        const answer = reply(pending.slice(0, end));
        pending = pending.slice(end + 2);
        if (answer) socket.write(answer);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return server;
}

/** A pino logger whose lines land, parsed, in `lines`. */
function capturingLog(lines: Array<Record<string, unknown>>): pino.Logger {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return pino({ level: 'info' }, sink);
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
      assert.equal(m.subject, '[Sandbox Shop] Sandbox payment was captured: USD 1.00 (order-42)');
      assert.match(m.from, /payments@tzero-pay\.test/);
      assert.match(m.text, /^A payment on your channel Sandbox Shop was captured\. This is a sandbox channel: no real money moved\.$/m);
      for (const expected of ['USD 1.00', 'order-42', 'Visa •••• 4242', 'Sandbox merchant', 'Sandbox Shop', 'captured', paymentId]) {
        assert.ok(m.text.includes(expected), `text has ${expected}`);
        assert.ok(m.html?.includes(expected), `html has ${expected}`);
      }
      assertNoCardNumber(m);
      assert.ok(sink.to('merchant@sandbox.test').some((x) => x.message.subject.includes('was authorised')));

      const receipts = sink.to('customer@example.com');
      assert.equal(receipts.length, 1, 'one receipt for an immediately captured payment');
      const receipt = receipts[0]!.message;
      assert.equal(receipt.subject, 'Your test receipt from Sandbox Shop: USD 1.00');
      assert.match(receipt.text, /^Thank you for your payment to Sandbox Shop\. This was a test in the shop's sandbox: no real money moved on your card\.$/m);
      assert.ok(receipt.text.includes('Paid'));
      assert.ok(receipt.text.includes('Visa •••• 4242'));
      assertNoCardNumber(receipt);

      await waitFor('the e-mail deliveries to be recorded', async () => (await deliveriesOf(t, paymentId, 'payment.captured')).filter((d) => d.kind === 'email' && d.status === 'succeeded').length === 2);
      const emails = (await deliveriesOf(t, paymentId, 'payment.captured')).filter((d) => d.kind === 'email');
      assert.deepEqual(emails.map((d) => d.recipient).sort(), ['customer@example.com', 'merchant@sandbox.test']);
      for (const d of emails) assert.equal(d.attempts[0]!.status_code, 250);
    });

    it("gives the customer the channel's support address in the receipt and as its Reply-To, never the merchant's notifications", async () => {
      await t.gateway.services.merchants.updateChannel('sandbox', { supportEmail: 'help@shop.example' });
      try {
        const paymentId = await paidPayment(t, { reference: 'order-support' });
        const about = (to: string) => sink.to(to).filter((m) => m.message.text.includes(paymentId)).map((m) => m.message);
        await waitFor('a receipt and the notifications', () => about('customer@example.com').length >= 1 && about('merchant@sandbox.test').length >= 2);
        const receipt = about('customer@example.com')[0]!;
        assert.match(receipt.raw, /^Reply-To: help@shop\.example\r?$/m);
        assert.match(receipt.text, /Questions about this payment\? Write to Sandbox Shop at help@shop\.example \(or reply to this e-mail\) and quote the payment ID\./);
        assert.ok(receipt.html?.includes('help@shop.example'), 'the HTML part names it too');
        for (const notice of about('merchant@sandbox.test')) assert.doesNotMatch(notice.raw, /^Reply-To:/im);
      } finally {
        await t.gateway.services.merchants.updateChannel('sandbox', { supportEmail: null });
      }
    });

    it('tells the customer and the merchant what a partial capture took, not the amount authorised', async () => {
      await t.gateway.services.merchants.updateChannel('sandbox', { notifyEmails: ['merchant@sandbox.test'], notifyEvents: ['payment.partially_captured', 'refund.succeeded'], customerReceipts: true });
      const paymentId = await paidPayment(t, { reference: 'order-partial', amount: 1000, capture: 'manual' });
      const capture = await t.request({ method: 'POST', url: `/payment/${paymentId}/capture`, payload: { amount: 600 } });
      assert.equal(capture.statusCode, 200, capture.body);
      assert.equal(capture.json().status, 'partially_captured');
      const refund = await t.request({ method: 'POST', url: `/payment/${paymentId}/refund`, payload: { amount: 100 } });
      assert.equal(refund.statusCode, 201, refund.body);
      t.gateway.services.outbox.notify();
      const about = (to: string) => sink.to(to).filter((m) => m.message.text.includes(paymentId)).map((m) => m.message);
      await waitFor('the capture and refund mails', () => about('merchant@sandbox.test').length >= 2 && about('customer@example.com').length >= 3);

      const receipt = about('customer@example.com').find((m) => m.subject.startsWith('Your test receipt') && m.text.includes('Paid'))!;
      assert.equal(receipt.subject, 'Your test receipt from Sandbox Shop: USD 6.00');
      assert.ok(!receipt.text.includes('USD 10.00'), receipt.text);
      const refunded = about('customer@example.com').find((m) => m.subject.startsWith('Your test refund'))!;
      assert.equal(refunded.subject, 'Your test refund from Sandbox Shop: USD 1.00');
      assert.match(refunded.text, /Payment amount: +USD 6\.00/);
      const note = about('merchant@sandbox.test').find((m) => m.subject.includes('partly captured'))!;
      assert.equal(note.subject, '[Sandbox Shop] Sandbox payment was partly captured: USD 6.00 (order-partial)');
      assert.match(note.text, /Captured: +USD 6\.00/);
      assert.match(note.text, /Authorised: +USD 10\.00/);
      const refundNote = about('merchant@sandbox.test').find((m) => m.text.includes('refund.succeeded'))!;
      assert.equal(refundNote.subject, '[Sandbox Shop] Sandbox payment was partly refunded: USD 1.00 (order-partial)');
      assert.match(refundNote.text, /^Refunded: +USD 1\.00$/m);
    });

    it('tells the merchant by default when money was not taken as authorised: a refused capture, a partial capture', async () => {
      const merchant = t.credentials.merchant_id;
      // A channel as `channel create` makes it without --notify-event: the defaults.
      await t.gateway.services.merchants.createChannel(merchant, { reference: 'defaults', name: 'Defaults Shop', mode: 'sandbox', currencies: ['USD'], returnUrls: ['/sandbox/return'], notifyEmails: ['defaults@sandbox.test'] });
      const refused = await paidPayment(t, { channel: 'defaults', reference: 'order-refused', payment_method: { number: '4000000000000259' } });
      const partial = await paidPayment(t, { channel: 'defaults', reference: 'order-part', amount: 1000, capture: 'manual' });
      assert.equal((await t.request({ method: 'POST', url: `/payment/${partial}/capture`, payload: { amount: 400 } })).statusCode, 200);
      t.gateway.services.outbox.notify();
      const subjects = (id: string) => sink.to('defaults@sandbox.test').filter((m) => m.message.text.includes(id)).map((m) => m.message.subject);
      await waitFor('the refused capture\'s mail', () => subjects(refused).some((s) => s.includes('could not be captured')));
      await waitFor('the partial capture\'s mail', () => subjects(partial).some((s) => s.includes('partly captured')));
    });

    it('tells the customer in each refund receipt how much has been refunded so far', async () => {
      await t.gateway.services.merchants.updateChannel('sandbox', { notifyEmails: ['merchant@sandbox.test'], notifyEvents: ['refund.succeeded'], customerReceipts: true });
      const paymentId = await paidPayment(t, { reference: 'order-two-refunds', amount: 1000 });
      for (const amount of [100, 250]) {
        const refund = await t.request({ method: 'POST', url: `/payment/${paymentId}/refund`, payload: { amount } });
        assert.equal(refund.statusCode, 201, refund.body);
        assert.equal(refund.json().status, 'succeeded', refund.body);
      }
      const payment = (await t.request({ method: 'GET', url: `/payment/${paymentId}` })).json() as { amount_refunded: number };
      assert.equal(payment.amount_refunded, 350);
      t.gateway.services.outbox.notify();
      const refunds = () => sink.to('customer@example.com').filter((m) => m.message.text.includes(paymentId) && m.message.subject.startsWith('Your test refund')).map((m) => m.message);
      await waitFor('both refund receipts', () => refunds().length >= 2);
      const first = refunds().find((m) => m.subject.endsWith('USD 1.00'))!;
      const second = refunds().find((m) => m.subject.endsWith('USD 2.50'))!;
      assert.match(first.text, /^Refunded so far: +USD 1\.00$/m);
      assert.match(second.text, /^Refund: +USD 2\.50$/m);
      assert.match(second.text, /^Refunded so far: +USD 3\.50$/m, second.text);
      assert.match(second.text, /^Payment amount: +USD 10\.00$/m);
      assert.ok(second.html?.includes('USD 3.50'));
    });

    it("tells the merchant why a refund failed, not the payment's own story", async () => {
      await t.gateway.services.merchants.updateChannel('sandbox', { notifyEmails: ['merchant@sandbox.test'], notifyEvents: ['refund.failed'], customerReceipts: false });
      const paymentId = await paidPayment(t, { reference: 'order-refund-fails', payment_method: { number: '4000000000005126' } });
      const refund = await t.request({ method: 'POST', url: `/payment/${paymentId}/refund`, payload: { amount: 100 } });
      assert.equal(refund.json().status, 'failed', refund.body);
      t.gateway.services.outbox.notify();
      const about = () => sink.to('merchant@sandbox.test').filter((m) => m.message.text.includes(paymentId)).map((m) => m.message);
      await waitFor('the refund.failed mail', () => about().length >= 1);
      const note = about()[0]!;
      assert.equal(note.subject, '[Sandbox Shop] Sandbox payment could not be refunded: USD 1.00 (order-refund-fails)');
      assert.match(note.text, /Failure code: +refund_failed/);
      assert.match(note.text, new RegExp(`Reason: +${refund.json().failure_message.replace(/[.()]/g, '\\$&')}`));
    });

    it('does not tell the merchant a merchant-initiated payment waits for the customer', async () => {
      await t.gateway.services.merchants.updateChannel('sandbox', { notifyEmails: ['merchant@sandbox.test'], notifyEvents: ['payment.created'], customerReceipts: false });
      const initial = await payByCard(t, { customer: 'cust-mit-mail' });
      const charged = await mit(t, { token: initial.payment_method.token, previous_payment_id: initial.id });
      assert.equal(charged.statusCode, 201, charged.body);
      const mitId = charged.json().id as string;
      t.gateway.services.outbox.notify();
      const about = (id: string) => sink.to('merchant@sandbox.test').filter((m) => m.message.text.includes(id)).map((m) => m.message);
      await waitFor('both payment.created mails', () => about(initial.id).length >= 1 && about(mitId).length >= 1);
      assert.match(about(initial.id)[0]!.subject, /^\[Sandbox Shop\] Sandbox payment is waiting for the customer: /);
      const created = about(mitId)[0]!;
      assert.equal(created.subject, '[Sandbox Shop] Sandbox payment was created as a merchant-initiated payment: USD 25.00 (merchant_txn_ref)');
      assert.doesNotMatch(created.text, /waiting for the customer/);
    });

    it('tells the customer when a delayed capture will charge them, and the merchant when it is due', async () => {
      await t.gateway.services.merchants.updateChannel('sandbox', { notifyEmails: ['merchant@sandbox.test'], notifyEvents: ['payment.authorised'], customerReceipts: true });
      const paymentId = await paidPayment(t, { capture_delay: '1d' });
      const payment = (await t.request({ method: 'GET', url: `/payment/${paymentId}` })).json() as { status: string; capture_at: string };
      assert.equal(payment.status, 'authorised');
      const receipts = () => sink.to('customer@example.com').filter((m) => m.message.text.includes(paymentId)).map((m) => m.message);
      await waitFor('the receipt of the authorisation', () => receipts().length >= 1);
      const when = `${new Date(payment.capture_at).toUTCString().slice(0, 22)} UTC`;
      assert.match(receipts()[0]!.text, new RegExp(`Status: +Authorised — you will be charged on ${when}$`, 'm'));
      assert.doesNotMatch(receipts()[0]!.text, /when the order ships/);
      const notes = () => sink.to('merchant@sandbox.test').filter((m) => m.message.text.includes(paymentId)).map((m) => m.message);
      await waitFor('the notification of the authorisation', () => notes().length >= 1);
      assert.match(notes()[0]!.text, new RegExp(`^Capture due: +${when}, automatically`, 'm'));
      // Every time in an e-mail is written one way: the event's date as the capture's.
      for (const m of [receipts()[0]!, notes()[0]!]) {
        assert.match(m.text, /^Date: +(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2} UTC\r?$/m);
        assert.doesNotMatch(m.text, /GMT/);
      }
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

    it('retries while the server refuses the gateway\'s own login, and says so at boot without the password', async () => {
      let loginAccepted = false;
      const received: string[] = [];
      const smtp = new SMTPServer({
        authOptional: false,
        allowInsecureAuth: true,
        disabledCommands: ['STARTTLS'],
        logger: false,
        onAuth: (auth, _session, callback) =>
          loginAccepted ? callback(null, { user: auth.username }) : callback(Object.assign(new Error('Authentication credentials invalid'), { responseCode: 535 })),
        onData: (stream, session, callback) => {
          stream.resume();
          stream.on('end', () => {
            received.push(...session.envelope.rcptTo.map((r) => r.address));
            callback();
          });
        },
      });
      await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', () => resolve()));
      const port = (smtp.server.address() as AddressInfo).port;
      const lines: Array<Record<string, unknown>> = [];
      const password = 'Rotated-S3cret';
      const own = await startTestGateway({ dialect, workers: true, log: capturingLog(lines), env: { SMTP_URL: `smtp://mailer:${password}@127.0.0.1:${port}`, DISPATCH_POLL_MS: '50' } });
      try {
        await waitFor('the boot check to be logged', () => lines.some((l) => String(l.msg).startsWith('SMTP check failed')));
        const check = lines.find((l) => String(l.msg).startsWith('SMTP check failed'))!;
        assert.equal(check.level, 50);
        assert.match(String(check.msg), /refused the login/);
        assert.deepEqual([check.code, check.response_code, check.smtp], ['EAUTH', 535, `smtp 127.0.0.1:${port}`]);

        await own.gateway.services.merchants.updateChannel('sandbox', { notifyEmails: ['merchant@sandbox.test'], notifyEvents: ['payment.captured'], customerReceipts: false });
        const paymentId = await paidPayment(own);
        const notification = async () => (await deliveriesOf(own, paymentId, 'payment.captured')).find((d) => d.kind === 'email');
        await waitFor('the first attempt', async () => ((await notification())?.attempts.length ?? 0) > 0);
        const first = (await notification())!;
        assert.equal(first.status, 'pending', 'a refused login is the gateway\'s problem, not the message\'s: it is retried');
        assert.equal(first.attempts[0]!.status_code, 535);

        loginAccepted = true;
        advance(own, 3_600_000);
        await waitFor('the retried notification', async () => (await notification())!.status === 'succeeded');
        assert.deepEqual(received, ['merchant@sandbox.test']);
        assert.ok(!lines.some((l) => JSON.stringify(l).includes(password)), 'no log line carries the SMTP password');
      } finally {
        await own.close();
        await new Promise<void>((resolve) => smtp.close(() => resolve()));
      }
    });

    it('retries refusals about the session (554 greeting, 530 to MAIL FROM or RCPT TO, relaying denied) and gives up on a 554 to the message', async () => {
      let script: SmtpScript = {};
      const smtp = await scriptedSmtp(() => script);
      const own = await startTestGateway({ dialect, workers: true, env: { SMTP_URL: `smtp://127.0.0.1:${(smtp.address() as AddressInfo).port}`, DISPATCH_POLL_MS: '50' } });
      try {
        await own.gateway.services.merchants.updateChannel('sandbox', { notifyEmails: ['merchant@sandbox.test'], notifyEvents: ['payment.captured'], customerReceipts: false });
        const cases: Array<[SmtpScript, number, string]> = [
          [{ greeting: '554 5.3.2 not accepting mail now' }, 554, 'pending'],
          [{ mailFrom: '530 5.7.0 Must issue a STARTTLS command first' }, 530, 'pending'],
          [{ rcptTo: '530 5.7.0 Authentication required' }, 530, 'pending'],
          // The server will not relay for an unauthenticated gateway: every recipient alike.
          [{ rcptTo: '554 5.7.1 <merchant@sandbox.test>: Relay access denied' }, 554, 'pending'],
          [{ data: '554 5.6.0 message content rejected' }, 554, 'failed'],
        ];
        for (const [answers, code, status] of cases) {
          script = answers;
          const paymentId = await paidPayment(own);
          const notification = async () => (await deliveriesOf(own, paymentId, 'payment.captured')).find((d) => d.kind === 'email');
          await waitFor(`the attempt under ${JSON.stringify(answers)}`, async () => ((await notification())?.attempts.length ?? 0) > 0);
          const d = (await notification())!;
          assert.deepEqual([d.status, d.attempts[0]!.status_code], [status, code], JSON.stringify(answers));
        }
      } finally {
        await own.close();
        await new Promise((resolve) => smtp.close(resolve));
      }
    });

    it("keeps e-mail addresses a mail server's reply quotes out of the log and the recorded attempt, masked", async () => {
      const smtp = new SMTPServer({
        authOptional: true,
        disabledCommands: ['STARTTLS', 'AUTH'],
        logger: false,
        // As Postfix words it: the refused address quoted back in the reply.
        onRcptTo: (address, _session, callback) =>
          callback(Object.assign(new Error(`5.1.1 <${address.address}>: Recipient address rejected: User unknown in virtual mailbox table`), { responseCode: 550 })),
      });
      await new Promise<void>((resolve) => smtp.listen(0, '127.0.0.1', () => resolve()));
      const lines: Array<Record<string, unknown>> = [];
      const own = await startTestGateway({ dialect, workers: true, log: capturingLog(lines), env: { SMTP_URL: `smtp://127.0.0.1:${(smtp.server.address() as AddressInfo).port}`, DISPATCH_POLL_MS: '50' } });
      try {
        await own.gateway.services.merchants.updateChannel('sandbox', { notifyEmails: ['jane.doe@shop.example'], notifyEvents: ['payment.captured'], customerReceipts: false });
        const paymentId = await paidPayment(own);
        const notification = async () => (await deliveriesOf(own, paymentId, 'payment.captured')).find((d) => d.kind === 'email');
        await waitFor('the refusal', async () => (await notification())?.status === 'failed');
        const d = (await notification())!;
        assert.equal(d.recipient, 'jane.doe@shop.example', "the merchant's own address stays named where it is configured");
        assert.equal(d.attempts[0]!.error, '550 5.1.1 <j***@shop.example>: Recipient address rejected: User unknown in virtual mailbox table');
        await waitFor('the log line', () => lines.some((l) => String(l.msg).startsWith('gave up on a notification e-mail')));
        const gaveUp = lines.find((l) => String(l.msg).startsWith('gave up on a notification e-mail'))!;
        assert.match(String(gaveUp.error), /<j\*\*\*@shop\.example>/);
        assert.ok(!lines.some((l) => JSON.stringify(l).includes('jane.doe')), 'no log line names the address');
      } finally {
        await own.close();
        await new Promise<void>((resolve) => smtp.close(() => resolve()));
      }
    });

    it('records SMTP answers that carry NUL bytes, with U+FFFD in their place', async () => {
      const smtp = await nulAnsweringSmtp();
      const own = await startTestGateway({ dialect, workers: true, env: { SMTP_URL: `smtp://127.0.0.1:${(smtp.address() as AddressInfo).port}`, DISPATCH_POLL_MS: '50' } });
      try {
        await own.gateway.services.merchants.updateChannel('sandbox', { notifyEmails: ['ok@sandbox.test', 'refused@sandbox.test'], notifyEvents: ['payment.captured'], customerReceipts: false });
        const paymentId = await paidPayment(own);
        const attempts = async (recipient: string) => (await deliveriesOf(own, paymentId, 'payment.captured')).find((d) => d.recipient === recipient)?.attempts ?? [];
        await waitFor('both answers to be recorded', async () => (await attempts('ok@sandbox.test')).length > 0 && (await attempts('refused@sandbox.test')).length > 0);
        const [accepted] = await attempts('ok@sandbox.test');
        assert.deepEqual([accepted!.succeeded, accepted!.status_code, accepted!.response_body], [true, 250, '250 queued\uFFFDas 1']);
        const [refused] = await attempts('refused@sandbox.test');
        assert.deepEqual([refused!.succeeded, refused!.status_code, refused!.error], [false, 550, '550 no\uFFFDsuch\uFFFDmailbox']);
      } finally {
        await own.close();
        await new Promise((resolve) => smtp.close(resolve));
      }
    });
  });
}

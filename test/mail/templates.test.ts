import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { readMessage } from '../../src/adapters/mail/eml-inbox.js';
import { FileMailer } from '../../src/adapters/mail/mailer.js';
import { maskedCard, renderPaymentMail, scrubCardNumbers, type PaymentMailInput } from '../../src/adapters/mail/templates.js';

function input(overrides: Partial<PaymentMailInput> = {}, payment: Partial<PaymentMailInput['payment']> = {}): PaymentMailInput {
  return {
    template: 'notification',
    merchantName: 'Acme Ltd',
    channelName: 'Acme Shop',
    eventType: 'payment.captured',
    eventId: 'evt_1',
    occurredAt: '2026-01-02T03:04:05.000Z',
    ...overrides,
    payment: { id: 'pay_1', status: 'captured', amount: 1050, currency: 'EUR', reference: 'order-1', card: { brand: 'mastercard', last4: '4444' }, ...payment },
  };
}

describe('payment e-mail templates', () => {
  it('formats the amount in major units for every exponent', () => {
    assert.match(renderPaymentMail(input()).subject, /EUR 10\.50/);
    assert.match(renderPaymentMail(input({}, { amount: 1050, currency: 'JPY' })).text, /JPY 1,050/);
    assert.match(renderPaymentMail(input({}, { amount: 1234, currency: 'KWD' })).text, /KWD 1\.234/);
  });

  it('shows the card as brand and last 4 only', () => {
    assert.equal(maskedCard({ brand: 'amex', last4: '0005' }), 'American Express •••• 0005');
    const mail = renderPaymentMail(input());
    assert.ok(mail.text.includes('Mastercard •••• 4444'));
    assert.ok(mail.html.includes('Mastercard •••• 4444'));
  });

  it('scrubs anything that looks like a card number from free text', () => {
    assert.equal(scrubCardNumbers('card 4242424242424242 used'), 'card •••• 4242 used');
    assert.equal(scrubCardNumbers('4242 4242 4242 4242'), '•••• 4242');
    assert.equal(scrubCardNumbers('4242-4242-4242-4242'), '•••• 4242');
    assert.equal(scrubCardNumbers('order 1234567890123'), 'order 1234567890123', 'not Luhn-valid: left alone');
    // Glued to other digits, or written with other separators, it is still a card number.
    for (const text of ['order 4242424242424242-01', '4242 4242 4242 4242 7', 'inv-2024-4242424242424242', '4242.4242.4242.4242', '4242/4242/4242/4242', '4242  4242  4242  4242', 'x99 5555555555554444 12']) {
      const scrubbed = scrubCardNumbers(text);
      assert.ok(!/4242.?4242.?4242.?4242|5555555555554444/.test(scrubbed.replace(/[ ./-]/g, '')), `${text} → ${scrubbed}`);
      assert.ok(scrubbed.includes('•••• '), `${text} → ${scrubbed}`);
    }
    const mail = renderPaymentMail(input({}, { reference: 'pan 5555555555554444', decline_message: 'card 378282246310005 refused' }));
    for (const part of [mail.subject, mail.text, mail.html]) {
      assert.ok(!part.includes('5555555555554444'));
      assert.ok(!part.includes('378282246310005'));
    }
  });

  it('says why a payment was declined', () => {
    const mail = renderPaymentMail(input({ eventType: 'payment.declined' }, { status: 'declined', decline_code: 'insufficient_funds', decline_message: 'The card has insufficient funds.' }));
    assert.match(mail.subject, /^\[Acme Shop\] Payment was declined: EUR 10\.50 \(order-1\)$/);
    assert.match(mail.text, /Decline code: +insufficient_funds/);
    assert.match(mail.text, /Reason: +The card has insufficient funds\./);
  });

  it('tells the merchant whether a declined payment may be retried, as the API does', () => {
    const mail = renderPaymentMail(input({ eventType: 'payment.declined' }, { status: 'declined', decline_code: 'do_not_honor', decline_message: 'The issuer declined the payment.', retry_advice: 'do_not_retry' }));
    assert.match(mail.text, /^Retry advice: +do not retry \(do_not_retry\): the issuer will not approve it, and schemes charge for asking again$/m);
    assert.ok(mail.html.includes('do not retry (do_not_retry)'));
    const later = renderPaymentMail(input({ eventType: 'payment.declined' }, { status: 'declined', decline_code: 'insufficient_funds', retry_advice: 'retry_later' }));
    assert.match(later.text, /^Retry advice: +retry later \(retry_later\)$/m);
    assert.doesNotMatch(renderPaymentMail(input()).text, /Retry advice/);
  });

  it('writes a receipt for the customer without merchant internals', () => {
    const mail = renderPaymentMail(input({ template: 'receipt' }));
    assert.equal(mail.subject, 'Your receipt from Acme Shop: EUR 10.50');
    assert.match(mail.text, /Status: +Paid/);
    assert.ok(!mail.text.includes('evt_1'), 'no event id');
    assert.ok(!mail.text.includes('notification address'));
  });

  it('tells the customer the time and time zone a delayed capture charges them, not only a day', () => {
    // Late in the evening UTC is already the next day east of Greenwich: a bare date misleads.
    const mail = renderPaymentMail(input({ template: 'receipt', eventType: 'payment.authorised' }, { status: 'authorised', capture_at: '2026-01-02T23:30:00.000Z' }));
    assert.match(mail.text, /^Status: +Authorised — you will be charged on Fri, 02 Jan 2026 23:30 UTC$/m);
    assert.ok(mail.html.includes('Authorised — you will be charged on Fri, 02 Jan 2026 23:30 UTC'));
  });

  it('tells the merchant when a delayed capture will take the money, as the customer is told', () => {
    const note = renderPaymentMail(input({ eventType: 'payment.authorised' }, { status: 'authorised', capture_at: '2026-01-02T23:30:00.000Z' }));
    assert.match(note.text, /^Capture due: +Fri, 02 Jan 2026 23:30 UTC, automatically \(void before then to release the funds\)$/m);
    assert.ok(note.html.includes('Fri, 02 Jan 2026 23:30 UTC, automatically'));
    assert.doesNotMatch(renderPaymentMail(input({ eventType: 'payment.authorised' }, { status: 'authorised', capture_at: null })).text, /Capture due/);
  });

  it('says in the subject and the text that a sandbox payment moved no real money, and not for a live one', () => {
    const note = renderPaymentMail(input({ sandbox: true }));
    assert.equal(note.subject, '[Acme Shop] Sandbox payment was captured: EUR 10.50 (order-1)');
    const receipt = renderPaymentMail(input({ sandbox: true, template: 'receipt' }));
    assert.equal(receipt.subject, 'Your test receipt from Acme Shop: EUR 10.50');
    const refund = renderPaymentMail(input({ sandbox: true, template: 'receipt', eventType: 'refund.succeeded', refund: { amount: 250, currency: 'EUR' } }));
    assert.equal(refund.subject, 'Your test refund from Acme Shop: EUR 2.50');
    for (const mail of [note, receipt, refund]) {
      assert.match(mail.text.split('\n')[0]!, /no real money moved/);
      assert.match(mail.html, /no real money moved/);
    }
    const live = renderPaymentMail(input({ sandbox: false }));
    assert.equal(live.subject, '[Acme Shop] Payment was captured: EUR 10.50 (order-1)');
    assert.doesNotMatch(live.text + live.html, /sandbox|test/i);
  });

  it('reports a refund with the refunded amount, to the merchant and the customer', () => {
    const refund = { amount: 250, currency: 'EUR' };
    const note = renderPaymentMail(input({ eventType: 'refund.succeeded', refund }, { status: 'partially_refunded', amount_refunded: 250 }));
    assert.equal(note.subject, '[Acme Shop] Payment was partly refunded: EUR 2.50 (order-1)');
    assert.match(note.text, /^A payment on your channel Acme Shop was partly refunded\.$/m);
    assert.match(note.text, /Refund: +EUR 2\.50/);
    assert.match(note.text, /Payment amount: +EUR 10\.50/);
    // The refund that gives back the rest, after others: the payment is refunded in full.
    const last = renderPaymentMail(input({ eventType: 'refund.succeeded', refund: { amount: 800, currency: 'EUR' } }, { status: 'refunded', amount_captured: 1050, amount_refunded: 1050 }));
    assert.equal(last.subject, '[Acme Shop] Payment was refunded: EUR 8.00 (order-1)');
    assert.match(last.text, /^Refunded: +EUR 10\.50$/m);
    const receipt = renderPaymentMail(input({ template: 'receipt', eventType: 'refund.succeeded', refund }));
    assert.equal(receipt.subject, 'Your refund from Acme Shop: EUR 2.50');
    assert.match(receipt.text, /has refunded EUR 2\.50 to your card/);
  });

  it("keeps a merchant's text on its own line: no line breaks, separators or bidi overrides of its own", () => {
    const mail = renderPaymentMail(input({ template: 'receipt', channelName: 'Shop\u2028Call +1 555' }, { reference: 'order-1\r\nBcc: x@evil.example\n\nYour card was charged twice: http://evil.example \u202egnp.exe' }));
    assert.match(mail.text, /^Reference: +order-1 Bcc: x@evil\.example Your card was charged twice: http:\/\/evil\.example +gnp\.exe$/m);
    assert.doesNotMatch(mail.text, /^Bcc:|^Your card was charged|\u202e|\u2028/m);
    assert.match(mail.subject, /^Your receipt from Shop Call \+1 555:/);
  });

  it("keeps a merchant's text that spells an encoded word as written in the subject the reader sees", async () => {
    // Decoded, this word is a right-to-left override and "00.001 DSU": the subject would read "(USD 100.00".
    const reference = `x =?UTF-8?B?${Buffer.from('\u202e00.001 DSU').toString('base64')}?=`;
    const mail = renderPaymentMail(input({}, { reference }));
    const dir = mkdtempSync(join(tmpdir(), 'tz-mail-'));
    try {
      // Written as the sandbox writes it and read back as a mail client reads a Subject (RFC 2047 words decoded).
      await new FileMailer(dir, 'tZero Pay <no-reply@tzero-pay.test>').send({ id: 'del_1', to: 'merchant@example.com', ...mail, date: new Date() });
      const seen = readMessage(dir, 'del_1.eml')!.subject;
      assert.doesNotMatch(seen, /\u202e/);
      assert.equal(seen, '[Acme Shop] Payment was captured: EUR 10.50 (x = ?UTF-8?B?4oCuMDAuMDAxIERTVQ== ?=)');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('escapes HTML and keeps the subject on one line', () => {
    const mail = renderPaymentMail(input({ channelName: '<b>Shop</b>\r\nBcc: x@y.z' }));
    assert.ok(!mail.html.includes('<b>Shop</b>'));
    assert.ok(mail.html.includes('&#60;b&#62;Shop&#60;/b&#62;'));
    assert.ok(!/[\r\n]/.test(mail.subject));
  });
});

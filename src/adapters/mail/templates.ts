import { luhnValid } from '../../domain/card.js';
import { formatAmount } from '../../domain/money.js';

/**
 * Payment e-mails, plain text and HTML. They show the card as brand and last 4 only;
 * free text a merchant or acquirer supplied (reference, decline message) is scrubbed
 * of anything that looks like a card number before it is written into a message.
 */
export type MailTemplate = 'notification' | 'receipt';

export interface PaymentMailInput {
  template: MailTemplate;
  merchantName: string;
  channelName: string;
  eventType: string;
  eventId: string;
  occurredAt: string;
  payment: {
    id: string;
    status: string;
    amount: number;
    currency: string;
    amount_captured?: number;
    amount_refunded?: number;
    reference: string | null;
    card: { brand: string; last4: string };
    decline_code?: string | null;
    decline_message?: string | null;
    failure_message?: string | null;
  };
  /** Set for refund events: what was given back. */
  refund?: { amount: number; currency: string } | null;
}

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

const BRANDS: Record<string, string> = {
  visa: 'Visa',
  mastercard: 'Mastercard',
  amex: 'American Express',
  discover: 'Discover',
  jcb: 'JCB',
  diners: 'Diners Club',
  unionpay: 'UnionPay',
};

const HEADLINES: Record<string, string> = {
  'payment.created': 'is waiting for the customer',
  'payment.authorised': 'was authorised',
  'payment.captured': 'was captured',
  'payment.capture_failed': 'could not be captured',
  'payment.partially_captured': 'was partly captured',
  'payment.declined': 'was declined',
  'payment.failed': 'failed',
  'payment.expired': 'expired',
  'payment.cancelled': 'was cancelled by the customer',
  'payment.voided': 'was voided',
  'refund.succeeded': 'was refunded',
  'refund.failed': 'could not be refunded',
};

const CUSTOMER_STATUS: Record<string, string> = {
  authorised: 'Authorised — you will be charged when the order ships',
  captured: 'Paid',
  partially_captured: 'Paid',
  refunded: 'Refunded',
  partially_refunded: 'Partly refunded',
};

/** Any 13-19 digit run (spaces or dashes allowed) that passes Luhn is shown as its last 4. */
export function scrubCardNumbers(text: string): string {
  return text.replace(/\d(?:[ -]?\d){12,18}/g, (run) => {
    const digits = run.replace(/\D/g, '');
    return luhnValid(digits) ? `•••• ${digits.slice(-4)}` : run;
  });
}

export function maskedCard(card: { brand: string; last4: string }): string {
  return `${BRANDS[card.brand] ?? card.brand} •••• ${card.last4.replace(/\D/g, '').slice(-4)}`;
}

function amount(value: number, currency: string): string {
  try {
    return formatAmount(value, currency);
  } catch {
    return `${currency} ${value} (minor units)`;
  }
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function clean(value: string | null | undefined): string | null {
  return value ? scrubCardNumbers(value) : null;
}

export function renderPaymentMail(input: PaymentMailInput): RenderedMail {
  const p = input.payment;
  const refund = input.refund ?? null;
  const total = refund ? amount(refund.amount, refund.currency) : amount(p.amount, p.currency);
  const reference = clean(p.reference);
  const shop = clean(input.channelName) ?? '';
  const when = new Date(input.occurredAt).toUTCString();
  const rows: Array<[string, string]> = [];
  let subject: string;
  let intro: string;
  if (input.template === 'receipt' && refund) {
    subject = `Your refund from ${shop}: ${total}`;
    intro = `${shop} has refunded ${total} to your card.`;
    rows.push(['Refund', total], ['Payment amount', amount(p.amount, p.currency)]);
  } else if (input.template === 'receipt') {
    subject = `Your receipt from ${shop}: ${total}`;
    intro = `Thank you for your payment to ${shop}.`;
    rows.push(['Amount', total], ['Status', CUSTOMER_STATUS[p.status] ?? p.status]);
  } else {
    const headline = HEADLINES[input.eventType] ?? `changed (${input.eventType})`;
    subject = `[${shop}] Payment ${headline}: ${total}${reference ? ` (${reference})` : ''}`;
    intro = `A payment on your channel ${shop} ${headline}.`;
    if (refund) rows.push(['Refund', total], ['Payment amount', amount(p.amount, p.currency)]);
    else rows.push(['Amount', total]);
    rows.push(['Status', p.status]);
    if (p.amount_captured) rows.push(['Captured', amount(p.amount_captured, p.currency)]);
    if (p.amount_refunded) rows.push(['Refunded', amount(p.amount_refunded, p.currency)]);
  }
  rows.push(['Merchant', clean(input.merchantName) ?? ''], ['Shop', shop]);
  if (reference) rows.push(['Reference', reference]);
  rows.push(['Card', maskedCard(p.card)], ['Payment ID', p.id], ['Date', when]);
  if (input.template === 'notification') {
    const reason = clean(p.decline_message) ?? clean(p.failure_message);
    if (p.decline_code) rows.push(['Decline code', p.decline_code]);
    if (reason) rows.push(['Reason', reason]);
    rows.push(['Event', `${input.eventType} (${input.eventId})`]);
  }
  const footer =
    input.template === 'receipt'
      ? `Questions about this payment? Contact ${shop} and quote the payment ID.`
      : 'You receive these e-mails because this address is a notification address of the channel. Confirm the status with GET /payment/{id} or a signed callback before shipping goods.';

  const width = Math.max(...rows.map(([k]) => k.length));
  const text = [intro, '', ...rows.map(([k, v]) => `${(k + ':').padEnd(width + 1)} ${v}`), '', footer, '', '— tZero Pay', ''].join('\n');
  const htmlRows = rows.map(([k, v]) => `<tr><th align="left" style="padding:4px 16px 4px 0;color:#5c677d;font-weight:normal">${escapeHtml(k)}</th><td style="padding:4px 0">${escapeHtml(v)}</td></tr>`).join('');
  const html =
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(subject)}</title></head>` +
    `<body style="font-family:system-ui,sans-serif;color:#14213d;background:#f5f7fb;margin:0;padding:24px">` +
    `<div style="max-width:520px;margin:0 auto;background:#fff;border:1px solid #d9dee7;border-radius:12px;padding:24px">` +
    `<p style="margin:0 0 8px">${escapeHtml(intro)}</p><p style="font-size:28px;font-weight:600;margin:8px 0 16px">${escapeHtml(total)}</p>` +
    `<table cellspacing="0" cellpadding="0">${htmlRows}</table>` +
    `<p style="color:#5c677d;font-size:13px;margin:16px 0 0">${escapeHtml(footer)}</p></div>` +
    `<p style="text-align:center;color:#5c677d;font-size:12px">tZero Pay</p></body></html>`;
  return { subject: subject.replace(/[\r\n]+/g, ' '), text, html };
}

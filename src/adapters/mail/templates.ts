import { brandName, luhnValid } from '../../domain/card.js';
import { DAY_MS, DOCUMENT_LABELS, isDocumentType, SAQ_MAX_ANNUAL_TRANSACTIONS } from '../../domain/compliance.js';
import { formatAmount } from '../../domain/money.js';

/**
 * Payment e-mails and compliance notices, plain text and HTML. Payment mails show the
 * card as brand and last 4 only; compliance notices carry no card data at all. Free
 * text that came from elsewhere (reference, decline message, a reviewer's reason, names)
 * is scrubbed of anything that looks like a card number before it is written into a message.
 */
export type PaymentMailTemplate = 'notification' | 'receipt';
export type MailTemplate = PaymentMailTemplate | 'compliance';

export interface PaymentMailInput {
  template: PaymentMailTemplate;
  merchantName: string;
  channelName: string;
  eventType: string;
  eventId: string;
  occurredAt: string;
  /** The channel is a sandbox one: its payments take and give back no real money. */
  sandbox?: boolean;
  /** Where the channel's customers write with questions (its support_email), when it gives one. */
  supportEmail?: string | null;
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
    retry_advice?: string | null;
    failure_message?: string | null;
    payment_data?: { payment_type?: string } | null;
    capture_at?: string | null;
  };
  /** Set for refund events: what was given back, or why it could not be. */
  refund?: { amount: number; currency: string; failure_code?: string | null; failure_message?: string | null } | null;
}

export interface RenderedMail {
  subject: string;
  text: string;
  html: string;
}

const HEADLINES: Record<string, string> = {
  'payment.created': 'is waiting for the customer',
  'payment.authorised': 'was authorised',
  'payment.captured': 'was captured',
  'payment.capture_failed': 'could not be captured',
  'payment.partially_captured': 'was partly captured',
  'payment.declined': 'was declined',
  'payment.failed': 'failed',
  'payment.expired': 'expired',
  'payment.cancelled': 'was cancelled',
  'payment.voided': 'was voided',
  'payment.void_failed': 'could not be voided',
  'refund.succeeded': 'was refunded',
  'refund.failed': 'could not be refunded',
};

/** A decline's `retry_advice` as what to do about it: retrying a hard decline costs scheme fees and risks a bar. */
const RETRY_ADVICE: Record<string, string> = {
  do_not_retry: 'do not retry (do_not_retry): the issuer will not approve it, and schemes charge for asking again',
  retry_later: 'retry later (retry_later)',
  retry_with_new_details: 'ask the customer for other card details (retry_with_new_details)',
};

const CUSTOMER_STATUS: Record<string, string> = {
  authorised: 'Authorised — you will be charged when the order ships',
  captured: 'Paid',
  partially_captured: 'Paid',
  refunded: 'Refunded',
  partially_refunded: 'Partly refunded',
};

/**
 * Digits with up to two separators (space, dash, dot, slash) between them, 13 or more in
 * all: wherever a card number could hide, also glued to other digits ("order 4242…4242-01").
 */
const DIGIT_RUN = /\d(?:[ ./-]{0,2}\d){12,}/g;

/** A digit run holding a 13-19 digit stretch that passes Luhn is shown as that stretch's last 4. */
export function scrubCardNumbers(text: string): string {
  return text.replace(DIGIT_RUN, (run) => {
    const card = luhnStretchIn(run.replace(/\D/g, ''));
    return card === undefined ? run : `•••• ${card.slice(-4)}`;
  });
}

/** The longest 13-19 digit stretch of `digits` that passes Luhn, if any. */
function luhnStretchIn(digits: string): string | undefined {
  for (let length = Math.min(19, digits.length); length >= 13; length--) {
    for (let at = 0; at + length <= digits.length; at++) {
      const stretch = digits.slice(at, at + length);
      if (luhnValid(stretch)) return stretch;
    }
  }
  return undefined;
}

export function maskedCard(card: { brand: string; last4: string }): string {
  return `${brandName(card.brand)} •••• ${card.last4.replace(/\D/g, '').slice(-4)}`;
}

function amount(value: number, currency: string): string {
  try {
    return formatAmount(value, currency);
  } catch {
    return `${currency} ${value} (minor units)`;
  }
}

/**
 * `Fri, 02 Jan 2026 23:30 UTC`: every time an e-mail gives is written this one way, with its
 * time and zone, as near midnight UTC a bare date is the wrong day for much of the world, and
 * with the month named, so no reader takes 02/01 for 1 February.
 */
function mailTime(iso: string): string {
  return `${new Date(iso).toUTCString().slice(0, 22)} UTC`;
}

/** `Fri, 02 Jan 2026`: the day of such a time, where a subject or headline has no room for the rest. */
function mailDay(iso: string): string {
  return new Date(iso).toUTCString().slice(0, 16);
}

function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * Control characters (line breaks included), line and paragraph separators and bidi
 * overrides: in a merchant's text they would let it write lines of its own, or reorder
 * ours, in mail sent as tZero Pay (a receipt goes to an address the merchant chose).
 */
const LAYOUT_CHARACTERS = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]+/g;

/** A merchant's or acquirer's text as our mail shows it: one line, no card numbers. */
function clean(value: string | null | undefined): string | null {
  return value ? scrubCardNumbers(value.replace(LAYOUT_CHARACTERS, ' ')) : null;
}

export function renderPaymentMail(input: PaymentMailInput): RenderedMail {
  const p = input.payment;
  const refund = input.refund ?? null;
  // A capture may take less than was authorised: its mails are about the money taken, and
  // a customer refunded after a partial capture had paid that, not the authorised amount.
  const paid = p.amount_captured || p.amount;
  const captureEvent = input.eventType === 'payment.captured' || input.eventType === 'payment.partially_captured';
  const total = refund ? amount(refund.amount, refund.currency) : amount(captureEvent ? paid : p.amount, p.currency);
  const reference = clean(p.reference);
  const shop = clean(input.channelName) ?? '';
  const when = mailTime(input.occurredAt);
  const rows: Array<[string, string]> = [];
  // A sandbox payment reads like a real one otherwise: a merchant could ship on it, and a
  // customer given a sandbox receipt would believe their card was charged.
  const test = input.sandbox ? 'test ' : '';
  let subject: string;
  let intro: string;
  if (input.template === 'receipt' && refund) {
    subject = `Your ${test}refund from ${shop}: ${total}`;
    intro = `${shop} has refunded ${total} to your card.`;
    rows.push(['Refund', total]);
    // After several partial refunds the customer adds them up against what they paid: the
    // payment's amount_refunded as of this refund (the event's copy of it), this one included.
    if (p.amount_refunded !== undefined) rows.push(['Refunded so far', amount(p.amount_refunded, p.currency)]);
    rows.push(['Payment amount', amount(paid, p.currency)]);
  } else if (input.template === 'receipt') {
    subject = `Your ${test}receipt from ${shop}: ${total}`;
    intro = `Thank you for your payment to ${shop}.`;
    // A delayed capture charges on its own date, whenever the order ships.
    const status = p.status === 'authorised' && p.capture_at ? `Authorised — you will be charged on ${mailTime(p.capture_at)}` : (CUSTOMER_STATUS[p.status] ?? p.status);
    rows.push(['Amount', total], ['Status', status]);
  } else {
    // A merchant-initiated payment is created with nobody to wait for: its acquirer is asked at once.
    // A refund that leaves money on the payment is a partial one, as its status says and as a
    // partial capture is "partly captured": "was refunded" would read as all of it.
    const headline =
      input.eventType === 'payment.created' && p.payment_data?.payment_type === 'mit'
        ? 'was created as a merchant-initiated payment'
        : input.eventType === 'refund.succeeded' && p.status === 'partially_refunded'
          ? 'was partly refunded'
          : (HEADLINES[input.eventType] ?? `changed (${input.eventType})`);
    subject = `[${shop}] ${input.sandbox ? 'Sandbox payment' : 'Payment'} ${headline}: ${total}${reference ? ` (${reference})` : ''}`;
    intro = `A payment on your channel ${shop} ${headline}.`;
    if (refund) rows.push(['Refund', total], ['Payment amount', amount(paid, p.currency)]);
    else rows.push(['Amount', total]);
    rows.push(['Status', p.status]);
    if (p.amount_captured && p.amount_captured !== p.amount) rows.push(['Authorised', amount(p.amount, p.currency)]);
    if (p.amount_captured) rows.push(['Captured', amount(p.amount_captured, p.currency)]);
    if (p.amount_refunded) rows.push(['Refunded', amount(p.amount_refunded, p.currency)]);
    // The customer's receipt names this date: the merchant has until then to void instead.
    if (p.status === 'authorised' && p.capture_at) rows.push(['Capture due', `${mailTime(p.capture_at)}, automatically (void before then to release the funds)`]);
  }
  if (input.sandbox) {
    intro += input.template === 'receipt' ? ' This was a test in the shop\'s sandbox: no real money moved on your card.' : ' This is a sandbox channel: no real money moved.';
  }
  rows.push(['Merchant', clean(input.merchantName) ?? ''], ['Shop', shop]);
  if (reference) rows.push(['Reference', reference]);
  rows.push(['Card', maskedCard(p.card)], ['Payment ID', p.id], ['Date', when]);
  if (input.template === 'notification') {
    // A refund event's reason is the refund's own; the payment's decline is another story.
    const reason = refund ? clean(refund.failure_message) : (clean(p.decline_message) ?? clean(p.failure_message));
    if (refund?.failure_code) rows.push(['Failure code', clean(refund.failure_code)!]);
    else if (!refund && p.decline_code) rows.push(['Decline code', p.decline_code]);
    if (reason) rows.push(['Reason', reason]);
    if (!refund && p.retry_advice) rows.push(['Retry advice', RETRY_ADVICE[p.retry_advice] ?? p.retry_advice]);
    rows.push(['Event', `${input.eventType} (${input.eventId})`]);
  }
  const footer =
    input.template === 'receipt'
      ? input.supportEmail
        ? `Questions about this payment? Write to ${shop} at ${input.supportEmail} (or reply to this e-mail) and quote the payment ID.`
        : `Questions about this payment? Contact ${shop} and quote the payment ID.`
      : 'You receive these e-mails because this address is a notification address of the channel. Confirm the status with GET /payment/{id} or a signed callback before shipping goods.';
  return compose({ subject, intro, headline: total, rows, footer });
}

/** One layout for every message: an introduction, a headline, a table of facts, what to do next, a footer. */
function compose(m: { subject: string; intro: string; headline: string; rows: Array<[string, string]>; next?: string; footer: string }): RenderedMail {
  const width = Math.max(...m.rows.map(([k]) => k.length));
  const next = m.next ? ['What to do next:', m.next, ''] : [];
  const text = [m.intro, '', ...m.rows.map(([k, v]) => `${(k + ':').padEnd(width + 1)} ${v}`), '', ...next, m.footer, '', '— tZero Pay', ''].join('\n');
  const htmlRows = m.rows.map(([k, v]) => `<tr><th align="left" style="padding:4px 16px 4px 0;color:#5c677d;font-weight:normal">${escapeHtml(k)}</th><td style="padding:4px 0">${escapeHtml(v)}</td></tr>`).join('');
  const htmlNext = m.next ? `<p style="margin:16px 0 4px;font-weight:600">What to do next</p><p style="margin:0">${escapeHtml(m.next)}</p>` : '';
  const html =
    `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(m.subject)}</title></head>` +
    `<body style="font-family:system-ui,sans-serif;color:#14213d;background:#f5f7fb;margin:0;padding:24px">` +
    `<div style="max-width:520px;margin:0 auto;background:#fff;border:1px solid #d9dee7;border-radius:12px;padding:24px">` +
    `<p style="margin:0 0 8px">${escapeHtml(m.intro)}</p><p style="font-size:28px;font-weight:600;margin:8px 0 16px">${escapeHtml(m.headline)}</p>` +
    `<table cellspacing="0" cellpadding="0">${htmlRows}</table>${htmlNext}` +
    `<p style="color:#5c677d;font-size:13px;margin:16px 0 0">${escapeHtml(m.footer)}</p></div>` +
    `<p style="text-align:center;color:#5c677d;font-size:12px">tZero Pay</p></body></html>`;
  // `=?` could open an RFC 2047 encoded word, which the reader's mail client would decode
  // into whatever it encodes (a bidi override, a line break) past clean(): never in ours.
  return { subject: m.subject.replace(/[\r\n]+/g, ' ').replaceAll('=?', '= ?'), text, html };
}

/** The `data.object` of a compliance event, as far as the notice uses it. */
export interface ComplianceMailInput {
  merchantName: string;
  eventType: string;
  eventId: string;
  occurredAt: string;
  compliance: {
    status: string;
    card_data_on_live_channels?: string;
    required_documents?: string[] | null;
    missing?: Array<{ item: string; description: string }>;
    review_pending?: boolean;
    expires_at: string | null;
    approved_basis?: string | null;
    aoc_required?: { grace_period_ends_at: string | null } | null;
    last_review?: { outcome: string; reason: string | null } | null;
    days_before_expiry?: number;
  };
}

const COMPLIANCE_STATUS: Record<string, string> = {
  approved: 'Approved',
  expired: 'Expired',
  pending: 'Waiting for review',
  missing: 'Not approved: documents missing',
};

const UPLOAD = 'POST /merchant/compliance/documents';

function daysWord(n: number): string {
  return n === 1 ? '1 day' : `${n} days`;
}

/** Whole days from `from` until `until`, rounded up, so a deadline later today is 1 day away, not 0. */
function daysUntil(until: string, from: string): number {
  return Math.max(0, Math.ceil((Date.parse(until) - Date.parse(from)) / DAY_MS));
}

function documentList(types: readonly string[]): string {
  return types.map((t) => (isDocumentType(t) ? DOCUMENT_LABELS[t] : t)).join(', ');
}

/**
 * A compliance notice to the merchant's notification addresses: what happened, where
 * the approval stands, what is missing, the deadline and what to do about it.
 */
export function renderComplianceMail(input: ComplianceMailInput): RenderedMail {
  const c = input.compliance;
  const merchant = clean(input.merchantName) ?? '';
  const expires = c.expires_at;
  const grace = c.aoc_required?.grace_period_ends_at ?? null;
  const missing = (c.missing ?? []).map((m) => m.description);
  const toUpload = missing.length ? missing.join(', ') : documentList(c.required_documents ?? ['asv_scan', 'saq']);
  const liveAccepted = c.card_data_on_live_channels === 'accepted';
  let subject: string;
  let intro: string;
  let headline: string;
  let next: string;
  let deadline: string | null = expires !== null && liveAccepted ? expires : null;
  switch (input.eventType) {
    case 'compliance.approved':
      subject = `[${merchant}] PCI DSS compliance approved${expires ? ` until ${mailDay(expires)}` : ''}`;
      intro = `Your PCI DSS compliance documents were reviewed and approved.${expires ? ` Your live channels accept card data until ${mailTime(expires)}.` : ''}`;
      headline = expires ? `Approved until ${mailDay(expires)}` : 'Approved';
      next = `Nothing for now. Validation is annual: we remind you 30 and 7 days before the approval expires. Upload next year's documents (a new ASV scan report and your SAQ or AOC) with ${UPLOAD} before then.`;
      break;
    case 'compliance.rejected':
      subject = `[${merchant}] PCI DSS documents rejected`;
      intro =
        'Your PCI DSS compliance documents were reviewed and rejected.' +
        (liveAccepted && expires ? ` Your current approval stays in force until ${mailTime(expires)}.` : ' Your live channels refuse card data until a new submission is approved; sandbox channels keep working.');
      headline = 'Documents rejected';
      next = `Correct what the reason says and upload ${toUpload} again with ${UPLOAD} (PDF, at most 10 MiB each). GET /merchant/compliance shows what is still missing; the operator reviews the submission once it is complete.`;
      break;
    case 'compliance.expiring': {
      const days = expires ? daysUntil(expires, input.occurredAt) : (c.days_before_expiry ?? 0);
      subject = `[${merchant}] PCI DSS approval expires in ${daysWord(days)}${expires ? ` (${mailDay(expires)})` : ''}`;
      intro = `Your PCI DSS compliance approval expires${expires ? ` on ${mailTime(expires)}` : ''}, in ${daysWord(days)}. From then on your live channels refuse card data until a renewal is approved.`;
      headline = `Expires in ${daysWord(days)}`;
      // A renewal needs every document afresh, not only what `missing` lists: an approval cannot outlast the attestation it rests on.
      next = c.review_pending
        ? 'Your renewal is already waiting for review: nothing else to do. You are told by e-mail when it is decided.'
        : `Renew now: upload ${documentList(c.required_documents ?? ['asv_scan', 'saq'])} with ${UPLOAD} (the ASV scan report at most 90 days old, the attestation signed within the last year), and leave time for the review.`;
      break;
    }
    case 'compliance.expired':
      subject = `[${merchant}] PCI DSS approval expired: live channels refuse card data`;
      intro = `Your PCI DSS compliance approval${expires ? ` expired on ${mailTime(expires)}` : ' has expired'}. Your live channels refuse card data (compliance_expired) until new documents are approved; sandbox channels and stored-card tokens keep working.`;
      headline = 'Expired';
      next = c.review_pending ? 'Your renewal is waiting for review: card data is accepted again as soon as it is approved.' : `Upload ${toUpload} with ${UPLOAD}; card data is accepted again as soon as the operator approves them.`;
      break;
    case 'compliance.aoc_required':
      subject = `[${merchant}] PCI DSS: an Attestation of Compliance (AOC) is now required`;
      intro = `Your annual card transactions exceed ${SAQ_MAX_ANNUAL_TRANSACTIONS.toLocaleString('en-US')}, so your SAQ-based approval no longer suffices: an Attestation of Compliance (AOC) signed by a Qualified Security Assessor (QSA) is required.${grace ? ` Your live channels keep accepting card data during the grace period, until ${mailTime(grace)}.` : ''}`;
      headline = grace ? `AOC due by ${mailDay(grace)}` : 'AOC required';
      next = `Have a QSA assess you, then upload ${toUpload} with ${UPLOAD}${grace ? ` before ${mailTime(grace)}` : ''}. After the grace period your live channels refuse card data until the AOC is approved.`;
      deadline = grace;
      break;
    default:
      subject = `[${merchant}] PCI DSS compliance update`;
      intro = 'Your PCI DSS compliance status changed.';
      headline = COMPLIANCE_STATUS[c.status] ?? c.status;
      next = 'See GET /merchant/compliance for the details.';
  }

  const rows: Array<[string, string]> = [['Status', COMPLIANCE_STATUS[c.status] ?? c.status]];
  if (c.card_data_on_live_channels) rows.push(['Card data on live channels', liveAccepted ? 'Accepted' : 'Refused']);
  if (c.approved_basis && liveAccepted) rows.push(['Validated with', isDocumentType(c.approved_basis) ? DOCUMENT_LABELS[c.approved_basis] : c.approved_basis]);
  if (expires) rows.push([Date.parse(expires) > Date.parse(input.occurredAt) ? 'Expires' : 'Expired', mailTime(expires)]);
  if (grace) rows.push(['Grace period ends', mailTime(grace)]);
  if (deadline && Date.parse(deadline) > Date.parse(input.occurredAt)) rows.push(['Days left', String(daysUntil(deadline, input.occurredAt))]);
  rows.push(['Missing', missing.length ? missing.join('; ') : 'nothing']);
  const reason = input.eventType === 'compliance.rejected' ? clean(c.last_review?.reason) : null;
  if (reason) rows.push(['Reason', reason]);
  rows.push(['Merchant', merchant], ['Event', `${input.eventType} (${input.eventId})`], ['Date', mailTime(input.occurredAt)]);
  // Not the channel the notice rides: it goes to the addresses of every live channel alike.
  const footer = 'You receive compliance notices because this address is a notification address of one of your channels; they go to those of every live channel, whatever its notify_events. GET /merchant/compliance shows your status at any time.';
  return compose({ subject, intro, headline, rows, next, footer });
}

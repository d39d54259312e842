import type { PaymentSupport, SupportDelivery } from '../app/payment-support.js';
import { formatAmount } from '../domain/money.js';
import { shown } from './terminal-text.js';

type SupportView = Awaited<ReturnType<PaymentSupport['show']>>;

function delivery(d: SupportDelivery): string {
  const to = shown(d.kind === 'webhook' ? callbackEndpoint(d) : (d.recipient ?? ''));
  const tries = `${d.attempt_count} ${d.attempt_count === 1 ? 'try' : 'tries'}`;
  const last = d.last_status_code !== null ? `, last answer ${d.last_status_code}` : d.last_error ? `, last error: ${shown(d.last_error)}` : '';
  const next = d.next_attempt_at ? `, next try ${d.next_attempt_at}` : '';
  return `${d.kind} ${to}: ${d.status} after ${tries}${last}${next}`;
}

/** A pending refund's amount is held against the payment though amount_refunded does not count it yet. */
function refund(r: SupportView['refunds'][number]): string {
  const money = `${formatAmount(r.amount, r.currency)} ${r.status}`;
  if (r.status === 'pending') return `${money}: the acquirer has not answered yet; the amount is held`;
  if (r.status === 'failed') return `${money} ${shown(r.failure_code ?? '')}: ${shown(r.failure_message ?? '')}`;
  return money;
}

function callbackEndpoint(d: SupportDelivery): string {
  if (d.endpoint_origin === null) return d.endpoint_id ?? 'a deleted endpoint';
  return d.endpoint_id === null ? d.endpoint_origin : `${d.endpoint_origin} (${d.endpoint_id})`;
}

/**
 * `payment show` for a terminal: the payment in a few lines, then its events, each with its
 * deliveries. What the merchant or a receiver wrote is `shown`: a line break in a reference
 * must not start a line of its own.
 */
export function paymentSupportText(v: SupportView): string {
  const p = v.payment;
  const money = (n: number) => formatAmount(n, p.currency);
  const card = p.payment_method.card;
  const pending = v.refunds.filter((r) => r.status === 'pending').reduce((n, r) => n + r.amount, 0);
  const outcome = [p.decline_code && `declined ${p.decline_code}: ${shown(p.decline_message ?? '')}${p.retry_advice ? ` (retry advice: ${p.retry_advice})` : ''}`, p.failure_message && `failure: ${shown(p.failure_message)}`].filter(Boolean);
  const lines = [
    `${p.id}  ${p.status}${p.page_open ? ' (its payment page is open)' : ''}`,
    `merchant ${v.merchant_id}, channel "${shown(p.channel)}", reference ${shown(p.reference ?? '-')}, customer ${shown((p.customer as { reference?: string } | null)?.reference ?? '-')}`,
    ...(v.merchant_suspended_at ? [`merchant suspended since ${v.merchant_suspended_at}: ${shown(v.merchant_suspended_reason ?? '')}`] : []),
    `${money(p.amount)}; captured ${money(p.amount_captured)}; refunded ${money(p.amount_refunded)}${pending ? ` (${money(pending)} more pending)` : ''}; capture ${p.capture}${p.capture_at ? ` at ${p.capture_at}` : ''}`,
    `card ${card.brand} ${card.bin}…${card.last4}, expires ${String(card.expiry_month).padStart(2, '0')}/${card.expiry_year}; ${p.payment_data.payment_type} ${p.payment_data.payment_sub_type}`,
    ...outcome,
    `created ${p.created_at}; authorised ${p.authorised_at ?? '-'}; updated ${p.updated_at}; authorisation expires ${p.expires_at ?? '-'}`,
    ...(v.refunds.length ? ['', 'refunds, oldest first:', ...v.refunds.map((r) => `  ${r.created_at}  ${r.id}  ${refund(r)}`)] : []),
    '',
    v.events.length === 0 ? 'no events' : 'events, oldest first:',
    ...v.events.flatMap((e) => [`  ${e.created_at}  ${e.type}  ${e.id}`, ...(e.deliveries.length ? e.deliveries.map((d) => `      ${delivery(d)}`) : ['      (nothing to deliver)'])]),
    ...(v.older_events_left_out ? ['(older events left out: see GET /events?payment=… with the merchant\'s key)'] : []),
  ];
  return lines.join('\n');
}

import { DomainError } from '../domain/errors.js';
import { quotedId } from '../domain/ids.js';
import { type Actor, writeAudit } from './audit.js';
import type { AppContext } from './context.js';
import { refundResource } from './lifecycle.js';
import type { DeliveryView, EventQueries } from './event-queries.js';
import { MAX_PAGE_SIZE } from './event-queries.js';
import type { PaymentQueries } from './payment-queries.js';
import { urlOrigin } from './webhook-endpoints.js';

/** A delivery as support sees it: a callback's endpoint by id and origin, never its full URL. */
export type SupportDelivery = Omit<DeliveryView, 'url'> & { endpoint_origin: string | null };

function forSupport({ url, ...delivery }: DeliveryView): SupportDelivery {
  return { ...delivery, endpoint_origin: url === null ? null : urlOrigin(url) };
}

/**
 * What an operator answering "what happened to this payment?" needs in one place: the
 * payment as its merchant sees it, whether the merchant is suspended (and why: the merchant's
 * own answers never say), its events in order and what became of each callback and e-mail.
 * It is read through the merchant's own queries, so it shows no more card data than the
 * merchant sees (BIN and last 4), and never the payment page's link, which is the
 * customer's credential, nor a callback URL's path and query, where merchants put tokens (the
 * audit log keeps only the origin too). Every look is audited (PCI DSS 10.2.1.1).
 */
export class PaymentSupport {
  constructor(
    private readonly ctx: AppContext,
    private readonly payments: PaymentQueries,
    private readonly events: EventQueries,
  ) {}

  async show(actor: Actor, paymentId: string) {
    const owner = await this.ctx.database.db.selectFrom('payments as p').innerJoin('merchants as m', 'm.id', 'p.merchant_id').select(['p.merchant_id', 'm.suspended_at', 'm.suspended_reason']).where('p.id', '=', paymentId).executeTakeFirst();
    if (!owner) throw new DomainError(404, 'payment_not_found', `no payment ${quotedId(paymentId, 'payment')}`, '/params/id');
    const merchantId = owner.merchant_id;
    const { redirect_url: pageLink, ...payment } = await this.payments.get(merchantId, paymentId);
    const listed = JSON.parse(await this.events.list(merchantId, { payment: paymentId, limit: MAX_PAGE_SIZE })) as { data: Array<{ id: string; type: string; created_at: string }>; has_more: boolean };
    const events: Array<{ id: string; type: string; created_at: string; deliveries: SupportDelivery[] }> = [];
    for (const event of listed.data.reverse()) {
      const { deliveries } = (await this.events.get(merchantId, event.id)) as { deliveries: DeliveryView[] };
      events.push({ id: event.id, type: event.type, created_at: event.created_at, deliveries: deliveries.map(forSupport) });
    }
    // A refund the acquirer has not answered has no event yet and is not in amount_refunded, but
    // its amount is held: without it, support would tell a customer no refund was made.
    const refunds = await this.ctx.database.db.selectFrom('refunds').selectAll().where('payment_id', '=', paymentId).orderBy('created_at').orderBy('id').execute();
    await writeAudit(this.ctx, this.ctx.database.db, { actor, action: 'payment.view', merchantId, target: paymentId, outcome: 'success', detail: null });
    return {
      merchant_id: merchantId,
      // A suspended merchant's captures are refused and its pages cannot be paid (decision 0027): often the answer to "what happened".
      merchant_status: owner.suspended_at === null ? ('active' as const) : ('suspended' as const),
      merchant_suspended_at: owner.suspended_at === null ? null : new Date(owner.suspended_at).toISOString(),
      merchant_suspended_reason: owner.suspended_reason,
      payment: { ...payment, page_open: pageLink !== null },
      refunds: refunds.map((r) => refundResource(r, payment.livemode)),
      events,
      older_events_left_out: listed.has_more,
    };
  }
}

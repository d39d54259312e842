import { DomainError } from '../domain/errors.js';
import { quotedId } from '../domain/ids.js';
import type { AppContext } from './context.js';
import { checkoutUrl } from './authorise.js';
import { PageTokens } from './page-token.js';
import { channelReference, detailsOf } from './payment-transitions.js';
import { paymentResource, type PaymentResource } from './payment-resource.js';

export class PaymentQueries {
  private readonly tokens: PageTokens;

  constructor(private readonly ctx: AppContext) {
    this.tokens = PageTokens.of(ctx.config.hmacKey);
  }

  /** Another merchant's payment is reported exactly like a missing one. */
  async get(merchantId: string, paymentId: string): Promise<PaymentResource> {
    const db = this.ctx.database.db;
    const row = await db.selectFrom('payments').selectAll().where('id', '=', paymentId).where('merchant_id', '=', merchantId).executeTakeFirst();
    if (!row) throw new DomainError(404, 'payment_not_found', `no payment ${quotedId(paymentId, 'payment')} for this secret key's merchant`, '/params/id');
    let redirectUrl: string | undefined;
    // A merchant-initiated payment awaits its acquirer without a page until it is stepped up.
    if (row.status === 'requires_action') {
      const session = await db.selectFrom('checkout_sessions').select('payment_id').where('payment_id', '=', row.id).executeTakeFirst();
      if (session) redirectUrl = checkoutUrl(this.ctx.config.publicUrl, this.tokens.mint(row.id));
    }
    return paymentResource(this.ctx.vault, row, await channelReference(db, row.channel_id), detailsOf(row), redirectUrl);
  }
}

import { type KeyScope, channelsIn, paymentNotFound } from './key-scope.js';
import type { AppContext } from './context.js';
import { checkoutUrl } from './authorise.js';
import { PageTokens } from './page-token.js';
import { detailsOf, paymentChannel } from './payment-transitions.js';
import { paymentResource, type PaymentResource } from './payment-resource.js';

export class PaymentQueries {
  private readonly tokens: PageTokens;

  constructor(private readonly ctx: AppContext) {
    this.tokens = PageTokens.of(ctx.config.hmacKey);
  }

  /** Another merchant's payment, and one of the other mode than the key's, is reported exactly like a missing one. */
  async get(merchantId: string, paymentId: string, scope: KeyScope = null): Promise<PaymentResource> {
    const db = this.ctx.database.db;
    let q = db.selectFrom('payments').selectAll().where('id', '=', paymentId).where('merchant_id', '=', merchantId);
    if (scope !== null) q = q.where('channel_id', 'in', channelsIn(db, scope));
    const row = await q.executeTakeFirst();
    if (!row) throw paymentNotFound(paymentId, scope);
    let redirectUrl: string | undefined;
    // A merchant-initiated payment awaits its acquirer without a page until it is stepped up.
    if (row.status === 'requires_action') {
      const session = await db.selectFrom('checkout_sessions').select('payment_id').where('payment_id', '=', row.id).executeTakeFirst();
      if (session) redirectUrl = checkoutUrl(this.ctx.config.publicUrl, this.tokens.mint(row.id));
    }
    return paymentResource(this.ctx.vault, row, await paymentChannel(db, row.channel_id), detailsOf(row), redirectUrl);
  }
}

import type { AppContext } from './context.js';
import { Merchants } from './merchants.js';
import { Authorise } from './authorise.js';
import { Checkout } from './checkout.js';
import { Idempotency } from './idempotency.js';
import { PaymentQueries } from './payment-queries.js';

/** The use cases, wired once over one context. */
export interface Services {
  ctx: AppContext;
  merchants: Merchants;
  idempotency: Idempotency;
  authorise: Authorise;
  checkout: Checkout;
  payments: PaymentQueries;
}

export function buildServices(ctx: AppContext): Services {
  const idempotency = new Idempotency(ctx);
  return {
    ctx,
    merchants: new Merchants(ctx),
    idempotency,
    authorise: new Authorise(ctx, idempotency),
    checkout: new Checkout(ctx),
    payments: new PaymentQueries(ctx),
  };
}

import type { AppContext } from './context.js';
import { Merchants } from './merchants.js';
import { Authorise } from './authorise.js';
import { Checkout } from './checkout.js';
import { Idempotency } from './idempotency.js';
import { PaymentQueries } from './payment-queries.js';
import { OutboxSignal } from './outbox-signal.js';
import { WebhookEndpoints } from './webhook-endpoints.js';
import { EventQueries } from './event-queries.js';
import { Lifecycle } from './lifecycle.js';
import { PaymentList } from './payment-list.js';
import { StoredCards } from './stored-cards.js';
import { Compliance } from './compliance.js';
import { PaymentSupport } from './payment-support.js';

/** The use cases, wired once over one context. */
export interface Services {
  ctx: AppContext;
  merchants: Merchants;
  idempotency: Idempotency;
  authorise: Authorise;
  checkout: Checkout;
  payments: PaymentQueries;
  /** Rung after commits that wrote events, so the dispatcher wakes at once. */
  outbox: OutboxSignal;
  webhookEndpoints: WebhookEndpoints;
  events: EventQueries;
  lifecycle: Lifecycle;
  paymentList: PaymentList;
  storedCards: StoredCards;
  compliance: Compliance;
  /** The operator's view of one payment, its events and deliveries. */
  support: PaymentSupport;
}

export function buildServices(ctx: AppContext): Services {
  const idempotency = new Idempotency(ctx);
  const outbox = OutboxSignal.of(ctx.database);
  const payments = new PaymentQueries(ctx);
  const events = new EventQueries(ctx, outbox);
  return {
    ctx,
    merchants: new Merchants(ctx),
    idempotency,
    authorise: new Authorise(ctx, idempotency),
    checkout: new Checkout(ctx),
    payments,
    outbox,
    webhookEndpoints: new WebhookEndpoints(ctx, idempotency),
    events,
    lifecycle: new Lifecycle(ctx, idempotency),
    paymentList: new PaymentList(ctx),
    storedCards: new StoredCards(ctx),
    compliance: new Compliance(ctx),
    support: new PaymentSupport(ctx, payments, events),
  };
}

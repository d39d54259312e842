import { Type } from '@sinclair/typebox';
import { PAYMENT_STATUSES } from '../../domain/payment-state.js';
import { Nullable, Timestamp } from './common.js';
import { PartyDetails, Customer, Name, PaymentData } from './payment-request.js';

/** As sent back: every field given or defaulted, except the previous_* references only merchant-initiated payments carry and an instalment plan's length. */
const { previous_network_reference, previous_payment_id, instalments, ...always } = PaymentData.properties;
const PaymentDataResource = Type.Object({ ...Type.Required(Type.Object(always)).properties, previous_network_reference, previous_payment_id, instalments });

/** What any resource shows of a card: at most BIN and last 4. */
export const CardSummary = Type.Object({
  brand: Type.String(),
  bin: Type.String({ description: 'First 6 digits; fewer for a card number under 15 digits (the first 5 of 14, 4 of 13), so that at least 5 digits stay hidden.' }),
  last4: Type.String(),
  expiry_month: Type.Integer(),
  expiry_year: Type.Integer(),
  fingerprint: Type.String({ description: 'Same card, same fingerprint (keyed hash; not reversible).' }),
});

const Card = Type.Object({
  ...CardSummary.properties,
  name: Nullable(Type.Object(Name.properties, { description: 'The cardholder name as sent, empty parts left out.' })),
});

export const Payment = Type.Object(
  {
    id: Type.String({ description: 'pay_…' }),
    object: Type.Literal('payment'),
    livemode: Type.Boolean({ description: 'true for a payment on a live channel, false on a sandbox one. A sandbox secret key (sk_test_…) sees only payments with false, a live key (sk_live_…) only true ones.' }),
    status: Type.Union(PAYMENT_STATUSES.map((s) => Type.Literal(s))),
    amount: Type.Integer({ description: 'Authorised amount in minor units.' }),
    currency: Type.String({ description: 'ISO 4217 code; every amount of the payment is in its minor units (1050 USD is 10.50, 1050 JPY is 1,050, 1050 KWD is 1.050).' }),
    amount_captured: Type.Integer({ description: 'Captured amount in minor units: 0 until captured, less than amount after a partial capture.' }),
    amount_refunded: Type.Integer({ description: 'Refunded amount in minor units, refunds that succeeded only: a pending one holds its amount without being counted here.' }),
    channel: Type.String(),
    reference: Nullable(Type.String()),
    capture: Type.String(),
    capture_delay: Nullable(Type.String()),
    capture_at: Nullable(Timestamp),
    payment_method: Type.Object({ type: Type.Literal('card'), token: Nullable(Type.String({ description: 'pm_… when the card was stored.' })), card: Card }),
    payment_data: PaymentDataResource,
    customer: Nullable(Customer),
    billing_details: Nullable(PartyDetails),
    shipping_details: Nullable(PartyDetails),
    metadata: Type.Record(Type.String(), Type.String()),
    decline_code: Nullable(Type.String()),
    decline_message: Nullable(Type.String()),
    retry_advice: Nullable(Type.Union([Type.Literal('do_not_retry'), Type.Literal('retry_later'), Type.Literal('retry_with_new_details')])),
    failure_message: Nullable(Type.String()),
    authorisation_code: Nullable(Type.String()),
    network_reference: Nullable(Type.String({ description: 'Card scheme transaction id; quote it on merchant-initiated follow-ups.' })),
    initial_network_reference: Nullable(Type.String({ description: 'Merchant-initiated payments: the network reference passed to the acquirer: the agreement\'s initial payment\'s, or with an industry_usage the named payment\'s own.' })),
    redirect_url: Nullable(Type.String({ description: 'Send the customer here while status is requires_action.' })),
    return_url: Type.String(),
    sequence: Type.Integer({ description: 'Increases with every change; events carry it too.' }),
    created_at: Timestamp,
    updated_at: Timestamp,
    authorised_at: Nullable(Timestamp),
    expires_at: Nullable(Timestamp),
  },
  { $id: 'Payment' },
);

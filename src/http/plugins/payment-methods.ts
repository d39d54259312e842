import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { Services } from '../../app/services.js';
import { EmptyBody, Nullable, Timestamp, problemResponses } from '../schemas/common.js';
import { CardSummary } from '../schemas/payment-resource.js';
import { optionalJsonBody, sendJson } from '../json-reply.js';
import { merchantActor } from '../auth.js';

const PaymentMethod = Type.Object(
  {
    id: Type.String({ description: 'pm_…: use it as `{"type": "token", "token": "pm_…"}` in POST /payment/authorise.' }),
    object: Type.Literal('payment_method'),
    livemode: Type.Boolean({ description: 'true for a card stored by a payment on a live channel (its agreement, initial_payment_id, is live). A sandbox secret key (sk_test_…) sees only cards with false, a live key only true ones.' }),
    type: Type.Literal('card'),
    customer_reference: Type.String(),
    card: Type.Object({
      ...CardSummary.properties,
      expired: Type.Boolean({ description: 'Past its expiry month: payments with it are declined with expired_card until it is stored again with the new expiry.' }),
    }),
    initial_payment_id: Type.String({ description: 'The customer-initiated payment that stored the card (the live one that stored it again, for a card first stored through a sandbox channel): name it as previous_payment_id.' }),
    initial_network_reference: Nullable(Type.String({ description: "That payment's card scheme reference." })),
    created_at: Timestamp,
    updated_at: Timestamp,
    deleted: Type.Boolean(),
    deleted_at: Nullable(Timestamp),
  },
  { title: 'PaymentMethod' },
);

const PaymentMethodList = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(PaymentMethod),
  has_more: Type.Boolean({ description: "Always false: every stored card of the customer is on this one page (the same envelope as the API's paged lists)." }),
});

const CustomerParams = Type.Object({ reference: Type.String({ minLength: 1, maxLength: 128, description: 'Your customer reference (customer.reference of the payment that stored the card).' }) });
const IdParams = Type.Object({ id: Type.String({ maxLength: 64, description: 'pm_…' }) });

/** Stored cards, always seen through the merchant whose secret key asks. */
export const paymentMethodRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    app.get<{ Params: { reference: string } }>(
      '/customers/:reference/payment-methods',
      {
        onRequest: app.requireSecretKey,
        schema: {
          tags: ['stored cards'],
          summary: "List a customer's stored cards",
          description: 'Cards stored with `store_for_future_use` under this customer reference, oldest first. Deleted cards are not listed.',
          security: [{ secretKey: [] }],
          params: CustomerParams,
          response: { 200: PaymentMethodList, ...problemResponses(400, 401) },
        },
      },
      async (request, reply) => {
        const data = await services.storedCards.list(request.merchantId, request.params.reference, request.keyMode);
        return sendJson(reply, { object: 'list', data, has_more: false });
      },
    );

    app.get<{ Params: { id: string } }>(
      '/payment-methods/:id',
      {
        onRequest: app.requireSecretKey,
        schema: { tags: ['stored cards'], summary: 'Retrieve a stored card', security: [{ secretKey: [] }], params: IdParams, response: { 200: PaymentMethod, ...problemResponses(401, 404) } },
      },
      async (request, reply) => {
        const pm = await services.storedCards.get(request.merchantId, request.params.id, request.keyMode);
        return sendJson(reply, pm);
      },
    );

    app.delete<{ Params: { id: string } }>(
      '/payment-methods/:id',
      {
        onRequest: app.requireSecretKey,
        ...optionalJsonBody,
        config: { ...optionalJsonBody.config, whileSuspended: true },
        schema: {
          tags: ['stored cards'],
          summary: 'Delete a stored card',
          description: 'Erases the encrypted card number for good. Later payments with the token are refused with `payment_method_deleted`. Deleting again answers the same.',
          security: [{ secretKey: [] }],
          params: IdParams,
          body: EmptyBody,
          response: { 200: PaymentMethod, ...problemResponses(401, 404) },
        },
      },
      async (request, reply) => {
        const pm = await services.storedCards.remove(merchantActor(request), request.merchantId, request.params.id, request.keyMode);
        return sendJson(reply, pm);
      },
    );
  };

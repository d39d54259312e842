import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../app/services.js';
import type { StoredResponse } from '../../app/idempotency.js';
import { AuthoriseRequest, type AuthoriseRequestBody } from '../schemas/payment-request.js';
import { Payment } from '../schemas/payment-resource.js';
import { problemResponses } from '../schemas/common.js';

export const IdempotencyHeaders = Type.Object({
  // Described in the served document (src/http/openapi-finish.ts), with this gateway's IDEMPOTENCY_TTL_HOURS.
  'idempotency-key': Type.Optional(Type.String()),
});

export function idempotencyKey(request: FastifyRequest): string | undefined {
  return request.headers['idempotency-key'] as string | undefined;
}

const ID_OPENING = '{"id":"';

/**
 * A stored answer as first sent; a 201 names where the created resource is read
 * (`collection` + its id, the body's first member, taken without parsing it).
 */
export function sendStored(reply: FastifyReply, stored: StoredResponse, collection?: string): FastifyReply {
  if (stored.replayed) reply.header('idempotent-replayed', 'true');
  if (collection !== undefined && stored.status === 201 && stored.body.startsWith(ID_OPENING)) {
    reply.header('location', collection + stored.body.slice(ID_OPENING.length, stored.body.indexOf('"', ID_OPENING.length)));
  }
  return reply.code(stored.status).header('content-type', 'application/json; charset=utf-8').send(stored.body);
}

export const PaymentIdParams = Type.Object({ id: Type.String({ maxLength: 64, description: 'pay_…' }) });

export const paymentRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    app.post<{ Body: AuthoriseRequestBody }>(
      '/payment/authorise',
      {
        onRequest: app.requireSecretKey,
        schema: {
          tags: ['payments'],
          summary: 'Authorise a card payment',
          description:
            'Creates a payment from card data and answers with `redirect_url`, the unique page where the customer finalises it (3-D Secure). The customer then returns to the channel\'s return URL with a signed `payment_id`, `status` and `reference` but no amount: check that `payment_id` is the one stored with the order and read the payment with `GET /payment/{id}` (or wait for the callback) before shipping. A declined payment is a payment with status `declined`, not an error. 403 `merchant_suspended` while the operator has the merchant suspended (new payments and stored-card charges are refused; reads, refunds and voids still work).',
          security: [{ secretKey: [] }],
          headers: IdempotencyHeaders,
          body: AuthoriseRequest,
          response: { 201: Payment, ...problemResponses(400, 401, 403, 404, 409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const stored = await services.authorise.execute({
          merchantId: request.merchantId,
          keyMode: request.keyMode,
          body: request.body,
          rawBody: request.rawBody ?? '',
          idempotencyKey: idempotencyKey(request),
        });
        return sendStored(reply, stored, '/payment/');
      },
    );

    app.get<{ Params: { id: string } }>(
      '/payment/:id',
      {
        onRequest: app.requireSecretKey,
        schema: { tags: ['payments'], summary: 'Retrieve a payment', security: [{ secretKey: [] }], params: PaymentIdParams, response: { 200: Payment, ...problemResponses(401, 404) } },
      },
      async (request, reply) => {
        const payment = await services.payments.get(request.merchantId, request.params.id, request.keyMode);
        return reply.header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(payment));
      },
    );
  };

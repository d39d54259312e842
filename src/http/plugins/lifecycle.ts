import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { Services } from '../../app/services.js';
import { Payment } from '../schemas/payment-resource.js';
import { problemResponses } from '../schemas/common.js';
import { CaptureRequest, type CaptureRequestBody, PaymentListQuery, type PaymentListQueryString, PaymentPage, Refund, RefundList, RefundListQuery, RefundRequest, type RefundRequestBody, VoidRequest } from '../schemas/lifecycle.js';
import { IdempotencyHeaders, PaymentIdParams, idempotencyKey, sendStored } from './payments.js';
import { optionalJsonBody, sendJson } from '../json-reply.js';
import { merchantActor } from '../auth.js';
import { MAX_PAGE_SIZE } from '../../app/payment-list.js';

const RefundIdParams = Type.Object({ id: Type.String({ maxLength: 64, description: 're_…' }) });

/** After the customer has left: capture, void, refund, and finding payments again. */
export const lifecycleRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    const { lifecycle } = services;

    app.post<{ Params: { id: string }; Body: CaptureRequestBody }>(
      '/payment/:id/capture',
      {
        onRequest: app.requireSecretKey,
        ...optionalJsonBody,
        schema: {
          tags: ['payments'],
          summary: 'Capture an authorised payment',
          description:
            'Takes the money of an `authorised` payment, in full or (with `amount`) in part; a partial capture releases the rest and the payment becomes `partially_captured`. A payment is captured once. Brings a delayed capture forward. 409 `payment_not_capturable` / `amount_exceeds_capturable` / `authorisation_expired` when the state or amount does not allow it; 422 `capture_failed` when the acquirer refuses (the authorisation stands). 202 with status `capturing` when the acquirer has not confirmed yet. 403 `merchant_suspended` while the operator has the merchant suspended: nothing is taken, the authorisation stands (a void still works).',
          security: [{ secretKey: [] }],
          headers: IdempotencyHeaders,
          params: PaymentIdParams,
          body: CaptureRequest,
          response: { 200: Payment, 202: Payment, ...problemResponses(400, 401, 403, 404, 409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const stored = await lifecycle.capture({
          actor: merchantActor(request),
          merchantId: request.merchantId,
          keyMode: request.keyMode,
          paymentId: request.params.id,
          amount: request.body.amount,
          rawBody: request.rawBody ?? '',
          idempotencyKey: idempotencyKey(request),
        });
        return sendStored(reply, stored);
      },
    );

    app.post<{ Params: { id: string } }>(
      '/payment/:id/void',
      {
        onRequest: app.requireSecretKey,
        ...optionalJsonBody,
        config: { ...optionalJsonBody.config, whileSuspended: true },
        schema: {
          tags: ['payments'],
          summary: 'Void (release) an uncaptured authorisation',
          description: 'Releases the funds of an `authorised` payment and cancels a pending delayed capture; the payment becomes `voided`. A payment still waiting for its customer on its page (`requires_action`, e.g. a stepped-up merchant-initiated payment) is withdrawn instead: it becomes `cancelled` and its page pays nothing. 409 `payment_not_voidable` once it is captured (refund instead), while a capture is in progress, or while the acquirer is answering its authorisation. 422 `void_failed` when the acquirer refuses: the authorisation stands, a pending delayed capture is called off, and `payment.void_failed` is sent (also for a refusal that comes after a 202 `voiding`).',
          security: [{ secretKey: [] }],
          headers: IdempotencyHeaders,
          params: PaymentIdParams,
          body: VoidRequest,
          response: { 200: Payment, 202: Payment, ...problemResponses(400, 401, 404, 409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const stored = await lifecycle.void({ actor: merchantActor(request), merchantId: request.merchantId, keyMode: request.keyMode, paymentId: request.params.id, rawBody: request.rawBody ?? '', idempotencyKey: idempotencyKey(request) });
        return sendStored(reply, stored);
      },
    );

    app.post<{ Params: { id: string }; Body: RefundRequestBody }>(
      '/payment/:id/refund',
      {
        onRequest: app.requireSecretKey,
        ...optionalJsonBody,
        config: { ...optionalJsonBody.config, whileSuspended: true },
        schema: {
          tags: ['refunds'],
          summary: 'Refund a captured payment',
          description:
            'Creates a refund (`re_…`), in full or (with `amount`) in part; several refunds may be made up to the captured amount. The refund is returned with its own status: `succeeded`, `failed` (the acquirer refused; nothing was refunded) or `pending`. 409 `payment_not_refundable` when nothing was captured, `amount_exceeds_refundable` when the amount is more than what is left.',
          security: [{ secretKey: [] }],
          headers: IdempotencyHeaders,
          params: PaymentIdParams,
          body: RefundRequest,
          response: { 201: Refund, ...problemResponses(400, 401, 404, 409, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        const stored = await lifecycle.refund({
          actor: merchantActor(request),
          merchantId: request.merchantId,
          keyMode: request.keyMode,
          paymentId: request.params.id,
          amount: request.body.amount,
          reason: request.body.reason,
          rawBody: request.rawBody ?? '',
          idempotencyKey: idempotencyKey(request),
        });
        return sendStored(reply, stored, '/refunds/');
      },
    );

    app.get<{ Params: { id: string } }>(
      '/refunds/:id',
      {
        onRequest: app.requireSecretKey,
        schema: {
          tags: ['refunds'],
          summary: 'Retrieve a refund',
          description: "The refund as its 201 answered it, with its status now: poll a `pending` one here (or wait for `refund.succeeded` / `refund.failed`). Another merchant's refund is 404 `refund_not_found`, as a missing one is.",
          security: [{ secretKey: [] }],
          params: RefundIdParams,
          response: { 200: Refund, ...problemResponses(401, 404) },
        },
      },
      async (request, reply) => sendJson(reply, await lifecycle.getRefund(request.merchantId, request.params.id, request.keyMode)),
    );

    app.get<{ Params: { id: string }; Querystring: { limit?: number; starting_after?: string } }>(
      '/payment/:id/refunds',
      {
        onRequest: app.requireSecretKey,
        schema: {
          tags: ['refunds'],
          summary: "A payment's refunds, oldest first",
          description: `Cursor pagination: \`limit\` (1-${MAX_PAGE_SIZE}, default ${MAX_PAGE_SIZE}) and \`starting_after\` (the \`next_starting_after\` of the previous page: later refunds); \`has_more\` says whether more follow.`,
          security: [{ secretKey: [] }],
          params: PaymentIdParams,
          querystring: RefundListQuery,
          response: { 200: RefundList, ...problemResponses(400, 401, 404) },
        },
      },
      async (request, reply) => sendJson(reply, await lifecycle.listRefunds(request.merchantId, request.params.id, request.keyMode, request.query)),
    );

    app.get<{ Querystring: PaymentListQueryString }>(
      '/payments',
      {
        onRequest: app.requireSecretKey,
        schema: {
          tags: ['payments'],
          summary: 'List payments, newest first',
          description: 'Cursor pagination: `limit` (1-100, default 20) and `starting_after` (the `next_starting_after` of the previous page: older payments) or `ending_before` (a payment id: the newer ones just before it), as on `GET /events`; `has_more` says whether more lie that way. Filters combine. Each payment carries its amounts and its `timeline` of events.',
          security: [{ secretKey: [] }],
          querystring: PaymentListQuery,
          response: { 200: PaymentPage, ...problemResponses(400, 401) },
        },
      },
      async (request, reply) => sendJson(reply, await services.paymentList.list(request.merchantId, request.query, request.keyMode)),
    );
  };

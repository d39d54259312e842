import { type Static, Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyPluginAsync } from 'fastify';
import type { Services } from '../../app/services.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../../app/event-queries.js';
import { Payment } from '../schemas/payment-resource.js';
import { Refund } from '../schemas/lifecycle.js';
import { ComplianceStatus } from './compliance.js';
import { Nullable, problemResponses, StrictObject, Timestamp } from '../schemas/common.js';
import { optionalJsonBody, sendJsonText } from '../json-reply.js';
import { merchantActor } from '../auth.js';

export const Event = Type.Object(
  {
    id: Type.String({ description: 'evt_…; also the `webhook-id` header of its callbacks.' }),
    object: Type.Literal('event'),
    livemode: Type.Boolean({
      description:
        "true for an event of a live channel, false of a sandbox one: the payment's livemode, also on events recorded before payments had it. A compliance event rides one of your channels, a live one while you have one.",
    }),
    type: Type.String({ description: 'payment.created, payment.authorised, payment.captured, …' }),
    created_at: Timestamp,
    sequence: Type.Integer({ description: 'Per-payment order: a higher sequence is a later state of the same payment.' }),
    data: Type.Object(
      { object: Type.Union([Payment, Type.Composite([Refund, Type.Object({ payment: Payment })]), Type.Omit(ComplianceStatus, ['documents'])]) },
      { description: 'payment.*: the payment as it was when the event happened; refund.*: the refund, with the payment after it under `payment`; compliance.*: your compliance status, without the document list.' },
    ),
  },
  { description: 'Exactly the body POSTed to your endpoints.' },
);

const Attempt = Type.Object({
  attempt: Type.Integer(),
  at: Timestamp,
  status_code: Nullable(Type.Integer({ description: 'HTTP status (callbacks) or SMTP reply code (e-mail); null when no answer came.' })),
  duration_ms: Type.Integer(),
  succeeded: Type.Boolean(),
  error: Nullable(Type.String()),
  response_body: Nullable(Type.String({ description: 'The first 1024 characters of the response, a NUL or a byte that is not UTF-8 shown as U+FFFD.' })),
});

const Delivery = Type.Object({
  id: Type.String({ description: 'del_…' }),
  object: Type.Literal('delivery'),
  kind: Type.Union([Type.Literal('webhook'), Type.Literal('email')]),
  endpoint_id: Nullable(Type.String()),
  url: Nullable(Type.String()),
  recipient: Nullable(Type.String()),
  status: Type.Union([Type.Literal('pending'), Type.Literal('succeeded'), Type.Literal('failed'), Type.Literal('cancelled')]),
  attempt_count: Type.Integer(),
  next_attempt_at: Nullable(Timestamp),
  last_status_code: Nullable(Type.Integer()),
  last_error: Nullable(Type.String()),
  created_at: Timestamp,
  completed_at: Nullable(Timestamp),
  attempts: Type.Array(Attempt),
});

const ListQuery = StrictObject({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, description: `Page size (default ${DEFAULT_PAGE_SIZE}).` })),
  starting_after: Type.Optional(Type.String({ maxLength: 64, description: 'The last event id of the previous page: the next (older) page.' })),
  ending_before: Type.Optional(Type.String({ maxLength: 64, description: 'The first event id of the current page: the previous (newer) page.' })),
  type: Type.Optional(Type.String({ maxLength: 512, description: 'An event type, or several separated by commas.' })),
  payment: Type.Optional(Type.String({ maxLength: 64, description: 'Only this payment\'s events (pay_…).' })),
});

const RedeliverBody = StrictObject({
  endpoint_id: Type.Optional(Type.String({ maxLength: 64, description: 'Only to this endpoint (we_…), even if it does not subscribe to the event type.' })),
});

const EventParams = Type.Object({ id: Type.String({ maxLength: 64, description: 'evt_…' }) });

/**
 * Wakes the dispatcher after every request that may have committed events that need the
 * fan-out, so a callback leaves within milliseconds instead of a poll interval.
 * Registered on the root instance so it sees every route. It rings once the answer is
 * ready (onSend), not once it has been sent (onResponse): Fastify runs onResponse only
 * when the answer reached the socket, and a client that hung up while its payment was
 * being written (a timeout, a load tool stopping) left committed events to the poll.
 */
export function wakeDispatcherAfterWrites(app: FastifyInstance, services: Services): void {
  const ring = () => services.outbox.notifyIfExpected();
  app.addHook('onSend', async (request, _reply, payload) => {
    // After the answer is written: a pass's first statements run synchronously on SQLite,
    // and the request that rang should not wait for them.
    if (request.method !== 'GET' && request.method !== 'HEAD' && request.method !== 'OPTIONS') setImmediate(ring);
    return payload;
  });
}

export const eventRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    const events = services.events;
    const common = { tags: ['webhooks'], security: [{ secretKey: [] }] };

    app.get<{ Querystring: Static<typeof ListQuery> }>(
      '/events',
      {
        onRequest: app.requireSecretKey,
        schema: {
          ...common,
          summary: 'List events',
          description: 'Newest first. Page with `starting_after` (older: the `next_starting_after` of the previous page) or `ending_before` (newer) and `has_more`; filter by `type` and `payment`. A key with a mode lists its mode\'s events and the compliance events, which are the merchant\'s.',
          querystring: ListQuery,
          response: {
            200: Type.Object({
              object: Type.Literal('list'),
              data: Type.Array(Event),
              has_more: Type.Boolean({ description: 'More events past this page in the direction it was read: older ones, or newer ones for a page read with ending_before.' }),
              next_starting_after: Nullable(Type.String({ description: 'Pass as starting_after for the next, older page; null when there is none.' })),
            }),
            ...problemResponses(400, 401),
          },
        },
      },
      async (request, reply) => sendJsonText(reply, await events.list(request.merchantId, request.query, request.keyMode)),
    );

    app.get<{ Params: { id: string } }>(
      '/events/:id',
      {
        onRequest: app.requireSecretKey,
        schema: {
          ...common,
          summary: 'Retrieve an event with its deliveries',
          description: 'The event, plus every delivery (callback endpoint or e-mail address) with each attempt: time, status code, latency, error and the start of the response body. A key with a mode sees its mode\'s events and the compliance events, and only the deliveries to the endpoints it reaches (e-mails of its mode\'s events only).',
          params: EventParams,
          response: { 200: Type.Composite([Event, Type.Object({ deliveries: Type.Array(Delivery) })]), ...problemResponses(401, 404) },
        },
      },
      async (request, reply) => sendJsonText(reply, JSON.stringify(await events.get(request.merchantId, request.params.id, request.keyMode))),
    );

    app.post<{ Params: { id: string }; Body: Static<typeof RedeliverBody> }>(
      '/events/:id/redeliver',
      {
        onRequest: app.requireSecretKey,
        ...optionalJsonBody,
        config: { ...optionalJsonBody.config, whileSuspended: true },
        schema: {
          ...common,
          summary: 'Send an event again',
          description:
            "Queues the event again for `endpoint_id`, or for every enabled endpoint subscribed to its type and mode; each starts a fresh retry schedule and keeps its earlier attempts. Answers 202 with those deliveries. Callbacks only: e-mails are not re-sent. Only endpoints the key reaches (its mode's; a live key also those of keys made before modes) can be named; one of the other mode than the event's is 409 `webhook_endpoint_mode_mismatch`.",
          params: EventParams,
          body: RedeliverBody,
          response: {
            202: Type.Object(
              { object: Type.Literal('redelivery'), event: Type.String(), deliveries: Type.Array(Delivery) },
              { description: 'Accepted: the deliveries queued to carry the event again.' },
            ),
            ...problemResponses(400, 401, 404, 409),
          },
        },
      },
      async (request, reply) => sendJsonText(reply, JSON.stringify(await events.redeliver(merchantActor(request), request.merchantId, request.params.id, request.body.endpoint_id, request.keyMode)), 202),
    );
  };

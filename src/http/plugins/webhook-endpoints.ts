import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { Services } from '../../app/services.js';
import { DEFAULT_OVERLAP_HOURS, MAX_ENDPOINTS_PER_MERCHANT, MAX_OVERLAP_HOURS } from '../../app/webhook-endpoints.js';
import { EVENT_TYPES } from '../../domain/event-types.js';
import { EmptyBody, Nullable, problemResponses, StrictObject, Timestamp } from '../schemas/common.js';
import { merchantActor } from '../auth.js';
import { optionalJsonBody, sendJson } from '../json-reply.js';
import { IdempotencyHeaders, idempotencyKey, sendStored } from './payments.js';

const EventType = Type.String({ maxLength: 64, description: `An event type (${EVENT_TYPES.join(', ')}) or "*" for all.` });
const Url = Type.String({ minLength: 1, maxLength: 2048, description: 'Where callbacks are POSTed. https only in live mode; must resolve to a public address. At most 2048 characters also as stored, with characters outside ASCII percent-encoded.' });
const Description = Type.String({ maxLength: 200 });

const CreateEndpoint = StrictObject({
  url: Url,
  events: Type.Array(EventType, { minItems: 1, maxItems: 32, description: 'Event types to receive; ["*"] for all.' }),
  channel: Type.Optional(Nullable(Type.String({ maxLength: 64, description: 'Channel reference: only this channel\'s events. Omit (or null) for all channels; an empty string is 404 channel_not_found, not all channels.' }))),
  description: Type.Optional(Nullable(Description)),
});

const UpdateEndpoint = StrictObject({
  url: Type.Optional(Url),
  events: Type.Optional(Type.Array(EventType, { minItems: 1, maxItems: 32 })),
  channel: Type.Optional(Nullable(Type.String({ maxLength: 64 }))),
  description: Type.Optional(Nullable(Description)),
  status: Type.Optional(Type.Union([Type.Literal('enabled'), Type.Literal('disabled')], { description: 'Re-enable an endpoint disabled after a 410, or pause one.' })),
});

const RotateSecret = StrictObject({
  overlap_hours: Type.Optional(
    Type.Integer({ minimum: 0, maximum: MAX_OVERLAP_HOURS, description: `How long the old secret keeps signing beside the new one (default ${DEFAULT_OVERLAP_HOURS}).` }),
  ),
});

export const WebhookEndpoint = Type.Object(
  {
    id: Type.String({ description: 'we_…' }),
    object: Type.Literal('webhook_endpoint'),
    url: Type.String(),
    events: Type.Array(Type.String()),
    channel: Nullable(Type.String()),
    livemode: Nullable(
      Type.Boolean({
        description:
          "The mode of the events it takes, the mode of the key that registered it: true live, false sandbox; null for both, an endpoint registered by a key made before modes. A sandbox key (sk_test_…) sees and changes only endpoints with false, a live key (sk_live_…) those with true and null.",
      }),
    ),
    description: Nullable(Type.String()),
    status: Type.Union([Type.Literal('enabled'), Type.Literal('disabled')]),
    disabled_reason: Nullable(Type.String()),
    previous_secret_expires_at: Nullable(Timestamp),
    created_at: Timestamp,
    updated_at: Timestamp,
    secret: Type.Optional(Type.String({ description: 'whsec_…: shown only when the endpoint is created and when the secret is rotated.' })),
  },
  { description: 'A callback endpoint.' },
);

/** The answers that show the signing secret (create, rotate): there it is always present. */
const WebhookEndpointWithSecret = Type.Composite([Type.Omit(WebhookEndpoint, ['secret']), Type.Object({ secret: Type.String({ description: 'whsec_…: keep it, it is not shown again.' }) })], {
  description: 'A callback endpoint with its signing secret.',
});

const WebhookEndpointList = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(WebhookEndpoint),
  has_more: Type.Boolean({ description: "Always false: a merchant's endpoints, at most 16, are all on this one page (the same envelope as the API's paged lists)." }),
});

const EndpointParams = Type.Object({ id: Type.String({ maxLength: 64, description: 'we_…' }) });

/** CRUD for callback endpoints, scoped to the secret key's merchant and mode (decision 0032). */
export const webhookEndpointRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    const endpoints = services.webhookEndpoints;
    const common = { tags: ['webhooks'], security: [{ secretKey: [] }] };

    app.post<{ Body: Static<typeof CreateEndpoint> }>(
      '/webhook-endpoints',
      {
        onRequest: app.requireSecretKey,
        config: { whileSuspended: true },
        schema: {
          ...common,
          summary: 'Register a callback endpoint',
          description: `Answers 201 with the endpoint and its signing secret (\`whsec_…\`), shown only here and on rotation. Callbacks are signed per Standard Webhooks v1. The endpoint takes the events of the key's mode only (\`livemode\`): a sandbox key's endpoint sandbox payments' events, a live key's live ones (compliance events reach both). At most ${MAX_ENDPOINTS_PER_MERCHANT} endpoints per merchant, sandbox and live together. 400 \`url_address_not_allowed\` for loopback, private, link-local and metadata targets (live mode); 403 \`key_mode_mismatch\` for a \`channel\` of the other mode than the key's.`,
          headers: IdempotencyHeaders,
          body: CreateEndpoint,
          response: { 201: WebhookEndpointWithSecret, ...problemResponses(400, 401, 403, 404, 409) },
        },
      },
      async (request, reply) => sendStored(reply, await endpoints.create(merchantActor(request), request.merchantId, request.keyMode, request.body, { idempotencyKey: idempotencyKey(request), rawBody: request.rawBody ?? '' }), '/webhook-endpoints/'),
    );

    app.get(
      '/webhook-endpoints',
      {
        onRequest: app.requireSecretKey,
        schema: { ...common, summary: 'List callback endpoints', response: { 200: WebhookEndpointList, ...problemResponses(401) } },
      },
      async (request, reply) => sendJson(reply, { object: 'list', data: await endpoints.list(request.merchantId, request.keyMode), has_more: false }),
    );

    app.get<{ Params: { id: string } }>(
      '/webhook-endpoints/:id',
      { onRequest: app.requireSecretKey, schema: { ...common, summary: 'Retrieve a callback endpoint', params: EndpointParams, response: { 200: WebhookEndpoint, ...problemResponses(401, 404) } } },
      async (request, reply) => sendJson(reply, await endpoints.get(request.merchantId, request.params.id, request.keyMode)),
    );

    app.patch<{ Params: { id: string }; Body: Static<typeof UpdateEndpoint> }>(
      '/webhook-endpoints/:id',
      {
        onRequest: app.requireSecretKey,
        config: { whileSuspended: true },
        schema: {
          ...common,
          summary: 'Update a callback endpoint',
          description: "Its mode stays the one it was registered in; a `channel` of the other mode is 403 `key_mode_mismatch`.",
          params: EndpointParams,
          body: UpdateEndpoint,
          response: { 200: WebhookEndpoint, ...problemResponses(400, 401, 403, 404) },
        },
      },
      async (request, reply) => sendJson(reply, await endpoints.update(merchantActor(request), request.merchantId, request.params.id, request.keyMode, request.body)),
    );

    app.delete<{ Params: { id: string } }>(
      '/webhook-endpoints/:id',
      {
        onRequest: app.requireSecretKey,
        ...optionalJsonBody,
        config: { ...optionalJsonBody.config, whileSuspended: true },
        schema: {
          ...common,
          summary: 'Delete a callback endpoint',
          description: 'Its pending deliveries are cancelled; past deliveries stay visible on the events.',
          params: EndpointParams,
          body: EmptyBody,
          response: { 200: Type.Object({ id: Type.String(), object: Type.Literal('webhook_endpoint'), deleted: Type.Literal(true) }), ...problemResponses(401, 404) },
        },
      },
      async (request, reply) => sendJson(reply, await endpoints.delete(merchantActor(request), request.merchantId, request.params.id, request.keyMode)),
    );

    app.post<{ Params: { id: string }; Body: Static<typeof RotateSecret> }>(
      '/webhook-endpoints/:id/rotate-secret',
      {
        onRequest: app.requireSecretKey,
        ...optionalJsonBody,
        config: { ...optionalJsonBody.config, whileSuspended: true },
        schema: {
          ...common,
          summary: 'Rotate the signing secret',
          description:
            `Answers with the new secret. During the overlap (default ${DEFAULT_OVERLAP_HOURS} h, \`overlap_hours\` 0–${MAX_OVERLAP_HOURS}) every callback carries two \`v1,\` signatures, one per secret, so receivers verify with either. ` +
            'While an earlier overlap runs, another rotation is 409 `rotation_in_progress` (it would drop the old secret before the time promised), with `Retry-After` the seconds until that overlap ends; `overlap_hours` 0 ends the overlap at once. Send Idempotency-Key to retry safely: a retry answers with the same secret.',
          headers: IdempotencyHeaders,
          params: EndpointParams,
          body: RotateSecret,
          response: { 200: WebhookEndpointWithSecret, ...problemResponses(400, 401, 404, 409) },
        },
      },
      async (request, reply) =>
        sendStored(reply, await endpoints.rotateSecret(merchantActor(request), request.merchantId, request.params.id, request.keyMode, request.body.overlap_hours, { idempotencyKey: idempotencyKey(request), rawBody: request.rawBody ?? '' })),
    );
  };

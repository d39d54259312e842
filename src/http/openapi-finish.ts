import type { SwaggerTransformObject } from '@fastify/swagger';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config.js';
import { statusTitle } from './problem.js';
import { Problem } from './schemas/common.js';
import { IDEMPOTENCY_KEY_PATTERN, IN_USE_RETRY_AFTER_S } from '../app/idempotency.js';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The JSON Schema of a multipart/form-data body that a content-type parser reads, for the API reference. */
    requestForm?: unknown;
  }
}

interface Response {
  description?: string;
  content?: Record<string, unknown>;
  headers?: Record<string, unknown>;
}

interface Operation {
  operationId?: string;
  security?: Array<Record<string, string[]>>;
  parameters?: Array<{ in: string; name: string; description?: string; schema?: Record<string, unknown> }>;
  requestBody?: { required?: boolean; content?: Record<string, unknown> };
  responses?: Record<string, Response>;
  [OPTIONAL_BODY]?: boolean;
  [REQUEST_FORM]?: unknown;
}

/** Route schema markers (`x-` keys are copied to the operation) that this step turns into OpenAPI. */
const OPTIONAL_BODY = 'x-body-optional';
const REQUEST_FORM = 'x-request-form';

/**
 * Copies what the API reference needs from a route's config into its schema, where the
 * OpenAPI generator sees it. Registered before the generator, whose own hook reads routes.
 */
export function markRoutesForOpenApi(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (!route.schema) return;
    const marked: Record<string, unknown> = { ...route.schema };
    if (route.config?.optionalBody) marked[OPTIONAL_BODY] = true;
    if (route.config?.requestForm) marked[REQUEST_FORM] = route.config.requestForm;
    route.schema = marked;
  });
}

/** Names for generated clients, one per operation. */
const OPERATION_IDS: Record<string, string> = {
  'GET /healthz': 'checkHealth',
  'GET /readyz': 'checkReadiness',
  'POST /payment/authorise': 'authorisePayment',
  'GET /payment/{id}': 'getPayment',
  'POST /payment/{id}/capture': 'capturePayment',
  'POST /payment/{id}/void': 'voidPayment',
  'POST /payment/{id}/refund': 'refundPayment',
  'GET /payment/{id}/refunds': 'listRefunds',
  'GET /refunds/{id}': 'getRefund',
  'GET /payments': 'listPayments',
  'GET /customers/{reference}/payment-methods': 'listPaymentMethods',
  'GET /payment-methods/{id}': 'getPaymentMethod',
  'DELETE /payment-methods/{id}': 'deletePaymentMethod',
  'GET /sandbox/test-cards': 'listTestCards',
  'GET /sandbox/inbox': 'showSandboxInbox',
  'POST /webhook-endpoints': 'createWebhookEndpoint',
  'GET /webhook-endpoints': 'listWebhookEndpoints',
  'GET /webhook-endpoints/{id}': 'getWebhookEndpoint',
  'PATCH /webhook-endpoints/{id}': 'updateWebhookEndpoint',
  'DELETE /webhook-endpoints/{id}': 'deleteWebhookEndpoint',
  'POST /webhook-endpoints/{id}/rotate-secret': 'rotateWebhookEndpointSecret',
  'GET /events': 'listEvents',
  'GET /events/{id}': 'getEvent',
  'POST /events/{id}/redeliver': 'redeliverEvent',
  'GET /merchant/compliance': 'getComplianceStatus',
  'PUT /merchant/compliance/volume': 'declareAnnualVolume',
  'POST /merchant/compliance/documents': 'uploadComplianceDocument',
  'GET /merchant/compliance/documents/{id}': 'downloadComplianceDocument',
};

const SUCCESS: Record<string, string> = { 200: 'OK', 201: 'Created', 202: 'Accepted: the acquirer has not confirmed yet; the resource says where it stands', 204: 'No Content' };

const REPLAYED_HEADER = {
  'Idempotent-Replayed': {
    description: 'Present, as `true`, when this answer is the replay of an earlier request with the same Idempotency-Key.',
    schema: { type: 'string', enum: ['true'] },
  },
};

/** Sent with every 401 (src/http/auth.ts), as RFC 9110 requires of one. */
const AUTHENTICATE_HEADER = {
  'WWW-Authenticate': { description: 'How to authenticate: `X-Secret-Key`, the header your secret key goes in.', required: true, schema: { type: 'string' } },
};

/** Sent with every answer (src/http/app.ts): the id the gateway's log and a problem's `request_id` carry. */
const REQUEST_ID_HEADER = {
  'Request-Id': { description: 'This request\'s id, as the gateway logged it (and a problem\'s `request_id`): quote it to support.', required: true, schema: { type: 'string' as const, pattern: '^req_[0-9a-f]{24}$' } },
};

const RETRY_AFTER_HEADER = {
  'Retry-After': { description: 'Seconds to wait before sending the request again, when this process is shutting down.', schema: { type: 'string' } },
};

const IN_USE_RETRY_AFTER_HEADER = {
  'Retry-After': { description: `With \`idempotency_key_in_use\`: seconds (${IN_USE_RETRY_AFTER_S}) before the same request, sent again, gets the first one's answer.`, schema: { type: 'string' as const } },
};

const ROTATION_RETRY_AFTER_HEADER = {
  'Retry-After': {
    description: `With \`idempotency_key_in_use\`: seconds (${IN_USE_RETRY_AFTER_S}) before the same request, sent again, gets the first one's answer. With \`rotation_in_progress\`: seconds until the earlier rotation's overlap ends and another rotation is taken.`,
    schema: { type: 'string' as const },
  },
};

const ACCEPT_ENCODING_HEADER = {
  'Accept-Encoding': { description: 'When the body came with a Content-Encoding: `identity`, the only one taken.', schema: { type: 'string', enum: ['identity'] } },
};

const LOCATION_HEADER = {
  Location: { description: 'Where the created resource is read: its path on this gateway.', required: true, schema: { type: 'string' } },
};

/** Operations whose created resource has a path of its own. */
const CREATED_AT = new Set(['authorisePayment', 'refundPayment', 'createWebhookEndpoint', 'uploadComplianceDocument']);

export type DocumentedLimits = Pick<Config, 'webhookTimeoutMs' | 'webhookRetryWindowMs' | 'idempotencyTtlMs' | 'merchantRateLimit'>;

/**
 * What the routes' schemas cannot say in the served OpenAPI document: errors are sent as
 * `application/problem+json` (src/http/problem.ts); the secret key is accepted as a bearer
 * token as well as in X-Secret-Key (src/http/auth.ts); the answers every operation of a kind
 * can get (a malformed path value, a body that is not JSON or too large) without each route
 * listing them; replays under Idempotency-Key; bodies that may be left out; form uploads.
 * The limits it states are this gateway's (config.ts), not the defaults: the document is
 * served by the gateway it describes.
 */
export const finishOpenApi = (limits: DocumentedLimits): SwaggerTransformObject => (document) => {
  if (!('openapiObject' in document)) return document.swaggerObject;
  const doc = document.openapiObject;
  const schemes = (doc.components ??= {}).securitySchemes ?? {};
  doc.components.securitySchemes = { ...schemes, bearer: { type: 'http', scheme: 'bearer', description: 'The same secret key, as Authorization: Bearer sk_… (the key alone in Authorization is taken too).' } };
  const problem = { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } };
  // The answer to a method no operation of a path takes (src/http/app.ts): no operation can list it.
  doc.components.responses = {
    ...doc.components.responses,
    MethodNotAllowed: {
      description: `${statusTitle(405)}: the path exists, but not with this method.`,
      headers: { Allow: { description: 'The methods the path takes.', required: true, schema: { type: 'string' } }, ...REQUEST_ID_HEADER },
      content: problem,
    },
  };
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    for (const [method, op] of Object.entries(item ?? {}) as Array<[string, Operation]>) {
      if (!op || typeof op !== 'object' || !op.responses) continue;
      op.operationId ??= OPERATION_IDS[`${method.toUpperCase()} ${path}`];
      if (op.security?.some((s) => 'secretKey' in s)) op.security = [...op.security, { bearer: [] }];
      const responses = op.responses;
      for (const [status, response] of Object.entries(responses)) {
        const json = response.content?.['application/json'];
        if (Number(status) >= 400 && json) response.content = { 'application/problem+json': json };
        // The generator's placeholder, or the description of the Problem schema it found behind the response.
        if (response.description === 'Default Response' || response.description === Problem.description) response.description = SUCCESS[status] ?? statusTitle(Number(status));
      }
      const sometimes = (status: number, why: string) => {
        responses[status] ??= { description: `${statusTitle(status)}: ${why}`, content: problem };
      };
      // Any request, whatever its operation, may be refused before routing (src/http/client-errors.ts),
      // or meet a failure of ours or a process that is stopping (src/http/app.ts).
      sometimes(408, 'the request did not arrive in full within 60 s; the connection is closed');
      sometimes(431, 'the request line and headers are over 16 KB; the connection is closed');
      sometimes(500, 'something failed on our side; quote `request_id` to support');
      // An API operation's database may also be out of reach: a 503 too, never a 500.
      sometimes(
        503,
        op.security
          ? '`database_unavailable` (the database cannot be reached or written) or `shutting_down` (this process is stopping and started nothing for the request): send it again after Retry-After, with the same Idempotency-Key'
          : 'this process is shutting down and started nothing for the request (`shutting_down`): send it again, with the same Idempotency-Key',
      );
      responses[503]!.headers = { ...responses[503]!.headers, ...RETRY_AFTER_HEADER };
      // Every API operation refuses query parameters it does not name (src/http/strict-query.ts).
      if (op.security) sometimes(400, 'a query parameter the operation does not take (`unknown_field`), sent twice (`duplicate_key`) or not percent-encoded UTF-8 (`invalid_encoding`), or a value that breaks a rule');
      if (op.parameters?.some((p) => p.in === 'path')) {
        sometimes(400, 'a path value that is malformed or over its length limit');
        sometimes(414, 'a path value far over any limit');
      }
      if (op.requestBody?.content?.['application/json']) {
        sometimes(400, 'a body that is not JSON or breaks a rule; `param` names the field');
        sometimes(413, 'a body over the size limit');
        sometimes(415, 'a body that is not application/json in UTF-8 (`unsupported_media_type`), or one sent with a Content-Encoding (`unsupported_content_encoding`): send it uncompressed');
      }
      // Whatever the operation: no Host header, or a query value with a NUL or a lone surrogate (src/http/app.ts).
      sometimes(400, 'a request without Host, or a query value that breaks the text rules');
      if (responses[401] && op.security?.some((s) => 'secretKey' in s)) {
        // An operation that describes its own challenge (the sandbox inbox's HTTP Basic) keeps its description.
        const own = responses[401].headers?.['WWW-Authenticate'] as object | undefined;
        responses[401].headers = { ...responses[401].headers, 'WWW-Authenticate': { ...AUTHENTICATE_HEADER['WWW-Authenticate'], ...own } };
      }
      // The operations that take money list a 403: a suspended merchant's (src/http/auth.ts, decision 0027).
      if (responses[403]?.description === statusTitle(403) && op.security?.some((s) => 'secretKey' in s)) {
        const compliance =
          path === '/payment/authorise'
            ? '`key_mode_mismatch` (`param: /channel`: a live channel with a sandbox key, `sk_test_…`, or a sandbox channel with a live key; nothing was made), `compliance_required` or `compliance_expired` (card data on a live channel needs a current PCI DSS approval), or '
            : '';
        responses[403].description = `${statusTitle(403)}: ${compliance}\`merchant_suspended\` (the operator has suspended this merchant: nothing was done; reads, refunds and voids still work)`;
      }
      const rate = limits.merchantRateLimit;
      if (rate && op.security?.some((s) => 'secretKey' in s)) {
        sometimes(429, `\`rate_limited\`: this merchant's requests (all its keys of this key's mode) are over ${rate.perSecond} a second, in bursts of up to ${rate.burst}; nothing was done: send it again after Retry-After, with the same Idempotency-Key`);
        responses[429]!.headers = { ...responses[429]!.headers, 'Retry-After': { description: 'Seconds until the merchant may send a request again.', required: true, schema: { type: 'string' } } };
      }
      if (op[OPTIONAL_BODY] && op.requestBody) op.requestBody.required = false;
      delete op[OPTIONAL_BODY];
      if (op[REQUEST_FORM]) op.requestBody = { required: true, content: { 'multipart/form-data': { schema: op[REQUEST_FORM] } } };
      delete op[REQUEST_FORM];
      // No operation decodes a compressed body (src/http/app.ts).
      if (op.requestBody) {
        sometimes(415, 'a body sent with a Content-Encoding (`unsupported_content_encoding`): send it uncompressed');
        // An operation that lists a 415 of its own gets no more than its title from the generator: say what it is.
        const encoding = responses[415]!;
        if (encoding.description === statusTitle(415)) {
          const refused = op.requestBody.content?.['multipart/form-data']
            ? 'a body that is not multipart/form-data (`unsupported_media_type`), a file that is not a PDF (`document_not_pdf`)'
            : 'a body that is not application/json in UTF-8 (`unsupported_media_type`)';
          encoding.description = `${statusTitle(415)}: ${refused}, or one sent with a Content-Encoding (\`unsupported_content_encoding\`): send it uncompressed`;
        }
        responses[415]!.headers = { ...responses[415]!.headers, ...ACCEPT_ENCODING_HEADER };
      }
      const key = op.parameters?.find((p) => p.in === 'header' && p.name.toLowerCase() === 'idempotency-key');
      if (key) {
        // src/app/idempotency.ts, wherever a key is taken; it checks the key itself (400 invalid_idempotency_key).
        key.schema = { ...key.schema, pattern: IDEMPOTENCY_KEY_PATTERN.source };
        key.description = `Makes the request safe to retry: the same key and body replay the first response for ${hours(limits.idempotencyTtlMs)} hours. Not a card number, which would be stored as sent (\`400 card_number_in_text\`): use an order or attempt id.`;
        sometimes(409, 'a request with this Idempotency-Key is still being processed (`idempotency_key_in_use`): send it again after Retry-After to get its answer');
        responses[409]!.headers = { ...responses[409]!.headers, ...(op.operationId === 'rotateWebhookEndpointSecret' ? ROTATION_RETRY_AFTER_HEADER : IN_USE_RETRY_AFTER_HEADER) };
        sometimes(422, 'this Idempotency-Key was used with another body or endpoint (`idempotency_key_reused`)');
        for (const [status, response] of Object.entries(responses)) if (Number(status) < 300) response.headers = { ...response.headers, ...REPLAYED_HEADER };
      }
      // A route that lists its 400 itself gets no more than the title from the generator: say what it covers.
      const bad = responses[400];
      if (bad && bad.description === statusTitle(400)) {
        const causes = [];
        if (op.requestBody?.content?.['application/json']) causes.push('a body that is not JSON or breaks a rule (`param` names the field)');
        if (op.requestBody?.content?.['multipart/form-data']) causes.push('a form that is incomplete or malformed, or a file name holding a card number (`param` names the field)');
        if (op.parameters?.some((p) => p.in === 'path')) causes.push('a path value that is malformed or over its length limit');
        if (op.security) causes.push('a query parameter the operation does not take (`unknown_field`), sent twice (`duplicate_key`), not percent-encoded UTF-8 (`invalid_encoding`) or whose value breaks a rule');
        if (key) causes.push('an Idempotency-Key that is malformed (`invalid_idempotency_key`) or holds a card number (`card_number_in_text`)');
        causes.push('a request without Host');
        bad.description = `${statusTitle(400)}: ${causes.join('; ')}`;
      }
      const created = responses[201];
      if (created && CREATED_AT.has(op.operationId ?? '')) created.headers = { ...created.headers, ...LOCATION_HEADER };
      for (const response of Object.values(responses)) response.headers = { ...response.headers, ...REQUEST_ID_HEADER };
    }
  }
  const webhook = callbackOperation(doc.paths?.['/events/{id}']?.get as Operation | undefined, limits);
  if (webhook) (doc as { webhooks?: unknown }).webhooks = { event: { post: webhook } };
  return doc;
};

/**
 * The callbacks the gateway POSTs to merchants' endpoints (OpenAPI 3.1 `webhooks`): the body
 * is the event as `GET /events/{id}` shows it, without its deliveries.
 */
function callbackOperation(getEvent: Operation | undefined, limits: DocumentedLimits): unknown {
  const shown = getEvent?.responses?.['200']?.content?.['application/json'] as { schema?: { properties?: Record<string, unknown>; required?: string[] } } | undefined;
  if (!shown?.schema?.properties) return undefined;
  const { deliveries: _, ...properties } = shown.schema.properties;
  const timeout = `${limits.webhookTimeoutMs / 1000} s`;
  const header = (name: string, description: string) => ({ in: 'header', name, required: true, description, schema: { type: 'string' } });
  // src/domain/retry-schedule.ts: the next try waits as long as the receiver asks.
  const backOff = (title: string) => ({
    description: `${title}: retried, and with Retry-After no sooner than it asks (within the retry window).`,
    headers: { 'Retry-After': { description: 'Seconds, or an HTTP date.', schema: { type: 'string' } } },
  });
  return {
    operationId: 'receiveEvent',
    summary: "An event, POSTed to each endpoint that subscribes to its type and mode (its livemode's)",
    description: `Signed per Standard Webhooks v1 (docs/webhooks.md). Answer 2xx within ${timeout}; anything else is retried with backoff for ${hours(limits.webhookRetryWindowMs)} hours; 410 disables the endpoint.`,
    parameters: [
      header('webhook-id', 'The event id: the same on every retry and redelivery, to drop duplicates.'),
      header('webhook-timestamp', 'Unix seconds when this attempt was signed.'),
      header('webhook-signature', 'Space-separated `v1,<base64 HMAC-SHA256>`: two during a secret rotation.'),
    ],
    requestBody: {
      required: true,
      content: { 'application/json': { schema: { ...shown.schema, properties, required: (shown.schema.required ?? []).filter((r) => r !== 'deliveries'), description: 'Exactly the body POSTed to your endpoints.' } } },
    },
    responses: {
      '2XX': { description: 'Received: the delivery succeeded.' },
      '410': { description: 'Gone: the endpoint is disabled and its pending deliveries cancelled.' },
      '429': backOff('Too Many Requests'),
      '503': backOff('Service Unavailable'),
      default: { description: `Any other answer (or none within ${timeout}) is retried.` },
    },
  };
}

const hours = (ms: number) => ms / 3_600_000;

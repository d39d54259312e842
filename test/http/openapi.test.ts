import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { dateDaysAgo, declareVolume, upload } from '../compliance/fixtures.js';

type Json = Record<string, any>;
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'];

/** JSON Schema 2020-12 is the schema dialect of OpenAPI 3.1; `discriminator` is its OpenAPI vocabulary. */
function schemaValidator() {
  const ajv = new Ajv2020({ strict: false, allErrors: true, discriminator: true, validateFormats: true });
  addFormats.default(ajv);
  return ajv;
}

/** Every `$ref` in the document, with where it was found. */
function refs(node: unknown, path = '#'): Array<[string, string]> {
  if (!node || typeof node !== 'object') return [];
  if (Array.isArray(node)) return node.flatMap((v, i) => refs(v, `${path}/${i}`));
  return Object.entries(node).flatMap(([k, v]) => (k === '$ref' && typeof v === 'string' ? [[path, v] as [string, string]] : refs(v, `${path}/${k}`)));
}

function resolvePointer(doc: Json, ref: string): unknown {
  return ref
    .slice(2)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce<unknown>((node, key) => (node && typeof node === 'object' ? (node as Json)[key] : undefined), doc);
}

/** Inline the document's `#/components/schemas/…` references so a schema compiles on its own. */
function inline(doc: Json, node: unknown, depth = 0): unknown {
  assert.ok(depth < 50, 'reference cycle');
  if (!node || typeof node !== 'object') return node;
  if (Array.isArray(node)) return node.map((v) => inline(doc, v, depth + 1));
  const n = node as Json;
  if (typeof n.$ref === 'string' && n.$ref.startsWith('#/')) return inline(doc, resolvePointer(doc, n.$ref), depth + 1);
  return Object.fromEntries(Object.entries(n).map(([k, v]) => [k, inline(doc, v, depth + 1)]));
}

describe('OpenAPI document and reference page', () => {
  let t: TestGateway;
  let doc: Json;

  before(async () => {
    t = await startTestGateway();
    const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    // Public and the same for everyone: the one answer caches may keep.
    assert.equal(res.headers['cache-control'], 'public, max-age=300');
    doc = res.json();
  });
  after(() => t?.close());

  it('is an OpenAPI 3.1 document with the required top-level members', () => {
    assert.equal(doc.openapi, '3.1.0');
    assert.equal(typeof doc.info.title, 'string');
    assert.equal(typeof doc.info.version, 'string');
    assert.equal(doc.servers[0].url, t.config.publicUrl);
    assert.deepEqual(doc.components.securitySchemes.secretKey, {
      type: 'apiKey',
      in: 'header',
      name: 'X-Secret-Key',
      description: doc.components.securitySchemes.secretKey.description,
    });
    // The same key as a bearer token (src/http/auth.ts), offered wherever X-Secret-Key is.
    assert.deepEqual([doc.components.securitySchemes.bearer.type, doc.components.securitySchemes.bearer.scheme], ['http', 'bearer']);
  });

  it('has well-formed operations: responses, unique ids, declared security, path parameters', () => {
    const operationIds = new Set<string>();
    for (const [path, item] of Object.entries<Json>(doc.paths)) {
      assert.ok(path.startsWith('/'), path);
      const templated = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]);
      for (const [method, op] of Object.entries<Json>(item)) {
        if (!METHODS.includes(method)) continue;
        const where = `${method.toUpperCase()} ${path}`;
        assert.ok(op.responses && Object.keys(op.responses).length > 0, `${where} has no responses`);
        for (const [status, response] of Object.entries<Json>(op.responses)) {
          assert.match(status, /^([1-5]\d\d|[1-5]XX|default)$/, where);
          assert.equal(typeof (response.description ?? resolvePointer(doc, response.$ref ?? '#/x')), 'string', `${where} ${status} has no description`);
        }
        if (op.operationId) {
          assert.ok(!operationIds.has(op.operationId), `duplicate operationId ${op.operationId}`);
          operationIds.add(op.operationId);
        }
        for (const s of op.security ?? []) for (const name of Object.keys(s)) assert.ok(doc.components.securitySchemes[name], `${where}: unknown security scheme ${name}`);
        const pathParams = (op.parameters ?? []).filter((p: Json) => p.in === 'path').map((p: Json) => p.name);
        assert.deepEqual(pathParams.sort(), [...templated].sort(), `${where}: path parameters`);
        for (const p of op.parameters ?? []) {
          assert.ok(['path', 'query', 'header', 'cookie'].includes(p.in), `${where}: parameter in ${p.in}`);
          if (p.in === 'path') assert.equal(p.required, true, `${where}: path parameter ${p.name} must be required`);
        }
      }
    }
  });

  it('names every operation and lists the answers any operation of its kind can get', () => {
    for (const [path, item] of Object.entries<Json>(doc.paths)) {
      for (const [method, op] of Object.entries<Json>(item)) {
        if (!METHODS.includes(method)) continue;
        const where = `${method.toUpperCase()} ${path}`;
        assert.match(String(op.operationId), /^[a-z][A-Za-z]+$/, `${where} has no operationId`);
        const statuses = Object.keys(op.responses);
        if ((op.parameters ?? []).some((p: Json) => p.in === 'path')) assert.ok(['400', '414'].every((s) => statuses.includes(s)), `${where}: ${statuses}`);
        // A request without Host or with a NUL in a query value, one too slow or with too much header,
        // a failure of ours, a process shutting down.
        assert.ok(['400', '408', '431', '500', '503'].every((s) => statuses.includes(s)), `${where}: ${statuses}`);
        assert.ok(op.responses['503'].headers['Retry-After'], `${where}: 503 without Retry-After`);
        if (op.security) assert.match(op.responses['503'].description, /database_unavailable/, `${where}: a database outage is a 503`);
        if (op.requestBody?.content?.['application/json']) assert.ok(['400', '413', '415'].every((s) => statuses.includes(s)), `${where}: ${statuses}`);
        if ((op.parameters ?? []).some((p: Json) => p.name.toLowerCase() === 'idempotency-key')) assert.ok(['409', '422'].every((s) => statuses.includes(s)), `${where}: ${statuses}`);
        for (const status of statuses.filter((s) => Number(s) >= 400)) {
          assert.ok(op.responses[status].content['application/problem+json'], `${where} ${status}`);
          // Named by what the status means, not by the error format every one of them shares.
          assert.doesNotMatch(op.responses[status].description, /RFC 9457/, `${where} ${status}`);
        }
        assert.ok(!Object.keys(op).some((k) => k.startsWith('x-')), `${where} keeps a marker`);
      }
    }
  });

  it('says which bodies may be left out, how documents are uploaded, and when an answer is a replay', () => {
    for (const path of ['/payment/{id}/capture', '/payment/{id}/void', '/payment/{id}/refund', '/events/{id}/redeliver', '/webhook-endpoints/{id}/rotate-secret']) {
      assert.equal(doc.paths[path].post.requestBody.required, false, path);
    }
    assert.equal(doc.paths['/payment/authorise'].post.requestBody.required, true);
    const form = doc.paths['/merchant/compliance/documents'].post.requestBody.content['multipart/form-data'].schema;
    assert.deepEqual(Object.keys(form.properties).sort(), ['document_date', 'document_type', 'file']);
    assert.deepEqual([...form.required].sort(), ['document_date', 'document_type', 'file']);
    assert.ok(doc.paths['/payment/authorise'].post.responses['201'].headers['Idempotent-Replayed']);
    // A created resource's path, where it has one of its own.
    for (const path of ['/payment/authorise', '/payment/{id}/refund', '/webhook-endpoints', '/merchant/compliance/documents']) {
      assert.deepEqual([doc.paths[path].post.responses['201'].headers.Location.schema.type, doc.paths[path].post.responses['201'].headers.Location.required], ['string', true], path);
    }
    assert.ok(doc.paths['/refunds/{id}'].get.responses['200'], 'a refund is read at its Location');
    assert.match(doc.paths['/webhook-endpoints/{id}/rotate-secret'].post.responses['409'].headers['Retry-After'].description, /rotation_in_progress/);
    // A 202 means the acquirer has not confirmed only where a payment is settled.
    assert.doesNotMatch(doc.paths['/events/{id}/redeliver'].post.responses['202'].description, /acquirer/);
    assert.deepEqual(Object.keys(doc.paths['/payment/{id}'].get.responses['200'].headers), ['Request-Id']);
    assert.equal(doc.components.responses.MethodNotAllowed.headers['Request-Id'].required, true);
    const device = (inline(doc, doc.paths['/payment/authorise'].post.requestBody.content['application/json'].schema) as Json).properties.device_info;
    assert.match(device.description, /requires ip_address, accept_header, .*userAgent; in-app .* requires sdk_app_id/);
  });

  it('says of every amount, asked or answered, that it is in minor units, and of every currency that it is ISO 4217', () => {
    const unsaid: string[] = [];
    const walk = (node: unknown, path: string): void => {
      if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${path}/${i}`));
      if (node === null || typeof node !== 'object') return;
      for (const [name, value] of Object.entries(node as Record<string, unknown>)) {
        const schema = value as { type?: string; description?: string } | null;
        // A client generated from the document would otherwise show amount_captured 1050 as 1050 dollars.
        if (/^amount/.test(name) && schema?.type === 'integer' && !/minor units/i.test(schema.description ?? '')) unsaid.push(`${path}/${name}`);
        if (name === 'currency' && schema?.type === 'string' && !/ISO 4217/.test(schema.description ?? '')) unsaid.push(`${path}/${name}`);
        walk(value, `${path}/${name}`);
      }
    };
    walk(doc.components, '#/components');
    walk(doc.paths, '#/paths');
    assert.deepEqual(unsaid, []);
  });

  it('resolves every $ref and every schema is valid JSON Schema 2020-12', () => {
    for (const [where, ref] of refs(doc)) {
      assert.ok(ref.startsWith('#/'), `${where}: external ref ${ref}`);
      assert.ok(resolvePointer(doc, ref) !== undefined, `${where}: unresolved ${ref}`);
    }
    const ajv = schemaValidator();
    const schemas: Array<[string, unknown]> = [];
    for (const [path, item] of Object.entries<Json>(doc.paths)) {
      for (const [method, op] of Object.entries<Json>(item)) {
        if (!METHODS.includes(method)) continue;
        for (const [type, media] of Object.entries<Json>(op.requestBody?.content ?? {})) schemas.push([`${method} ${path} request ${type}`, media.schema]);
        for (const [status, response] of Object.entries<Json>(op.responses)) {
          for (const [type, media] of Object.entries<Json>(response.content ?? {})) schemas.push([`${method} ${path} ${status} ${type}`, media.schema]);
        }
        for (const p of op.parameters ?? []) schemas.push([`${method} ${path} parameter ${p.name}`, p.schema]);
      }
    }
    for (const [name, schema] of Object.entries(doc.components.schemas ?? {})) schemas.push([`components.schemas.${name}`, schema]);
    assert.ok(schemas.length > 10);
    for (const [where, schema] of schemas) {
      const resolved = inline(doc, schema) as Json;
      assert.ok(ajv.validateSchema(resolved), `${where}: ${ajv.errorsText(ajv.errors)}`);
      assert.doesNotThrow(() => ajv.compile({ ...resolved, $id: undefined }), where);
    }
  });

  it('describes POST /payment/authorise: secret key, Idempotency-Key, the request body and its answers', async () => {
    const op = doc.paths['/payment/authorise'].post;
    assert.deepEqual(op.security, [{ secretKey: [] }, { bearer: [] }]);
    // The return is the customer's browser: the reference says what a merchant must check before trusting it.
    assert.match(op.description, /signed.*no amount.*GET \/payment\/\{id\}/s);
    const key = op.parameters.find((p: Json) => p.in === 'header' && p.name.toLowerCase() === 'idempotency-key');
    const keyValid = schemaValidator().compile(key.schema);
    assert.deepEqual(['k-1', 'k'.repeat(255), 'has space', 'k'.repeat(256), ''].map((k) => keyValid(k)), [true, true, false, false, false]);
    for (const status of ['201', '400', '401', '403', '404', '409', '413', '415', '422']) assert.ok(op.responses[status], `no ${status}`);

    const ajv = schemaValidator();
    const request = ajv.compile({ ...(inline(doc, op.requestBody.content['application/json'].schema) as Json), $id: undefined });
    const example = await exampleBody();
    assert.ok(request(example), ajv.errorsText(request.errors));
    assert.equal(request({ ...example, surprise: true }), false);
    assert.equal(request({ ...example, amount: '100' }), false);
    assert.equal(request({ ...example, payment_method: { ...(example.payment_method as Json), type: 'cash' } }), false);
    for (const field of ['channel', 'amount', 'currency', 'device_info', 'reference', 'metadata', 'customer', 'payment_method', 'payment_data', 'capture', 'capture_delay', 'billing_details', 'shipping_details']) {
      assert.ok(field in op.requestBody.content['application/json'].schema.properties, `request schema lacks ${field}`);
    }
  });

  it("matches the gateway's real answers: the Payment resource and problems", async () => {
    const ajv = schemaValidator();
    const created = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody() });
    assert.equal(created.statusCode, 201, created.body);
    const paymentSchema = inline(doc, doc.paths['/payment/authorise'].post.responses['201'].content['application/json'].schema) as Json;
    for (const field of ['id', 'object', 'status', 'amount', 'currency', 'channel', 'reference', 'payment_method', 'customer', 'billing_details', 'shipping_details', 'metadata', 'redirect_url', 'created_at', 'updated_at']) {
      assert.ok(paymentSchema.properties[field], `Payment schema lacks ${field}`);
    }
    const payment = ajv.compile({ ...paymentSchema, $id: undefined });
    assert.ok(payment(created.json()), ajv.errorsText(payment.errors));

    const fetched = await t.request({ method: 'GET', url: `/payment/${created.json().id}` });
    const getSchema = ajv.compile({ ...(inline(doc, doc.paths['/payment/{id}'].get.responses['200'].content['application/json'].schema) as Json), $id: undefined });
    assert.ok(getSchema(fetched.json()), ajv.errorsText(getSchema.errors));
    const example = await exampleBody();
    const named = await t.request({ method: 'POST', url: '/payment/authorise', payload: { ...example, payment_method: { ...(example.payment_method as Json), name: { first_name: 'Ada', last_name: 'Lovelace' } } } });
    assert.deepEqual(named.json().payment_method.card.name, { first_name: 'Ada', last_name: 'Lovelace' });
    assert.ok(payment(named.json()), ajv.errorsText(payment.errors));
    const cardName = (inline(doc, doc.components.schemas.Payment ?? paymentSchema) as Json).properties.payment_method;
    assert.match(JSON.stringify(cardName), /first_name/);

    // Errors are described with the media type they are sent with.
    const problem = ajv.compile({ ...(inline(doc, doc.paths['/payment/authorise'].post.responses['400'].content['application/problem+json'].schema) as Json), $id: undefined });
    const bad = await t.request({ method: 'POST', url: '/payment/authorise', payload: { ...(await exampleBody()), amount: 0 } });
    assert.ok(problem(bad.json()), ajv.errorsText(problem.errors));
    // A problem's type is its code's documentation on this gateway: the document says so, and where the codes are described.
    const type = (inline(doc, doc.components.schemas.Problem) as Json).properties.type;
    assert.equal(bad.json().type, `${t.config.publicUrl}/errors/${bad.json().code}`);
    assert.match(type.description, /`\{PUBLIC_URL\}\/errors\/\{code\}`/);
    assert.match(type.description, /\/docs\b/);
  });

  it("matches the gateway's real events: a payment's and a compliance review's", async () => {
    const ajv = schemaValidator();
    const event = ajv.compile({ ...(inline(doc, doc.paths['/events/{id}'].get.responses['200'].content['application/json'].schema) as Json), $id: undefined });
    assert.equal((await declareVolume(t, 1000)).statusCode, 200);
    for (const type of ['asv_scan', 'saq']) assert.equal((await upload(t, { type, date: dateDaysAgo(t, 3) })).statusCode, 201);
    await t.gateway.services.compliance.reject({ who: 'test', from: 'test' }, t.credentials.merchant_id, 'The ASV report is not signed.');
    const listed = (await t.request({ method: 'GET', url: '/events?type=compliance.rejected,payment.created' })).json().data as Json[];
    assert.deepEqual([...new Set(listed.map((e) => e.type))].sort(), ['compliance.rejected', 'payment.created']);
    // The callbacks' own description (OpenAPI 3.1 webhooks): the same event without its deliveries.
    const callback = doc.webhooks.event.post;
    assert.deepEqual(callback.parameters.map((p: Json) => p.name), ['webhook-id', 'webhook-timestamp', 'webhook-signature']);
    // A busy receiver may ask for time (docs/webhooks.md), and is given it.
    for (const status of ['429', '503']) assert.ok(callback.responses[status].headers['Retry-After'], status);
    const body = ajv.compile({ ...(inline(doc, callback.requestBody.content['application/json'].schema) as Json), $id: undefined });
    for (const { id } of listed) {
      const one: Json = (await t.request({ method: 'GET', url: `/events/${id}` })).json();
      assert.ok(event(one), `${one.type}: ${ajv.errorsText(event.errors)}`);
      const { deliveries: _, ...sent } = one;
      assert.ok(body(sent), `${one.type} as sent: ${ajv.errorsText(body.errors)}`);
    }
  });

  it('describes the answer that shows a webhook signing secret with the secret required', async () => {
    const ajv = schemaValidator();
    const schema = inline(doc, doc.paths['/webhook-endpoints'].post.responses['201'].content['application/json'].schema) as Json;
    assert.ok(schema.required.includes('secret'));
    const created = await t.request({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'http://127.0.0.1:9/spec', events: ['*'] } });
    assert.equal(created.statusCode, 201, created.body);
    const valid = ajv.compile({ ...schema, $id: undefined });
    assert.ok(valid(created.json()), ajv.errorsText(valid.errors));
    const rotated = inline(doc, doc.paths['/webhook-endpoints/{id}/rotate-secret'].post.responses['200'].content['application/json'].schema) as Json;
    assert.ok(rotated.required.includes('secret'));
  });

  it("states this gateway's own limits: the callback timeout, the retry window, how long a key is kept", async () => {
    const other = await startTestGateway({ env: { WEBHOOK_TIMEOUT_MS: '5000', WEBHOOK_RETRY_WINDOW_HOURS: '24', IDEMPOTENCY_TTL_HOURS: '48' } });
    try {
      const served = (await other.app.inject({ method: 'GET', url: '/openapi.json' })).json();
      const callback = served.webhooks.event.post;
      assert.match(callback.description, /within 5 s; .* for 24 hours/);
      assert.match(callback.responses.default.description, /within 5 s/);
      const key = served.paths['/payment/authorise'].post.parameters.find((p: Json) => p.name.toLowerCase() === 'idempotency-key');
      assert.match(key.description, /for 48 hours/);
    } finally {
      await other.close();
    }
  });

  it('renders /docs as a readable, CSP-protected HTML page', async () => {
    const res = await t.app.inject({ method: 'GET', url: '/docs' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/html/);
    assert.match(String(res.headers['content-security-policy']), /default-src 'none'/);
    assert.match(res.body, /<h1>tZero Pay API<\/h1>/);
    assert.match(res.body, /POST \/payment\/authorise/);
    assert.match(res.body, /GET \/payment\/\{id\}/);
    assert.match(res.body, /needs X-Secret-Key/);
    assert.match(res.body, /href="\/openapi.json"/);
    assert.ok(!/<script(?![^>]*nonce)/.test(res.body), 'a script without nonce');
  });
});

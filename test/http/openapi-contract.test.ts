import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, beforeEach, describe, it } from 'node:test';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import { Ajv2020, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { dateDaysAgo, multipart, pdf, upload } from '../compliance/fixtures.js';
import { mit, payByCard } from '../stored-cards/support.js';
import { paidPayment, Receiver, registerEndpoint, waitFor } from '../webhooks/support.js';

type Json = Record<string, any>;
/** What the check reads of an answer, injected or read off a socket. */
type Answer = Pick<LightMyRequestResponse, 'statusCode' | 'headers' | 'body' | 'rawPayload'>;

/**
 * Every answer below is held against the OpenAPI document the gateway serves, as a client
 * generated from it reads answers: the status is one the operation lists, the media type is
 * the one described for it, the headers a client acts on (Location, Retry-After, Allow,
 * Idempotent-Replayed…) are described, and the body is valid against the schema.
 */
class Contract {
  readonly mismatches: string[] = [];
  /** The operations answers were checked for, `METHOD /path`. */
  readonly exercised = new Set<string>();
  private readonly ajv = new Ajv2020({ strict: false, allErrors: true, discriminator: true, validateFormats: true });
  private readonly compiled = new Map<string, ValidateFunction>();
  private readonly templates: Array<{ path: string; pattern: RegExp; params: number }>;

  constructor(readonly doc: Json) {
    addFormats.default(this.ajv);
    this.templates = Object.keys(doc.paths).map((path) => ({
      path,
      pattern: new RegExp(`^${path.replace(/[.*+?^$()|[\]\\]/g, '\\$&').replace(/\\?\{[^}]+\\?\}/g, '[^/]+')}$`),
      params: (path.match(/\{/g) ?? []).length,
    }));
  }

  /** The documented path a request's URL falls under: a static path before a templated one, as the router does. */
  private pathOf(url: string, method: string): string | undefined {
    const path = url.split('?')[0]!;
    const matches = this.templates.filter((t) => t.pattern.test(path)).sort((a, b) => a.params - b.params);
    return (matches.find((t) => this.doc.paths[t.path][method]) ?? matches[0])?.path;
  }

  private schema(key: string, schema: unknown): ValidateFunction {
    let v = this.compiled.get(key);
    if (!v) {
      v = this.ajv.compile({ ...(this.inline(schema) as Json), $id: undefined });
      this.compiled.set(key, v);
    }
    return v;
  }

  /** A schema of the document with its references inlined, to compile on its own. */
  resolve(schema: unknown): unknown {
    return this.inline(schema);
  }

  private inline(node: unknown, depth = 0): unknown {
    assert.ok(depth < 50, 'reference cycle');
    if (!node || typeof node !== 'object') return node;
    if (Array.isArray(node)) return node.map((v) => this.inline(v, depth + 1));
    const n = node as Json;
    if (typeof n.$ref === 'string' && n.$ref.startsWith('#/')) {
      const target = n.$ref
        .slice(2)
        .split('/')
        .reduce<unknown>((at, key) => (at as Json)?.[key.replace(/~1/g, '/').replace(/~0/g, '~')], this.doc);
      return this.inline(target, depth + 1);
    }
    return Object.fromEntries(Object.entries(n).map(([k, v]) => [k, this.inline(v, depth + 1)]));
  }

  /** Records every way `res`, the answer to `method url`, differs from the document. */
  check(method: string, url: string, res: Answer): void {
    const m = method.toLowerCase();
    const path = this.pathOf(url, m);
    const where = `${method} ${url} → ${res.statusCode}`;
    const fail = (why: string): void => void this.mismatches.push(`${where}: ${why}`);
    if (!path) return fail('no documented path');
    const op: Json | undefined = this.doc.paths[path][m];
    let response: Json | undefined;
    if (op) {
      this.exercised.add(`${method.toUpperCase()} ${path}`);
      const status = String(res.statusCode);
      response = op.responses[status] ?? op.responses[`${status[0]}XX`] ?? op.responses.default;
      if (!response) return fail(`status not listed for ${m.toUpperCase()} ${path} (lists ${Object.keys(op.responses).join(', ')})`);
    } else {
      // A method no operation of the path takes: no operation can list its answer, the document's shared one describes it.
      if (res.statusCode !== 405) return fail(`${method} is not an operation of ${path}`);
      response = this.doc.components.responses?.MethodNotAllowed;
      if (!response) return fail('405 is not described (components.responses.MethodNotAllowed)');
    }

    const described = Object.fromEntries(Object.entries<Json>(response.headers ?? {}).map(([name, h]) => [name.toLowerCase(), h]));
    for (const name of ['location', 'retry-after', 'allow', 'www-authenticate', 'idempotent-replayed', 'repr-digest', 'content-disposition', 'accept-encoding', 'request-id']) {
      if (res.headers[name] !== undefined && !described[name]) fail(`header ${name} is sent but not described`);
    }
    for (const [name, h] of Object.entries<Json>(described)) {
      const value = res.headers[name];
      if (value === undefined) {
        if (h.required) fail(`required header ${name} not sent`);
      } else if (!this.schema(`header ${JSON.stringify(h.schema)}`, h.schema)(value)) fail(`header ${name}: ${String(value)} is not as described`);
    }

    const sentType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
    const content: Json | undefined = response.content;
    if (res.rawPayload.length === 0) {
      if (content && Object.keys(content).length > 0 && res.statusCode !== 204) fail('an empty body where content is described');
      return;
    }
    if (!content) return fail(`a ${sentType} body where none is described`);
    const media = content[sentType];
    if (!media) return fail(`sent as ${sentType}, described as ${Object.keys(content).join(', ')}`);
    if (!/json$/.test(sentType) || !media.schema) return;
    let body: unknown;
    try {
      body = JSON.parse(res.body);
    } catch {
      return fail('body is not JSON');
    }
    const validate = this.schema(`${op ? m : '*'} ${path} ${res.statusCode} ${sentType}`, media.schema);
    if (!validate(body)) fail(`body does not match the schema: ${this.ajv.errorsText(validate.errors, { separator: '; ' })}`);
  }

  assertNone(): void {
    const found = this.mismatches.splice(0);
    assert.deepEqual(found, [], `${found.length} answers differ from the OpenAPI document:\n${found.join('\n')}`);
  }
}

for (const dialect of DIALECTS) {
  describe(`the served OpenAPI document describes every answer (${dialect})`, () => {
    let t: TestGateway;
    let contract: Contract;

    /** A request with the sandbox key (unless headers say otherwise), checked against the document. */
    async function call(opts: InjectOptions & { method: string; url: string }, expected?: number): Promise<LightMyRequestResponse> {
      const res = await t.request(opts);
      contract.check(opts.method, opts.url, res);
      if (expected !== undefined) assert.equal(res.statusCode, expected, `${opts.method} ${opts.url}: ${res.body}`);
      return res;
    }
    const anonymous = (opts: InjectOptions & { method: string; url: string }, expected?: number) => call({ ...opts, headers: { 'x-secret-key': '', ...opts.headers } }, expected);

    before(async () => {
      t = await startTestGateway({ dialect });
      const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
      contract = new Contract(res.json());
    });
    beforeEach(() => void contract?.mismatches.splice(0));
    after(() => t?.close());

    it('health probes', async () => {
      await anonymous({ method: 'GET', url: '/healthz' }, 200);
      await anonymous({ method: 'GET', url: '/readyz' }, 200);
      // Query values follow the text rules of bodies on every route, the probes' included.
      await anonymous({ method: 'GET', url: '/healthz?probe=%00' }, 400);
      contract.assertNone();
    });

    it('authorise: created, replayed, and each way it is refused', async () => {
      const body = await exampleBody();
      const created = await call({ method: 'POST', url: '/payment/authorise', payload: body, headers: { 'idempotency-key': 'contract-1' } }, 201);
      // The Location a client follows leads to the payment.
      await call({ method: 'GET', url: String(created.headers.location) }, 200);
      await call({ method: 'POST', url: '/payment/authorise', payload: body, headers: { 'idempotency-key': 'contract-1' } }, 201);
      await call({ method: 'POST', url: '/payment/authorise', payload: { ...body, amount: 101 }, headers: { 'idempotency-key': 'contract-1' } }, 422);
      await call({ method: 'POST', url: '/payment/authorise', payload: { ...body, amount: 0 } }, 400);
      await call({ method: 'POST', url: '/payment/authorise', payload: { ...body, channel: 'nope' } });
      await call({ method: 'POST', url: '/payment/authorise?expand=x', payload: body }, 400);
      await anonymous({ method: 'POST', url: '/payment/authorise', payload: body }, 401);
      await call({ method: 'POST', url: '/payment/authorise', payload: body, headers: { 'x-secret-key': 'sk_' + '0'.repeat(32) } }, 401);
      await call({ method: 'POST', url: '/payment/authorise', payload: '{"amount": ', headers: { 'content-type': 'application/json' } }, 400);
      await call({ method: 'POST', url: '/payment/authorise', payload: '', headers: { 'content-type': 'application/json' } }, 400);
      await call({ method: 'POST', url: '/payment/authorise', payload: 'amount=1', headers: { 'content-type': 'text/plain' } }, 415);
      await call({ method: 'POST', url: '/payment/authorise', payload: JSON.stringify(body), headers: { 'content-type': 'application/json; charset=latin1' } }, 415);
      await call({ method: 'POST', url: '/payment/authorise', payload: JSON.stringify(body), headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' } }, 415);
      await call({ method: 'POST', url: '/payment/authorise', payload: JSON.stringify({ ...body, metadata: { big: 'x'.repeat(t.config.bodyLimitBytes) } }), headers: { 'content-type': 'application/json' } }, 413);
      // No content negotiation: an Accept the gateway cannot meet still gets JSON, never a 406.
      await call({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ payment_method: { number: '4000000000000002' } }), headers: { accept: 'application/xml' } }, 201);
      await call({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ payment_method: { type: 'token', token: 'pm_unknown' } }) });
      // Card data on a live channel before the merchant's PCI DSS review.
      await t.gateway.services.merchants.createChannel(t.credentials.merchant_id, { reference: 'live-shop', name: 'Live Shop', mode: 'live', currencies: ['USD'], returnUrls: ['https://shop.example/return'], notifyEmails: [] });
      await call({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ channel: 'live-shop' }) }, 403);
      contract.assertNone();
    });

    it('the payment lifecycle: retrieve, capture, void, refund, list', async () => {
      const paid = await payByCard(t, { store: false });
      const id = paid.id as string;
      await call({ method: 'GET', url: `/payment/${id}` }, 200);
      await call({ method: 'GET', url: '/payment/pay_unknown' }, 404);
      await call({ method: 'GET', url: `/payment/${'x'.repeat(100)}` }, 400);
      await call({ method: 'GET', url: `/payment/${'x'.repeat(300)}` }, 414);
      await call({ method: 'GET', url: `/payment/${id}?expand=x` }, 400);
      await anonymous({ method: 'GET', url: `/payment/${id}` }, 401);
      // capture: auto, so the payment is captured already.
      await call({ method: 'POST', url: `/payment/${id}/capture` }, 409);
      await call({ method: 'POST', url: `/payment/${id}/void` }, 409);
      const refunded = await call({ method: 'POST', url: `/payment/${id}/refund`, payload: { amount: 10 }, headers: { 'idempotency-key': 'contract-refund' } }, 201);
      await call({ method: 'POST', url: `/payment/${id}/refund`, payload: { amount: 10 }, headers: { 'idempotency-key': 'contract-refund' } }, 201);
      await call({ method: 'GET', url: String(refunded.headers.location) }, 200);
      await call({ method: 'GET', url: '/refunds/re_unknown' }, 404);
      await anonymous({ method: 'GET', url: String(refunded.headers.location) }, 401);
      await call({ method: 'POST', url: `/payment/${id}/refund`, payload: { amount: 1_000_000 } }, 409);
      await call({ method: 'POST', url: `/payment/${id}/refund`, payload: { amount: 'ten' } }, 400);
      await call({ method: 'POST', url: `/payment/${id}/refund`, payload: 'x', headers: { 'content-type': 'text/plain' } }, 415);
      await call({ method: 'POST', url: '/payment/pay_unknown/refund' }, 404);
      await call({ method: 'GET', url: `/payment/${id}/refunds` }, 200);
      await call({ method: 'GET', url: '/payment/pay_unknown/refunds' }, 404);
      await call({ method: 'GET', url: `/events?payment=${id}&type=refund.succeeded` }, 200);
      const refundFails = await payByCard(t, { store: false, number: '4000000000005126' });
      await call({ method: 'POST', url: `/payment/${refundFails.id}/refund` }, 201);
      await call({ method: 'POST', url: '/payment/authorise', payload: { ...(await exampleBody()), currency: 'XXX' } });

      const manual = await payByCard(t, { store: false, number: '5555555555554444' });
      const manualBody = await exampleBody({ capture: 'manual' });
      const held = (await call({ method: 'POST', url: '/payment/authorise', payload: manualBody }, 201)).json();
      await t.gateway.services.checkout.complete(new URL(held.redirect_url).pathname.split('/').pop()!);
      await call({ method: 'POST', url: `/payment/${held.id}/capture`, payload: { amount: 50 }, headers: { 'idempotency-key': 'contract-capture' } }, 200);
      await call({ method: 'POST', url: `/payment/${held.id}/capture`, payload: { amount: 50 }, headers: { 'idempotency-key': 'contract-capture' } }, 200);
      const other = (await call({ method: 'POST', url: '/payment/authorise', payload: manualBody }, 201)).json();
      await call({ method: 'POST', url: `/payment/${other.id}/capture` }, 409);
      await t.gateway.services.checkout.complete(new URL(other.redirect_url).pathname.split('/').pop()!);
      await call({ method: 'POST', url: `/payment/${other.id}/void`, headers: { 'idempotency-key': 'contract-void' } }, 200);
      await call({ method: 'POST', url: `/payment/${other.id}/void`, headers: { 'idempotency-key': 'contract-void' } }, 200);
      const failing = (await call({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ capture: 'manual', payment_method: { number: '4000000000000259' } }) }, 201)).json();
      await t.gateway.services.checkout.complete(new URL(failing.redirect_url).pathname.split('/').pop()!);
      await call({ method: 'POST', url: `/payment/${failing.id}/capture` }, 422);

      // Every outcome a card can have, each read back as a merchant would.
      for (const number of ['4000000000000002', '4000000000009995', '4000000000000119', '4000000000000341', '4000002760003184', '378282246310005']) {
        const body = await exampleBody({ payment_method: { number, cvc: number.length === 15 ? '0123' : '012' } });
        const created = (await call({ method: 'POST', url: '/payment/authorise', payload: body }, 201)).json();
        await t.gateway.services.checkout.complete(new URL(created.redirect_url).pathname.split('/').pop()!);
        await call({ method: 'GET', url: `/payment/${created.id}` }, 200);
      }
      const delayed = (await call({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ capture_delay: '1d' }) }, 201)).json();
      await t.gateway.services.checkout.complete(new URL(delayed.redirect_url).pathname.split('/').pop()!);
      await call({ method: 'GET', url: `/payment/${delayed.id}` }, 200);
      await call({ method: 'POST', url: `/payment/${delayed.id}/capture` }, 200);
      const page = (await call({ method: 'GET', url: '/payments?limit=2' }, 200)).json();
      await call({ method: 'GET', url: '/payments?limit=100' }, 200);
      await call({ method: 'GET', url: `/payments?limit=2&starting_after=${page.next_starting_after}` }, 200);
      await call({ method: 'GET', url: `/payments?status=captured&channel=sandbox&reference=merchant_txn_ref&customer_reference=cust-1` }, 200);
      await call({ method: 'GET', url: `/payments?created_gte=2000-01-01T00:00:00Z&created_lte=2999-01-01T00:00:00Z` }, 200);
      await call({ method: 'GET', url: '/payments?limit=0' }, 400);
      await call({ method: 'GET', url: '/payments?status=happy' }, 400);
      await call({ method: 'GET', url: '/payments?starting_after=pay_unknown' });
      await call({ method: 'GET', url: '/payments?created_gte=yesterday' }, 400);
      await anonymous({ method: 'GET', url: '/payments' }, 401);
      assert.ok(manual.id);
      contract.assertNone();
    });

    it('stored cards and merchant-initiated payments', async () => {
      const first = await payByCard(t, { customer: 'contract-cust' });
      const token = first.payment_method.token as string;
      await call({ method: 'GET', url: '/customers/contract-cust/payment-methods' }, 200);
      await call({ method: 'GET', url: '/customers/nobody/payment-methods' }, 200);
      await call({ method: 'GET', url: `/customers/${'c'.repeat(129)}/payment-methods` }, 400);
      await call({ method: 'GET', url: `/payment-methods/${token}` }, 200);
      await call({ method: 'GET', url: '/payment-methods/pm_unknown' }, 404);
      const res = await mit(t, { token, previous_payment_id: first.id });
      contract.check('POST', '/payment/authorise', res);
      assert.equal(res.statusCode, 201, res.body);
      const bad = await mit(t, { token: 'pm_unknown' });
      contract.check('POST', '/payment/authorise', bad);
      await call({ method: 'DELETE', url: `/payment-methods/${token}`, headers: { 'content-type': 'application/json' } }, 200);
      await call({ method: 'DELETE', url: `/payment-methods/${token}` }, 200);
      await call({ method: 'DELETE', url: '/payment-methods/pm_unknown' }, 404);
      for (const number of ['4000000000000341', '4000002760003184']) {
        const agreed = await payByCard(t, { customer: 'contract-mit', number });
        const res = await mit(t, { token: agreed.payment_method.token, previous_payment_id: agreed.id });
        contract.check('POST', '/payment/authorise', res);
        await call({ method: 'GET', url: `/payment/${res.json().id}` }, 200);
      }
      await call({ method: 'GET', url: '/customers/contract-mit/payment-methods' }, 200);
      const gone = await mit(t, { token, previous_payment_id: first.id });
      contract.check('POST', '/payment/authorise', gone);
      contract.assertNone();
    });

    it('webhook endpoints and events', async () => {
      const created = await call({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'http://127.0.0.1:9/contract', events: ['*'] }, headers: { 'idempotency-key': 'contract-we' } }, 201);
      await call({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'http://127.0.0.1:9/contract', events: ['*'] }, headers: { 'idempotency-key': 'contract-we' } }, 201);
      await call({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'http://127.0.0.1:9/other', events: ['*'] }, headers: { 'idempotency-key': 'contract-we' } }, 422);
      await call({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'http://127.0.0.1:9/contract', events: [] } }, 400);
      await call({ method: 'POST', url: '/webhook-endpoints', payload: 'x', headers: { 'content-type': 'text/plain' } }, 415);
      await call({ method: 'POST', url: '/webhook-endpoints', payload: JSON.stringify({ url: 'http://127.0.0.1:9/' + 'x'.repeat(t.config.bodyLimitBytes), events: ['*'] }), headers: { 'content-type': 'application/json' } }, 413);
      const id = created.json().id as string;
      await call({ method: 'GET', url: String(created.headers.location) }, 200);
      await call({ method: 'GET', url: '/webhook-endpoints' }, 200);
      await call({ method: 'GET', url: '/webhook-endpoints/we_unknown' }, 404);
      await call({ method: 'PATCH', url: `/webhook-endpoints/${id}`, payload: { description: 'contract' } }, 200);
      await call({ method: 'PATCH', url: `/webhook-endpoints/${id}`, payload: { status: 'sleeping' } }, 400);
      await call({ method: 'PATCH', url: `/webhook-endpoints/${id}`, payload: 'x', headers: { 'content-type': 'text/plain' } }, 415);
      await call({ method: 'PATCH', url: '/webhook-endpoints/we_unknown', payload: {} }, 404);
      await call({ method: 'POST', url: `/webhook-endpoints/${id}/rotate-secret`, headers: { 'idempotency-key': 'contract-rotate' } }, 200);
      await call({ method: 'POST', url: `/webhook-endpoints/${id}/rotate-secret`, headers: { 'idempotency-key': 'contract-rotate' } }, 200);
      await call({ method: 'POST', url: `/webhook-endpoints/${id}/rotate-secret`, payload: { overlap_hours: 0 }, headers: { 'idempotency-key': 'contract-rotate' } }, 422);
      await call({ method: 'POST', url: `/webhook-endpoints/${id}/rotate-secret` }, 409);
      await call({ method: 'GET', url: `/webhook-endpoints/${id}` }, 200);
      await call({ method: 'POST', url: `/webhook-endpoints/${id}/rotate-secret`, payload: { overlap_hours: -1 } }, 400);
      await call({ method: 'POST', url: '/webhook-endpoints/we_unknown/rotate-secret' }, 404);

      const paid = await payByCard(t, { store: false });
      const events = (await call({ method: 'GET', url: `/events?payment=${paid.id}&limit=2` }, 200)).json().data as Json[];
      await call({ method: 'GET', url: `/events?type=payment.created,payment.captured&starting_after=${events[0]!.id}` }, 200);
      await call({ method: 'GET', url: `/events?ending_before=${events[1]!.id}` }, 200);
      await call({ method: 'GET', url: '/events?limit=1000' }, 400);
      await call({ method: 'GET', url: '/events?type=no.such' });
      await call({ method: 'GET', url: `/events/${events[0]!.id}` }, 200);
      await call({ method: 'GET', url: '/events/evt_unknown' }, 404);
      await call({ method: 'POST', url: `/events/${events[0]!.id}/redeliver` }, 202);
      await call({ method: 'POST', url: `/events/${events[0]!.id}/redeliver`, payload: { endpoint_id: id } }, 202);
      await call({ method: 'POST', url: `/events/${events[0]!.id}/redeliver`, payload: { endpoint_id: 'we_unknown' } });
      await call({ method: 'POST', url: '/events/evt_unknown/redeliver' }, 404);
      await call({ method: 'GET', url: `/events/${events[0]!.id}` }, 200);
      await call({ method: 'PATCH', url: `/webhook-endpoints/${id}`, payload: { status: 'disabled' } }, 200);
      await call({ method: 'POST', url: `/events/${events[0]!.id}/redeliver`, payload: { endpoint_id: id } }, 409);

      // No request body is described: clients that send Content-Type: application/json on every request send none here.
      await call({ method: 'DELETE', url: `/webhook-endpoints/${id}`, headers: { 'content-type': 'application/json' } }, 200);
      await call({ method: 'DELETE', url: `/webhook-endpoints/${id}` }, 404);
      await call({ method: 'POST', url: `/events/${events[0]!.id}/redeliver`, payload: { endpoint_id: id } });
      contract.assertNone();
    });

    it('compliance: status, volume, documents', async () => {
      await call({ method: 'GET', url: '/merchant/compliance' }, 200);
      await call({ method: 'PUT', url: '/merchant/compliance/volume', payload: { annual_transactions: 1000 } }, 200);
      await call({ method: 'PUT', url: '/merchant/compliance/volume', payload: { annual_transactions: -1 } }, 400);
      await call({ method: 'PUT', url: '/merchant/compliance/volume', payload: 'x', headers: { 'content-type': 'text/plain' } }, 415);
      const uploaded = await upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 3) });
      contract.check('POST', '/merchant/compliance/documents', uploaded);
      assert.equal(uploaded.statusCode, 201, uploaded.body);
      const old = await upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 400) });
      contract.check('POST', '/merchant/compliance/documents', old);
      const notPdf = await upload(t, { type: 'saq', date: dateDaysAgo(t, 3), file: Buffer.from('hello') });
      contract.check('POST', '/merchant/compliance/documents', notPdf);
      const form = multipart([{ name: 'surprise', value: 'x' }]);
      await call({ method: 'POST', url: '/merchant/compliance/documents', payload: form.payload, headers: { 'content-type': form.contentType } }, 400);
      await call({ method: 'POST', url: '/merchant/compliance/documents', payload: form.payload, headers: { 'content-type': form.contentType, 'content-encoding': 'gzip' } }, 415);
      await call({ method: 'POST', url: '/merchant/compliance/documents', payload: { document_type: 'saq' } }, 415);
      const huge = multipart([{ name: 'file', value: Buffer.concat([pdf(), Buffer.alloc(11 * 1024 * 1024)]), filename: 'big.pdf', contentType: 'application/pdf' }]);
      await call({ method: 'POST', url: '/merchant/compliance/documents', payload: huge.payload, headers: { 'content-type': huge.contentType } }, 413);
      await call({ method: 'GET', url: String(uploaded.headers.location) }, 200);
      await call({ method: 'GET', url: '/merchant/compliance/documents/doc_unknown' }, 404);
      await anonymous({ method: 'GET', url: '/merchant/compliance' }, 401);
      await call({ method: 'GET', url: '/merchant/compliance' }, 200);
      assert.equal((await upload(t, { type: 'saq', date: dateDaysAgo(t, 3) })).statusCode, 201);
      await t.gateway.services.compliance.approve({ who: 'test', from: 'test' }, t.credentials.merchant_id);
      await call({ method: 'GET', url: '/merchant/compliance' }, 200);
      await call({ method: 'GET', url: '/events?type=compliance.approved' }, 200);
      contract.assertNone();
    });

    it('sandbox helpers', async () => {
      await anonymous({ method: 'GET', url: '/sandbox/test-cards' }, 200);
      await anonymous({ method: 'GET', url: '/sandbox/inbox' }, 401);
      await call({ method: 'GET', url: '/sandbox/inbox' }, 200);
      await anonymous({ method: 'GET', url: '/sandbox/test-cards?x=%00' }, 400);
      contract.assertNone();
    });

    it('headers larger than Node takes, refused before any route', async () => {
      const res = await rawAnswer(t, `GET /payments HTTP/1.1\r\nHost: x\r\nX-Secret-Key: ${t.credentials.secret_key}\r\nX-Padding: ${'p'.repeat(20_000)}\r\n\r\n`);
      assert.equal(res.statusCode, 431, res.body);
      contract.check('GET', '/payments', res);
      contract.assertNone();
    });

    it('a failure on our side', async () => {
      const payments = t.gateway.services.payments;
      const get = payments.get;
      payments.get = () => Promise.reject(new Error('the database went away'));
      try {
        await call({ method: 'GET', url: '/payment/pay_any' }, 500);
      } finally {
        payments.get = get;
      }
      contract.assertNone();
    });

    it('a known path asked with a method it does not take', async () => {
      await call({ method: 'DELETE', url: '/payment/authorise' }, 405);
      await call({ method: 'PUT', url: '/payments' }, 405);
      await anonymous({ method: 'POST', url: '/payment-methods/pm_x' }, 405);
      contract.assertNone();
    });

    it('has held an answer of every documented operation against the document', () => {
      const documented = Object.entries<Json>(contract.doc.paths).flatMap(([path, item]) => Object.keys(item).map((method) => `${method.toUpperCase()} ${path}`));
      assert.deepEqual(documented.filter((op) => !contract.exercised.has(op)), []);
    });
  });
}

describe('the callbacks a merchant receives are the ones the document describes', () => {
  let t: TestGateway;
  const receivers: Receiver[] = [];
  after(async () => {
    for (const r of receivers) await r.stop();
    await t?.close();
  });

  it('bodies as POSTed, and the events with their delivery attempts', async () => {
    t = await startTestGateway({ workers: true, env: { DISPATCH_POLL_MS: '50' } });
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
    const contract = new Contract(doc);
    const ok = await new Receiver().start();
    const failing = await new Receiver().start();
    const gone = await new Receiver().start();
    failing.mode = 'fail';
    gone.mode = 'gone';
    receivers.push(ok, failing, gone);
    ok.secrets.push((await registerEndpoint(t, ok.url)).secret);
    await registerEndpoint(t, failing.url);
    const disabled = await registerEndpoint(t, gone.url);
    const paymentId = await paidPayment(t);
    assert.equal((await t.request({ method: 'POST', url: `/payment/${paymentId}/refund`, payload: { amount: 10 } })).statusCode, 201);
    await waitFor('the refund callback', () => ok.received.some((r) => r.type === 'refund.succeeded') && failing.requests > 0);

    const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true });
    addFormats.default(ajv);
    const callback = doc.webhooks.event.post;
    const body = ajv.compile({ ...(contract.resolve(callback.requestBody.content['application/json'].schema) as Json), $id: undefined });
    for (const r of ok.received) assert.ok(body(r.payload), `${r.type}: ${ajv.errorsText(body.errors)}`);
    for (const r of ok.received) {
      const url = `/events/${r.id}`;
      contract.check('GET', url, await t.request({ method: 'GET', url }));
    }
    // The endpoint that answered 410, disabled with its reason.
    const read = () => t.request({ method: 'GET', url: `/webhook-endpoints/${disabled.id}` });
    await waitFor('the endpoint answering 410 to be disabled', async () => (await read()).json().status === 'disabled');
    const endpoint = await read();
    contract.check('GET', `/webhook-endpoints/${disabled.id}`, endpoint);
    contract.assertNone();
  });
});

/** The answer to the request pipelined behind one still under way when the gateway starts closing. */
async function answerWhileClosing(t: TestGateway, request: string): Promise<Answer> {
  const url = new URL(await t.listen());
  const socket = connect(Number(url.port), url.hostname);
  await new Promise((resolve) => socket.once('connect', resolve));
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise((resolve) => socket.once('close', resolve));
  const body = JSON.stringify({ url: 'http://127.0.0.1:9/hook', events: ['*'] });
  socket.write(`POST /webhook-endpoints HTTP/1.1\r\nHost: x\r\nX-Secret-Key: ${t.credentials.secret_key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
  await new Promise((resolve) => setTimeout(resolve, 100));
  const closing = t.gateway.app.close();
  await new Promise((resolve) => setTimeout(resolve, 100));
  socket.write(`${body.slice(10)}${request}`);
  await ended;
  await closing;
  const second = Buffer.concat(chunks).toString('utf8').split(/(?=HTTP\/1\.1 )/)[1];
  assert.ok(second, 'no second answer');
  return parseAnswer(second);
}

/** One HTTP/1.1 answer read off a socket (a body of Content-Length, no chunks). */
function parseAnswer(raw: string): Answer {
  const [head, text = ''] = raw.split('\r\n\r\n');
  const [statusLine, ...lines] = head!.split('\r\n');
  const headers = Object.fromEntries(lines.map((l) => [l.slice(0, l.indexOf(':')).toLowerCase(), l.slice(l.indexOf(':') + 1).trim()]));
  return { statusCode: Number(statusLine!.split(' ')[1]), headers, body: text, rawPayload: Buffer.from(text) };
}

/** The answer to `request` sent as raw bytes, read until the gateway closes the connection. */
async function rawAnswer(t: TestGateway, request: string): Promise<Answer> {
  const url = new URL(await t.listen());
  const socket = connect(Number(url.port), url.hostname);
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', () => undefined);
  const ended = new Promise((resolve) => socket.once('close', resolve));
  socket.write(request);
  await ended;
  return parseAnswer(Buffer.concat(chunks).toString('utf8'));
}

describe('a request reaching a gateway that is closing', () => {
  it('gets the 503 the document describes, with Retry-After', async () => {
    const t = await startTestGateway();
    try {
      const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
      const contract = new Contract(doc);
      const res = await answerWhileClosing(t, `GET /payments HTTP/1.1\r\nHost: x\r\nX-Secret-Key: ${t.credentials.secret_key}\r\n\r\n`);
      assert.equal(res.statusCode, 503, res.body);
      contract.check('GET', '/payments', res);
      contract.assertNone();
    } finally {
      await t.close();
    }
  });
});

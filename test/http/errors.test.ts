import assert from 'node:assert/strict';
import { createLogger } from '../../src/logger.js';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, exampleBody, freePort, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, postAuthorise } from '../support/http.js';
import { authoriseAndHangUp } from '../support/hang-up.js';
import { connect, type Socket } from 'node:net';
import { Dispatcher } from '../../src/workers/dispatcher.js';
import { gzipSync } from 'node:zlib';

/** Bytes as sent, answer as received, for requests no HTTP client would send. */
function rawExchange(url: URL, request: string): Promise<{ head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname, () => socket.end(request));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const split = received.indexOf('\r\n\r\n');
      resolve({ head: received.slice(0, split + 2), body: received.slice(split + 4) });
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`errors are RFC 9457 problems (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      // An operator listener of its own: its /readyz says what the public one does not.
      t = await startTestGateway({ dialect, env: { OPERATOR_PORT: String(await freePort()), OPERATOR_TOKEN: 'o'.repeat(40) } });
    });
    after(() => t?.close());

    it('answers /healthz and /readyz; only the operator listener names the database and the delivery backlog', async () => {
      const health = await t.app.inject({ method: 'GET', url: '/healthz' });
      assert.equal(health.statusCode, 200);
      assert.deepEqual(health.json(), { status: 'ok' });
      // Anyone can ask the payment listener: it says whether to send traffic, nothing of the inside.
      const ready = await t.app.inject({ method: 'GET', url: '/readyz' });
      assert.equal(ready.statusCode, 200);
      assert.deepEqual(ready.json(), { status: 'ready' });
      const operatorReady = await t.gateway.operatorApp!.inject({ method: 'GET', url: '/readyz' });
      assert.equal(operatorReady.statusCode, 200);
      assert.deepEqual(operatorReady.json(), { status: 'ready', database: dialect, deliveries_behind_seconds: 0 });
    });

    it("says in the operator listener's /readyz how far behind callbacks and e-mails are (this test gateway runs no workers)", async () => {
      const endpoint = await t.request({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'http://127.0.0.1:9/readyz', events: ['*'] } });
      assert.equal(endpoint.statusCode, 201, endpoint.body);
      const behind = async () => (await t.gateway.operatorApp!.inject({ method: 'GET', url: '/readyz' })).json().deliveries_behind_seconds;
      try {
        assert.equal((await postAuthorise(t, await exampleBody())).statusCode, 201);
        t.clock.advance(42_000);
        // An event no dispatcher has fanned out yet counts from when it happened.
        assert.equal(await behind(), 42);
        await new Dispatcher(t.gateway.services).fanOut('readyz-test');
        t.clock.advance(3_000);
        // Its deliveries count from when they were due: the fan-out made them due at once.
        assert.equal(await behind(), 3);
      } finally {
        await t.gateway.services.ctx.database.db.updateTable('deliveries').set({ status: 'cancelled' }).where('status', '=', 'pending').execute();
        await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.json().id}` });
      }
      assert.equal(await behind(), 0);
    });

    it('lets no cache keep an answer: they hold payment links and personal data', async () => {
      const created = await postAuthorise(t, await exampleBody());
      assert.equal(created.statusCode, 201, created.body);
      const answers = [
        created,
        await t.request({ method: 'GET', url: `/payment/${created.json().id}` }),
        await t.request({ method: 'GET', url: '/payments?limit=1' }),
        await t.app.inject({ method: 'GET', url: '/payments' }),
        await t.request({ method: 'GET', url: '/no-such-thing' }),
      ];
      assert.deepEqual(answers.map((r) => [r.statusCode, r.headers['cache-control']]), [[201, 'no-store'], [200, 'no-store'], [200, 'no-store'], [401, 'no-store'], [404, 'no-store']]);
      // HTTPS is promised in live mode only (a sandbox runs on plain loopback HTTP).
      assert.equal(created.headers['strict-transport-security'], undefined);
    });

    it('answers unknown routes with route_not_found', async () => {
      const body = assertProblem(await t.app.inject({ method: 'GET', url: '/no-such-thing?x=1' }), 404, 'route_not_found');
      assert.match(body.detail, /GET \/no-such-thing/);
      assert.ok(!body.detail.includes('x=1'));
      assertProblem(await t.app.inject({ method: 'DELETE', url: '/payment/authorise/extra' }), 404, 'route_not_found');
    });

    it('answers a known path with a method it does not take with 405 and the methods it does', async () => {
      const cases: Array<[string, string, string]> = [
        // GET /payment/authorise is GET /payment/{id}: a static route beside a parametric one, per method.
        ['DELETE', '/payment/authorise', 'GET, HEAD, POST'],
        ['GET', `/payment/pay_${'0a'.repeat(16)}/capture?x=1`, 'POST'],
        ['POST', `/payment/pay_${'0a'.repeat(16)}`, 'GET, HEAD'],
        ['PUT', '/webhook-endpoints', 'GET, HEAD, POST'],
      ];
      for (const [method, url, allow] of cases) {
        const res = await t.app.inject({ method: method as 'GET', url });
        const body = assertProblem(res, 405, 'method_not_allowed');
        assert.equal(res.headers.allow, allow, `${method} ${url}`);
        assert.equal(body.detail, `${url.split('?')[0]} takes ${allow}, not ${method}`);
      }
      const pan = '4242424242424242';
      const scrubbed = assertProblem(await t.app.inject({ method: 'POST', url: `/payment/${pan}` }), 405, 'method_not_allowed');
      assert.ok(!scrubbed.detail.includes('4242424242'), scrubbed.detail);
    });

    it('answers requests Node refuses before routing (headers too large, not HTTP) with problems too', async () => {
      const url = new URL(await t.listen());
      const huge = await rawExchange(url, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(20_000)}\r\n\r\n`);
      assert.match(huge.head, /^HTTP\/1\.1 431 /);
      assert.match(huge.head, /\r\ncontent-type: application\/problem\+json; charset=utf-8\r\n/i);
      const tooLarge = JSON.parse(huge.body) as Record<string, unknown>;
      assert.equal(tooLarge.code, 'headers_too_large');
      assert.equal(tooLarge.status, 431);
      assert.match(String(tooLarge.request_id), /^req_[0-9a-f]{24}$/);
      const garbage = await rawExchange(url, 'HELLO THERE\r\n\r\n');
      assert.match(garbage.head, /^HTTP\/1\.1 400 /);
      assert.equal((JSON.parse(garbage.body) as Record<string, unknown>).code, 'malformed_request');
    });

    it('names the Host header an HTTP/1.1 request left out, in a problem', async () => {
      const url = new URL(await t.listen());
      const hostless = await rawExchange(url, 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n');
      assert.match(hostless.head, /^HTTP\/1\.1 400 /);
      assert.match(hostless.head, /\r\ncontent-type: application\/problem\+json; charset=utf-8\r\n/i);
      const body = JSON.parse(hostless.body) as Record<string, unknown>;
      assert.deepEqual([body.code, body.param], ['missing_header', '/headers/host']);
      assert.match(String(body.detail), /Host/);
      // HTTP/1.0 has no Host rule: its requests are answered as before.
      const old = await rawExchange(url, 'GET /healthz HTTP/1.0\r\n\r\n');
      assert.match(old.head, /^HTTP\/1\.1 200 /);
    });

    it("gives a customer's browser under /pay/ a page for a request it cannot take, never the API's JSON", async () => {
      const pagePath = new URL((await postAuthorise(t, await exampleBody())).json().redirect_url as string).pathname;
      const isPage = (status: number, contentType: unknown, csp: unknown, body: string, label: string) => {
        assert.match(String(contentType), /^text\/html/, `${label}: ${body.slice(0, 200)}`);
        assert.match(String(csp), /default-src 'none'/, label);
        assert.doesNotMatch(body, /"code"/, label);
        if (status !== 404) assert.match(body, new RegExp(`href="${pagePath}"`), `${label} links back to the payment page`);
      };
      // The page's URL takes GET only, and no route is under /pay/<token>/other: their bodies are still read first.
      const sent: Array<[string, Record<string, string>, string | Buffer, number]> = [
        [pagePath, { 'content-type': 'application/json' }, '{"csrf":', 400],
        [pagePath, { 'content-type': 'application/json' }, '{"a":1,"a":2}', 400],
        [pagePath, { 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': 'gzip' }, gzipSync('csrf=x'), 415],
        [`${pagePath}/other`, { 'content-type': 'application/json' }, '{', 404],
      ];
      for (const [url, headers, payload, status] of sent) {
        const res = await t.app.inject({ method: 'POST', url, headers, payload });
        assert.equal(res.statusCode, status, res.body);
        isPage(status, res.headers['content-type'], res.headers['content-security-policy'], res.body, `POST ${url} ${JSON.stringify(headers)}`);
      }
      const hostless = await rawExchange(new URL(await t.listen()), `GET ${pagePath} HTTP/1.1\r\nConnection: close\r\n\r\n`);
      assert.match(hostless.head, /^HTTP\/1\.1 400 /);
      const header = (name: string) => new RegExp(`\\r\\n${name}: ([^\\r]*)`, 'i').exec(hostless.head)?.[1];
      isPage(400, header('content-type'), header('content-security-policy'), hostless.body, 'no Host');
    });

    it('answers a request timeout with a problem, unless the connection was already answered', async () => {
      const url = new URL(await t.listen());
      const serverSide: Socket[] = [];
      const onConnection = (socket: Socket) => serverSide.push(socket);
      t.app.server.on('connection', onConnection);
      const timeout = Object.assign(new Error('request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });
      const stall = async (request: string, waitFor: RegExp | null) => {
        const client = connect(Number(url.port), url.hostname);
        let received = '';
        client.setEncoding('utf8');
        client.on('data', (chunk: string) => (received += chunk));
        const closed = new Promise<void>((resolve) => client.on('close', () => resolve()));
        await new Promise<void>((resolve) => client.on('connect', () => resolve()));
        client.write(request);
        while (waitFor && !waitFor.test(received)) await new Promise((r) => setTimeout(r, 5));
        while (serverSide.length === 0) await new Promise((r) => setTimeout(r, 5));
        const before = received.length;
        // What Node's connection check emits once a request has taken longer than requestTimeout.
        t.app.server.emit('clientError', timeout, serverSide.shift()!);
        await closed;
        return received.slice(before);
      };
      // Headers sent, body stalled, nothing answered yet: a 408 problem.
      const unanswered = await stall('POST /payment/authorise HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nX-Secret-Key: sk_\r\n', null);
      assert.match(unanswered, /^HTTP\/1\.1 408 /);
      assert.match(unanswered, /"code":"request_timeout"/);
      // Answered at once (401, no key) and then stalled: nothing more is written on that connection.
      const late = await stall('POST /payment/authorise HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"a":', /"code":"unauthorized"/);
      assert.equal(late, '');
      t.app.server.off('connection', onConnection);
    });

    it('refuses query parameters an operation does not take, on every API route', async () => {
      const created = (await postAuthorise(t, await exampleBody())).json();
      for (const url of [`/payment/${created.id}?expand=x`, `/payment/${created.id}/refunds?ending_before=re_x`, '/customers/abc123/payment-methods?limit=1', '/webhook-endpoints?bogus=1', '/merchant/compliance?bogus=1', '/payments?bogus=1', '/events?bogus=1']) {
        const param = `/querystring/${new URL(url, 'http://x').searchParams.keys().next().value}`;
        const body = assertProblem(await t.request({ method: 'GET', url }), 400, 'unknown_field', param);
        assert.match(body.detail, /is not a/, url);
      }
      assert.equal((await t.request({ method: 'GET', url: '/payments?limit=1' })).statusCode, 200);
    });

    it('names a query parameter sent twice as such, not as a value of the wrong type', async () => {
      for (const [url, param] of [
        ['/payments?limit=5&limit=6', '/querystring/limit'],
        ['/payments?status=captured&status=voided', '/querystring/status'],
        ['/events?type=payment.created&type=payment.captured', '/querystring/type'],
        ['/payments?reference=a&limit=2&reference=a', '/querystring/reference'],
      ]) {
        const body = assertProblem(await t.request({ method: 'GET', url }), 400, 'duplicate_key', param);
        assert.match(body.detail, /more than once/, url);
      }
    });

    it('takes an empty event filter for what it names, not for no filter', async () => {
      const created = (await postAuthorise(t, await exampleBody())).json();
      const listed = async (query: string) => (await t.request({ method: 'GET', url: `/events?${query}` })).json<{ data: Array<{ type: string }> }>().data;
      assert.ok((await listed('')).length > 0);
      // payment= with nothing after it (a client's unset variable) names no payment: no events, as /payments?reference= finds none.
      assert.deepEqual(await listed('payment='), []);
      assert.deepEqual((await listed(`payment=${created.id}`)).map((e) => e.type), ['payment.created']);
      for (const type of ['', ',', '%20,%20']) {
        assertProblem(await t.request({ method: 'GET', url: `/events?type=${type}` }), 400, 'invalid_event_type', '/querystring/type');
      }
      assert.equal((await listed('type=payment.created,')).length > 0, true, 'a trailing comma is still taken');
    });

    it('gives every problem its own request id', async () => {
      const a = assertProblem(await t.app.inject({ method: 'GET', url: '/nope' }), 404);
      const b = assertProblem(await t.app.inject({ method: 'GET', url: '/nope' }), 404);
      assert.notEqual(a.request_id, b.request_id);
      assert.equal(a.type, `${t.config.publicUrl}/errors/route_not_found`);
      assert.equal(a.title, 'Not Found');
    });

    it('lists the field at fault in errors[] whatever the status, as a 400 from a schema does', async () => {
      const cases = [
        [await t.request({ method: 'GET', url: '/payment/pay_00000000000000000000000000000000' }), 404, 'payment_not_found', '/params/id'],
        [await t.request({ method: 'GET', url: '/events/evt_nope' }), 404, 'event_not_found', '/params/id'],
        [await postAuthorise(t, '{}', { 'content-type': 'text/csv' }), 415, 'unsupported_media_type', '/headers/content-type'],
        [await t.request({ method: 'GET', url: '/payments?limit=%E0' }), 400, 'invalid_encoding', '/querystring/limit'],
        [await t.app.inject({ method: 'GET', url: '/payments', headers: { 'x-secret-key': 'sk_nope' } }), 401, 'unauthorized', undefined],
      ] as const;
      for (const [res, status, code, param] of cases) {
        const body = res.json<{ param?: string; code: string; detail: string; errors?: Array<{ param: string; code: string; message: string }> }>();
        assert.deepEqual([res.statusCode, body.code, body.param], [status, code, param ?? body.param], res.body);
        if (body.param === undefined) continue;
        assert.deepEqual(body.errors, [{ param: body.param, code, message: body.detail }], res.body);
      }
    });

    it('ignores a client-sent request id', async () => {
      const res = await t.app.inject({ method: 'GET', url: '/nope', headers: { 'request-id': 'req_evil', 'x-request-id': 'req_evil' } });
      assert.notEqual(assertProblem(res, 404).request_id, 'req_evil');
    });

    it('maps body errors: invalid JSON 400, wrong type 415, too large 413', async () => {
      assertProblem(await postAuthorise(t, '{"amount": 1,}'), 400, 'invalid_json');
      assertProblem(await postAuthorise(t, '{}', { 'content-type': 'text/csv' }), 415, 'unsupported_media_type');
      assertProblem(await postAuthorise(t, `{"reference":"${'x'.repeat(t.config.bodyLimitBytes)}"}`), 413, 'body_too_large');
    });

    it('refuses a body in a content coding it does not decode, naming the header, and reads nothing from it', async () => {
      const body = JSON.stringify(await exampleBody());
      const count = async () => (await t.gateway.services.ctx.database.db.selectFrom('payments').select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow()).n;
      const before = Number(await count());
      // Compressed: not "not UTF-8" (the bytes are fine), the coding is what is refused.
      const gzipped = await t.request({ method: 'POST', url: '/payment/authorise', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: gzipSync(body) });
      assertProblem(gzipped, 415, 'unsupported_content_encoding', '/headers/content-encoding');
      assert.equal(gzipped.headers['accept-encoding'], 'identity');
      // Labelled gzip but sent plain: a proxy or a log reader would decode it as gzip, so it is not taken as plain either.
      for (const coding of ['gzip', 'br', 'deflate, gzip', 'x-custom']) {
        assertProblem(await postAuthorise(t, body, { 'content-encoding': coding }), 415, 'unsupported_content_encoding', '/headers/content-encoding');
      }
      assert.equal(Number(await count()), before, 'a refused body created a payment');
      const created = await postAuthorise(t, body, { 'content-encoding': 'identity' });
      assert.equal(created.statusCode, 201, created.body);
      const id = created.json<{ id: string }>().id;
      assertProblem(
        await t.request({ method: 'POST', url: `/payment/${id}/void`, headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: gzipSync('{}') }),
        415,
        'unsupported_content_encoding',
        '/headers/content-encoding',
      );
      assert.equal((await t.request({ method: 'GET', url: `/payment/${id}` })).json<{ status: string }>().status, 'requires_action');
      assertProblem(
        await t.request({ method: 'PUT', url: '/merchant/compliance/volume', headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' }, payload: gzipSync('{"annual_transactions":5}') }),
        415,
        'unsupported_content_encoding',
        '/headers/content-encoding',
      );
      // A request without a body says nothing with the header.
      assert.equal((await t.request({ method: 'GET', url: `/payment/${id}`, headers: { 'content-encoding': 'gzip' } })).statusCode, 200);
    });

    it('refuses a body with something in it on a DELETE, which reads none, and deletes nothing', async () => {
      const json = { 'content-type': 'application/json' };
      const created = await t.request({ method: 'POST', url: '/webhook-endpoints', headers: json, payload: { url: 'https://example.com/hook', events: ['*'] } });
      const id = created.json<{ id: string }>().id;
      for (const url of [`/webhook-endpoints/${id}`, `/payment-methods/pm_${'0a'.repeat(16)}`]) {
        assertProblem(await t.request({ method: 'DELETE', url, headers: json, payload: '{"dry_run":true}' }), 400, 'unknown_field', '/dry_run');
        for (const payload of ['null', '[]', '"x"']) assertProblem(await t.request({ method: 'DELETE', url, headers: json, payload }), 400, 'invalid_type', '');
      }
      assert.equal((await t.request({ method: 'GET', url: `/webhook-endpoints/${id}` })).statusCode, 200, 'a refused DELETE deleted the endpoint');
      // Clients that send a body on every request may send an empty one, or {}.
      assert.equal((await t.request({ method: 'DELETE', url: `/webhook-endpoints/${id}`, headers: json, payload: '{}' })).statusCode, 200);
      assert.equal((await t.request({ method: 'GET', url: `/webhook-endpoints/${id}` })).statusCode, 404);
    });

    it('never quotes back a card number sent in an id\'s place', async () => {
      const pan = '4242424242424242';
      for (const url of [`/payment/${pan}`, `/payment/${pan}/refunds`, `/payment-methods/${pan}`, `/webhook-endpoints/${pan}`, `/events/${pan}`, `/merchant/compliance/documents/${pan}`, `/no-route/${pan}`]) {
        const body = assertProblem(await t.request({ method: 'GET', url }), 404);
        assert.ok(!body.detail.includes('4242424242'), `${url}: ${body.detail}`);
      }
      const unknown = `pay_${'0'.repeat(32)}`;
      assert.match(assertProblem(await t.request({ method: 'GET', url: `/payment/${unknown}` }), 404, 'payment_not_found', '/params/id').detail, new RegExp(unknown));
      const audited = await t.gateway.services.ctx.database.db.selectFrom('audit_log').select(['target', 'detail']).where('action', '=', 'compliance.document.download').execute();
      assert.equal(audited.length, 1);
      assert.equal(audited[0]!.target, null);
      assert.ok(!String(audited[0]!.detail).includes('4242424242'));
    });

    it('never quotes a card number back in a message that quotes what it was sent', async () => {
      const sent: Array<[Parameters<TestGateway['request']>[0], number, string]> = [
        [{ method: 'GET', url: '/events?type=4111%201111%201111%201111' }, 400, 'invalid_event_type'],
        [{ method: 'PATCH', url: `/webhook-endpoints/we_${'0a'.repeat(16)}`, payload: { events: ['x 4111-1111-1111-1111'] } }, 400, 'card_number_in_text'],
      ];
      for (const [request, status, code] of sent) {
        const res = await t.request(request);
        const body = assertProblem(res, status, code);
        assert.ok(!/4111.?1111.?1111.?1111/.test(res.body), res.body);
        if (code === 'invalid_event_type') assert.match(body.detail, /\[card number\]/);
      }
    });

    it('points at the path parameter when an id names nothing, as when it is malformed', async () => {
      const hex = '0a'.repeat(16);
      const cases: Array<[string, string, string]> = [
        ['GET', `/payment/pay_${hex}`, 'payment_not_found'],
        ['GET', `/payment/pay_${hex}/refunds`, 'payment_not_found'],
        ['POST', `/payment/pay_${hex}/void`, 'payment_not_found'],
        ['GET', `/payment-methods/pm_${hex}`, 'payment_method_not_found'],
        ['GET', `/webhook-endpoints/we_${hex}`, 'webhook_endpoint_not_found'],
        ['GET', `/events/evt_${hex}`, 'event_not_found'],
        ['GET', `/merchant/compliance/documents/doc_${hex}`, 'document_not_found'],
      ];
      for (const [method, url, code] of cases) {
        const body = assertProblem(await t.request({ method: method as 'GET', url, ...(method === 'POST' ? { payload: {} } : {}) }), 404, code, '/params/id');
        assert.match(body.detail, new RegExp(hex), url);
      }
    });

    it('validates path parameters as problems too', async () => {
      assertProblem(await t.request({ method: 'GET', url: `/payment/${'p'.repeat(65)}` }), 400, 'too_long', '/params/id');
      // Refused by Fastify before routing: the same problem+json, with a request id.
      const malformed = await t.request({ method: 'GET', url: '/payment/%ff' });
      assert.ok(assertProblem(malformed, 400, 'malformed_path').request_id);
      assert.match(malformed.headers['content-type'] as string, /application\/problem\+json/);
      assertProblem(await t.request({ method: 'GET', url: `/payment/${'p'.repeat(300)}` }), 414, 'path_too_long');
    });
  });
}

describe('a failing database', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway({ dialect: 'sqlite' });
  });
  after(() => t?.close());

  it('answers 503 on /readyz and a bare 500 on the API, with no SQL or stack', async () => {
    await t.gateway.services.ctx.database.close();
    assertProblem(await t.app.inject({ method: 'GET', url: '/readyz' }), 503, 'database_unavailable');
    const health = await t.app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(health.statusCode, 200);
    const api = await t.request({ method: 'GET', url: '/payment/pay_x' });
    const body = assertProblem(api, 500, 'internal_error');
    assert.ok(body.detail.includes(body.request_id));
    assert.doesNotMatch(api.body, /destroy|driver|kysely|sqlite/i);
  });
});

describe('a database that cannot be written for a while', () => {
  it('answers 503 on /readyz at every probe and 0 to every scrape, but logs the outage once, and its end', async () => {
    const lines: Array<{ level: number; msg: string; failed_checks?: number }> = [];
    const log = createLogger('info', { write: (text: string) => void lines.push(JSON.parse(text)) });
    const token = 'op_' + 'r'.repeat(40);
    const t = await startTestGateway({ log, env: { OPERATOR_TOKEN: token } });
    const database = t.gateway.services.ctx.database;
    const writable = database.writable.bind(database);
    try {
      database.writable = () => Promise.reject(new Error('SQLITE_FULL: database or disk is full'));
      for (let i = 0; i < 3; i++) assertProblem(await t.app.inject({ method: 'GET', url: '/readyz' }), 503, 'database_unavailable');
      const scrape = await t.app.inject({ method: 'GET', url: '/operator/metrics', headers: { authorization: `Bearer ${token}` } });
      assert.match(scrape.body, /^tzero_database_up 0$/m);
      assert.deepEqual(lines.filter((l) => l.level >= 40).map((l) => l.msg), ['not ready: the database does not answer or cannot be written; logged again when it is back'], 'one warning for four failed checks');
      database.writable = writable;
      assert.equal((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
      assert.equal((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
      const back = lines.filter((l) => /ready again/.test(l.msg));
      assert.deepEqual(back.map((l) => l.failed_checks), [4], 'one line when it is back, with the checks it failed');
    } finally {
      database.writable = writable;
      await t.close();
    }
  });
});

describe('the access log', () => {
  it('logs and counts a payment whose merchant hung up before its answer, saying the client was gone', async () => {
    const lines: Array<{ msg: string; reqId?: string; req?: { method: string; url: string }; res?: { statusCode: number }; client_closed?: boolean }> = [];
    const log = createLogger('info', { write: (text: string) => void lines.push(JSON.parse(text)) });
    const token = 'op_' + 'h'.repeat(40);
    const t = await startTestGateway({ log, env: { OPERATOR_TOKEN: token } });
    try {
      await authoriseAndHangUp(t);
      const deadline = Date.now() + 5_000;
      while (!lines.some((l) => l.req?.url === '/payment/authorise') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const line = lines.find((l) => l.req?.url === '/payment/authorise');
      // The payment exists: an operator looking for it in the log finds the request that made it.
      assert.equal(line?.msg, 'request completed', JSON.stringify(lines.filter((l) => l.reqId !== undefined)));
      assert.equal(line.res?.statusCode, 201);
      assert.equal(line.client_closed, true);
      const scrape = await t.app.inject({ method: 'GET', url: '/operator/metrics', headers: { authorization: `Bearer ${token}` } });
      assert.match(scrape.body, /^tzero_http_requests_total\{method="POST",route="\/payment\/authorise",status="201"\} 1$/m);
    } finally {
      await t.close();
    }
  });

  it('writes one line a request, when it is answered, with method, scrubbed URL, status and time', async () => {
    const lines: Array<{ level: number; msg: string; reqId?: string; req?: { method: string; url: string }; res?: { statusCode: number }; responseTime?: number }> = [];
    // The gateway's own logger, as `npm start` makes it.
    const log = createLogger('info', { write: (text: string) => void lines.push(JSON.parse(text)) });
    const t = await startTestGateway({ log });
    try {
      lines.length = 0;
      const res = await t.request({ method: 'GET', url: '/payment/4242424242424242' });
      assert.equal(res.statusCode, 404);
      const requestLines = lines.filter((l) => l.reqId !== undefined);
      assert.equal(requestLines.length, 1, JSON.stringify(requestLines));
      const [line] = requestLines;
      assert.equal(line!.msg, 'request completed');
      assert.deepEqual([line!.req?.method, line!.req?.url, line!.res?.statusCode], ['GET', '/payment/[digits redacted]', 404]);
      assert.equal(typeof line!.responseTime, 'number');
    } finally {
      await t.close();
    }
  });

  it('names each request with the id its answer carries, a success as well as a problem, so a merchant can quote it', async () => {
    const lines: Array<{ msg: string; reqId?: string; res?: { statusCode: number } }> = [];
    const log = createLogger('info', { write: (text: string) => void lines.push(JSON.parse(text)) });
    const t = await startTestGateway({ log });
    try {
      const created = await postAuthorise(t, await exampleBody());
      const refused = await t.request({ method: 'GET', url: '/payment/pay_nope' });
      const logged = (status: number) => lines.find((l) => l.msg === 'request completed' && l.res?.statusCode === status)?.reqId;
      assert.equal(created.statusCode, 201);
      assert.match(String(created.headers['request-id']), /^req_[0-9a-f]{24}$/, 'a 201 says which request it answers');
      assert.equal(created.headers['request-id'], logged(201));
      assert.equal(refused.headers['request-id'], assertProblem(refused, 404).request_id);
      assert.equal(refused.headers['request-id'], logged(404));
    } finally {
      await t.close();
    }
  });

  it('logs and counts the answers given before routing too (a path that is not percent-encoding, one too long)', async () => {
    const lines: Array<{ msg: string; reqId?: string; req?: { url: string }; res?: { statusCode: number } }> = [];
    const log = createLogger('info', { write: (text: string) => void lines.push(JSON.parse(text)) });
    const token = 'op_' + 'l'.repeat(40);
    const t = await startTestGateway({ log, env: { OPERATOR_TOKEN: token } });
    try {
      const malformed = await t.app.inject({ method: 'GET', url: '/payment/%E0%A4%A' });
      const long = await t.app.inject({ method: 'GET', url: `/payment/${'a'.repeat(300)}` });
      for (const [res, status] of [[malformed, 400], [long, 414]] as const) {
        assert.equal(res.statusCode, status);
        const line = lines.find((l) => l.msg === 'request completed' && l.reqId === res.headers['request-id']);
        assert.equal(line?.res?.statusCode, status, `no access-log line for the ${status}`);
      }
      const scrape = await t.app.inject({ method: 'GET', url: '/operator/metrics', headers: { authorization: `Bearer ${token}` } });
      assert.match(scrape.body, /^tzero_http_requests_total\{method="GET",route="unmatched",status="400"\} 1$/m);
      assert.match(scrape.body, /^tzero_http_requests_total\{method="GET",route="unmatched",status="414"\} 1$/m);
    } finally {
      await t.close();
    }
  });

  it('logs and counts the requests Node refuses before Fastify sees them, with the id their answer carries', async () => {
    const lines: Array<Record<string, unknown> & { msg: string; reqId?: string; res?: { statusCode: number } }> = [];
    const log = createLogger('info', { write: (text: string) => void lines.push(JSON.parse(text)) });
    const token = 'op_' + 'n'.repeat(40);
    const t = await startTestGateway({ log, env: { OPERATOR_TOKEN: token } });
    try {
      const url = new URL(await t.listen());
      const huge = await rawExchange(url, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Filler: ${'a'.repeat(20_000)}\r\n\r\n`);
      const garbage = await rawExchange(url, 'HELLO THERE\r\n\r\n');
      for (const [exchange, status] of [[huge, 431], [garbage, 400]] as const) {
        const requestId = (JSON.parse(exchange.body) as { request_id: string }).request_id;
        const line = lines.find((l) => l.reqId === requestId);
        assert.equal(line?.msg, 'request completed', `no access-log line for the ${status}: ${JSON.stringify(lines.filter((l) => 'request_id' in l))}`);
        assert.equal(line.res?.statusCode, status);
      }
      assert.deepEqual(lines.filter((l) => 'request_id' in l), [], 'every line names its request as reqId');
      const scrape = await t.app.inject({ method: 'GET', url: '/operator/metrics', headers: { authorization: `Bearer ${token}` } });
      assert.match(scrape.body, /^tzero_http_requests_total\{method="unknown",route="unmatched",status="431"\} 1$/m);
      assert.match(scrape.body, /^tzero_http_requests_total\{method="unknown",route="unmatched",status="400"\} 1$/m);
    } finally {
      await t.close();
    }
  });
});

describe('a request reaching a gateway that is closing', () => {
  /** The answers to a request under way (its body half sent when the gateway starts closing) and to `pipelined`, sent behind it. */
  async function answersWhileClosing(t: TestGateway, pipelined: (key: string) => string): Promise<string[]> {
    const url = new URL(await t.listen());
    const socket = connect(Number(url.port), url.hostname);
    await new Promise((resolve) => socket.once('connect', resolve));
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    const ended = new Promise((resolve) => socket.once('close', resolve));
    const key = t.credentials.secret_key;
    const body = JSON.stringify({ url: 'http://127.0.0.1:9/hook', events: ['*'] });
    socket.write(`POST /webhook-endpoints HTTP/1.1\r\nHost: x\r\nX-Secret-Key: ${key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
    const closing = t.gateway.app.close();
    await new Promise((resolve) => setTimeout(resolve, 100));
    socket.write(`${body.slice(10)}${pipelined(key)}`);
    await ended;
    await closing;
    const answers = received.split(/(?=HTTP\/1\.1 )/);
    assert.equal(answers.length, 2, received);
    assert.match(answers[0]!, /^HTTP\/1\.1 201 /);
    return answers;
  }

  it('is refused with a 503 problem, Retry-After and the connection closed; the request under way is answered', async () => {
    const t = await startTestGateway();
    try {
      const [, refused] = await answersWhileClosing(t, (key) => `GET /payments HTTP/1.1\r\nHost: x\r\nX-Secret-Key: ${key}\r\n\r\n`);
      assert.match(refused!, /^HTTP\/1\.1 503 /);
      assert.match(refused!, /\r\ncontent-type: application\/problem\+json/i);
      assert.match(refused!, /\r\nretry-after: 1\r\n/i);
      assert.match(refused!, /\r\nconnection: close\r\n/i);
      assert.match(refused!, /"code":"shutting_down"/);
    } finally {
      await t.close();
    }
  });

  it("gives a customer's browser on a payment page a page to reload, not the API's JSON", async () => {
    const t = await startTestGateway();
    try {
      const created = await postAuthorise(t, await exampleBody());
      const pagePath = new URL(created.json().redirect_url as string).pathname;
      const [, refused] = await answersWhileClosing(t, () => `POST ${pagePath}/confirm HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 6\r\n\r\ncsrf=x`);
      assert.match(refused!, /^HTTP\/1\.1 503 /);
      assert.match(refused!, /\r\ncontent-type: text\/html/i);
      assert.match(refused!, /\r\ncontent-security-policy: /i);
      assert.match(refused!, /\r\nretry-after: 1\r\n/i);
      assert.match(refused!, new RegExp(`href="${pagePath}"`), 'links back to the payment page');
      assert.doesNotMatch(refused!, /shutting_down/);
    } finally {
      await t.close();
    }
  });
});

import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem } from '../support/http.js';
import { answeredCodes } from '../support/answered-codes.js';

interface ErrorType {
  object: string;
  type: string;
  code: string;
  statuses: Array<{ status: number; title: string }>;
  documented: Array<{ source: string; section?: string; status?: number; text: string }>;
}

/** A problem's `type`, fetched from the gateway as a client library (or a developer) would. */
async function follow(t: TestGateway, type: string, accept = 'application/json') {
  assert.ok(type.startsWith(`${t.config.publicUrl}/errors/`), `${type} is under this gateway's PUBLIC_URL`);
  return t.app.inject({ method: 'GET', url: type.slice(t.config.publicUrl.length), headers: { accept } });
}

describe('problem types resolve to the documentation of their code', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway({ dialect: 'sqlite' });
  });
  after(() => t?.close());

  it('serves, at the type of a problem, what the documents and the OpenAPI say of its code', async () => {
    const problems = [
      assertProblem(await t.app.inject({ method: 'GET', url: '/nope' }), 404, 'route_not_found'),
      assertProblem(await t.request({ method: 'GET', url: '/payments?starting_after=abc' }), 400, 'invalid_cursor'),
      assertProblem(await t.app.inject({ method: 'GET', url: '/payments' }), 401, 'unauthorized'),
      assertProblem(await t.app.inject({ method: 'GET', url: '/payment/%E0%A4%A' }), 400, 'malformed_path'),
      assertProblem(await t.request({ method: 'POST', url: '/payment/authorise', headers: { 'content-type': 'application/json' }, payload: '{' }), 400, 'invalid_json'),
    ];
    for (const p of problems) {
      const res = await follow(t, p.type);
      assert.equal(res.statusCode, 200, `${p.type}: ${res.body}`);
      assert.match(String(res.headers['content-type']), /^application\/json; charset=utf-8$/);
      const doc = res.json<ErrorType>();
      assert.deepEqual([doc.object, doc.code, doc.type], ['error_type', p.code, p.type]);
      assert.ok(doc.statuses.some((s) => s.status === p.status && s.title === p.title), `${p.code}: ${JSON.stringify(doc.statuses)}`);
      assert.ok(doc.documented.length > 0);
      for (const passage of doc.documented) assert.match(passage.text, new RegExp(`(?<![a-z0-9_])${p.code}(?![a-z0-9_])`), p.code);
    }
    // The table of docs/authorise.md gives invalid_cursor its meaning, not only its name.
    const cursor = (await follow(t, problems[1]!.type)).json<ErrorType>();
    assert.ok(cursor.documented.some((d) => d.source === 'docs/authorise.md' && d.status === 400 && /starting_after/.test(d.text)), JSON.stringify(cursor.documented));
    // And the served OpenAPI's operations that list it.
    const unauthorized = (await follow(t, problems[2]!.type)).json<ErrorType>();
    assert.ok(unauthorized.documented.some((d) => d.source === 'GET /payments' && d.status === 401) || unauthorized.documented.some((d) => d.source.startsWith('docs/')), JSON.stringify(unauthorized.documented));
  });

  it("resolves the type of an answer Node's parser refused before Fastify saw it", async () => {
    const base = await t.listen();
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(base).port), '127.0.0.1');
      let text = '';
      socket.on('data', (d) => (text += d.toString()));
      socket.on('end', () => resolve(text));
      socket.on('error', reject);
      socket.write('NOT HTTP\r\n\r\n');
    });
    const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { type: string; code: string };
    assert.equal(body.code, 'malformed_request');
    assert.equal((await follow(t, body.type)).json<ErrorType>().code, 'malformed_request');
  });

  it('resolves the type of every code the source can answer', async () => {
    const unresolved: string[] = [];
    for (const code of answeredCodes().codes.keys()) {
      const res = await t.app.inject({ method: 'GET', url: `/errors/${code}` });
      if (res.statusCode !== 200 || res.json<ErrorType>().documented.length === 0) unresolved.push(`${code}: ${res.statusCode}`);
    }
    assert.deepEqual(unresolved, []);
  });

  it('shows a browser a page, and answers a code nobody documented as a problem naming it', async () => {
    const page = await t.app.inject({ method: 'GET', url: '/errors/invalid_cursor', headers: { accept: 'text/html,application/xhtml+xml' } });
    assert.equal(page.statusCode, 200);
    assert.match(String(page.headers['content-type']), /^text\/html; charset=utf-8$/);
    assert.match(page.body, /<h1><code>invalid_cursor<\/code><\/h1>/);
    assert.match(page.body, /400 Bad Request/);
    assertProblem(await t.app.inject({ method: 'GET', url: '/errors/no_such_code' }), 404, 'error_type_not_found', '/params/code');
    assertProblem(await t.app.inject({ method: 'GET', url: '/errors/Not-A-Code' }), 400, 'invalid_format', '/params/code');
  });
});

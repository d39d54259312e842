import assert from 'node:assert/strict';
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import type { ProblemBody } from '../../src/http/problem.js';
import { exampleBody, type TestGateway } from './gateway.js';

/** A problem as a client reads it, with the field errors a 400 carries. */
export interface Problem extends ProblemBody {
  errors?: Array<{ param: string; code: string; message: string }>;
}

/**
 * Asserts an RFC 9457 answer: the media type, the members every problem carries, and
 * (when given) its status, code and JSON pointer. Returns the parsed body.
 */
export function assertProblem(res: LightMyRequestResponse, status: number, code?: string, param?: string): Problem {
  assert.equal(res.statusCode, status, `expected ${status}, got ${res.statusCode}: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json; charset=utf-8$/);
  const body = res.json<Problem>();
  assert.equal(body.status, status);
  assert.ok(body.type.endsWith(`/errors/${body.code}`), `type: ${res.body}`);
  assert.equal(typeof body.title, 'string');
  assert.ok(body.detail.length > 0, 'detail is empty');
  assert.match(body.request_id, /^req_[0-9a-f]{24}$/);
  assert.match(body.code, /^[a-z_]+$/);
  if (code !== undefined) assert.equal(body.code, code, `code: ${res.body}`);
  if (param !== undefined) assert.equal(body.param, param, `param: ${res.body}`);
  // A field at fault is in errors[] too, first: a client library reads one list, whatever the status.
  if (body.param !== undefined) assert.deepEqual(body.errors?.slice(0, 1).map((e) => [e.param, e.code]), [[body.param, body.code]], `errors: ${res.body}`);
  assert.doesNotMatch(res.body, /\bat [\w.<>]+ \(|node_modules|SQLITE_|syntax error at|insert into/i, 'a problem leaks internals');
  return body;
}

/** The pointers and codes of every field error in a 400, for assertions that name all of them. */
export function fieldErrors(body: Problem): Array<[string, string]> {
  return (body.errors ?? []).map((e) => [e.param, e.code]);
}

export function postAuthorise(t: TestGateway, payload: unknown, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return t.request({
    method: 'POST',
    url: '/payment/authorise',
    headers: { 'content-type': 'application/json', ...headers },
    payload: typeof payload === 'string' ? payload : JSON.stringify(payload),
  });
}

/** A second merchant with its own channel and key, made through the same use cases as the CLI. */
export async function createMerchant(t: TestGateway, reference: string, opts: { currencies?: string[]; returnUrls?: string[] } = {}) {
  const merchants = t.gateway.services.merchants;
  const merchant = await merchants.createMerchant(`Merchant ${reference}`);
  const { channel, return_secret } = await merchants.createChannel(merchant.id, {
    reference,
    name: `Shop ${reference}`,
    mode: 'sandbox',
    currencies: opts.currencies ?? ['USD', 'EUR'],
    returnUrls: opts.returnUrls ?? ['https://shop.example/return'],
    notifyEmails: [],
  });
  const key = await merchants.createSecretKey(merchant.id, 'test');
  return { merchantId: merchant.id, channel, returnSecret: return_secret, key };
}

/** The spec's example authorised on `channel` with `secretKey`, through any gateway's app; the 201 is checked. */
export async function authoriseExampleOn(app: FastifyInstance, secretKey: string, channel: string): Promise<LightMyRequestResponse> {
  const res = await app.inject({
    method: 'POST',
    url: '/payment/authorise',
    headers: { 'x-secret-key': secretKey, 'content-type': 'application/json' },
    payload: JSON.stringify(await exampleBody({ channel })),
  });
  assert.equal(res.statusCode, 201, res.body);
  return res;
}

const ENTITIES: Record<string, string> = { '&amp;': '&', '&lt;': '<', '&gt;': '>', '&quot;': '"', '&#39;': "'" };

/**
 * Where the hosted page sends the customer after one of its forms finished the payment: the
 * form's 303 lands on the page itself, which links (and goes on) to the merchant's return URL.
 */
export async function merchantReturnAfter(app: FastifyInstance, posted: LightMyRequestResponse): Promise<URL> {
  assert.equal(posted.statusCode, 303, posted.body);
  const landing = await app.inject({ method: 'GET', url: String(posted.headers.location) });
  assert.equal(landing.statusCode, 200, landing.body);
  const href = /id="return" href="([^"]+)"/.exec(landing.body)?.[1];
  assert.ok(href, `no return link on ${landing.body}`);
  assert.match(landing.body, /location\.replace\(document\.getElementById\('return'\)\.href\)/);
  return new URL(href.replace(/&(?:amp|lt|gt|quot|#39);/g, (e) => ENTITIES[e]!));
}

import { randomBytes, timingSafeEqual } from 'node:crypto';
import formbody from '@fastify/formbody';
import { type Static, Type } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../app/services.js';
import type { CheckoutView } from '../../app/checkout.js';
import { forbiddenPage, notFoundPage, openPage, outcomePage, requestFailedPage } from '../pages/checkout-page.js';
import { DomainError } from '../../domain/errors.js';
import { newNonce, securePageHeaders } from '../pages/html.js';
import { isDatabaseUnavailable } from '../../adapters/storage/unavailable.js';
import { DATABASE_RETRY_AFTER_S } from '../problem.js';

const CSRF_COOKIE = 'tz_csrf';
// Only the URL-safe alphabet, for the cookie path; the token's shape is checked where it is
// verified (src/app/page-token.ts), so a malformed token gets the same not-found page as a wrong one.
const TOKEN_SHAPE = /^[A-Za-z0-9_-]{1,100}$/;
const TokenParams = Type.Object({ token: Type.String({ pattern: TOKEN_SHAPE.source }) });
const PageQuery = Type.Object({
  error: Type.Optional(Type.String({ maxLength: 32 })),
  /** Set by the page's own forms once the payment has finished: go on to the merchant. */
  return: Type.Optional(Type.Literal('1')),
});
type PageQuery = Static<typeof PageQuery>;
const FormBody = Type.Object({ csrf: Type.Optional(Type.String({ maxLength: 64 })), otp: Type.Optional(Type.String({ maxLength: 16 })) });

function readCookie(request: FastifyRequest, name: string): string | undefined {
  for (const part of (request.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return undefined;
}

/**
 * Whether a POST comes from the page's own form: its CSRF field matches the cookie the page
 * set. A browser that kept no cookie (cookies blocked) would otherwise never let its customer
 * pay: there the browser's own word that the form was sent from this origin stands in
 * (Sec-Fetch-Site, or Origin from browsers that do not send it), which a cross-site form
 * cannot forge. A request that says neither is refused.
 */
function fromThisPage(request: FastifyRequest<{ Body: { csrf?: string } }>, ownOrigin: string): boolean {
  const cookie = readCookie(request, CSRF_COOKIE);
  if (cookie) return sameValue(cookie, request.body?.csrf);
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined) return site === 'same-origin';
  return request.headers.origin === ownOrigin;
}

function sameValue(a: string | undefined, b: string | undefined): boolean {
  if (!a || !b) return false;
  // Compared as bytes: two texts of one length in characters can differ in UTF-8 length.
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** A page's URL, or one of its forms' (or the page's with a trailing slash): `[token, rest]`. */
const PAGE_PATH = /^\/pay\/([^/?]+)(\/(?:confirm|challenge|cancel)?)?(?:\?|$)/;

/**
 * Any other request under a page's URL (the app's not-found handler hands them here): the
 * customer's browser gets a page with the page's headers, never the API's problem+json. A
 * form's address opened by hand (typed again, copied from the address bar of the 403 page,
 * which the form's POST left there) goes to the page, which shows where the payment stands.
 */
export function answerStrayPageRequest(request: FastifyRequest, reply: FastifyReply, allow: string[]): FastifyReply {
  const [, token = '', rest] = PAGE_PATH.exec(request.url) ?? [];
  const valid = TOKEN_SHAPE.test(token);
  if (valid && rest !== undefined && (request.method === 'GET' || request.method === 'HEAD')) {
    return reply.code(303).header('referrer-policy', 'no-referrer').header('location', `/pay/${token}`).send();
  }
  const nonce = newNonce();
  if (!valid || allow.length === 0) return securePageHeaders(reply.code(404), nonce).send(notFoundPage(nonce));
  return securePageHeaders(reply.code(405).header('allow', allow.join(', ')), nonce).send(requestFailedPage(nonce, `/pay/${token}`, false));
}

/**
 * A page request reaching a process that is shutting down: the customer's browser gets a
 * page too. Nothing was started; reloaded, the page is served by another process or this one
 * restarted.
 */
export function answerPageWhileClosing(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const [, token = ''] = PAGE_PATH.exec(request.url) ?? [];
  const nonce = newNonce();
  if (!TOKEN_SHAPE.test(token)) return securePageHeaders(reply.code(404), nonce).send(notFoundPage(nonce));
  return securePageHeaders(reply.code(503).header('retry-after', '1'), nonce).send(requestFailedPage(nonce, `/pay/${token}`, true));
}

/**
 * A request under a page's URL that fails: a form that cannot be read (wrong content type,
 * too large, not a form), a body or a header the app refuses before any route (for a URL no
 * route takes, too), or a failure on our side. The customer's browser gets a page with the
 * page's headers, never the API's problem+json.
 */
export function answerPageError(error: Error & { statusCode?: number }, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const unavailable = isDatabaseUnavailable(error);
  const status = error instanceof DomainError ? error.status : error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500 ? error.statusCode : unavailable ? 503 : 500;
  if (unavailable) {
    request.log.warn({ err: error }, 'database unavailable');
    void reply.header('retry-after', String(DATABASE_RETRY_AFTER_S));
  } else if (status >= 500) request.log.error({ err: error }, 'hosted page error');
  const nonce = newNonce();
  const [, token = ''] = PAGE_PATH.exec(request.url) ?? [];
  // A token of the wrong shape names no page, like a token no page has.
  if (status === 404 || !TOKEN_SHAPE.test(token)) return securePageHeaders(reply.code(404), nonce).send(notFoundPage(nonce));
  return securePageHeaders(reply.code(status), nonce).send(requestFailedPage(nonce, `/pay/${token}`, status >= 500));
}

/**
 * The unique URL of a payment: the customer's 3-D Secure style finalisation page.
 * POSTs are guarded by a double-submit CSRF cookie and answer with 303, so reloads and the
 * back button never resubmit. The cookie is SameSite=Lax: a cross-site POST never carries
 * it, while the page opened again from the merchant's site (a second tab) reads the one it
 * set instead of replacing it, which would leave the first tab's form unable to submit.
 */
export const checkoutRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    // Forms are parsed here only: everywhere else a form body is a 415.
    await app.register(formbody, { bodyLimit: 4096 });
    const { checkout, ctx } = services;
    const secureCookie = ctx.config.publicUrl.startsWith('https:');
    const ownOrigin = new URL(ctx.config.publicUrl).origin;

    app.setErrorHandler(answerPageError);

    async function render(reply: FastifyReply, token: string, view: CheckoutView, csrf: string, query: PageQuery) {
      const nonce = newNonce();
      securePageHeaders(reply, nonce);
      if (view.payment.status !== 'requires_action') {
        return reply.send(outcomePage(view, await checkout.returnRedirect(view), nonce, query.return === '1'));
      }
      return reply.send(openPage(view, token, csrf, nonce, ctx.clock.now(), query.error));
    }

    app.get<{ Params: { token: string }; Querystring: PageQuery }>(
      '/pay/:token',
      { schema: { hide: true, params: TokenParams, querystring: PageQuery } },
      async (request, reply) => {
        const view = await checkout.load(request.params.token);
        if (!view) {
          const nonce = newNonce();
          return securePageHeaders(reply.code(404), nonce).send(notFoundPage(nonce));
        }
        // An empty cookie (planted, or cut by a proxy) would make an empty field that never matches.
        const csrf = readCookie(request, CSRF_COOKIE) || randomBytes(18).toString('base64url');
        reply.header('set-cookie', `${CSRF_COOKIE}=${csrf}; Path=/pay/${request.params.token}; HttpOnly; SameSite=Lax${secureCookie ? '; Secure' : ''}`);
        return render(reply, request.params.token, view, csrf, request.query);
      },
    );

    const action =
      (run: (token: string, body: { otp?: string }, loaded: CheckoutView) => Promise<CheckoutView & { wrongCode?: boolean; noCode?: boolean }>) =>
      async (request: FastifyRequest<{ Params: { token: string }; Body: { csrf?: string; otp?: string } }>, reply: FastifyReply) => {
        const token = request.params.token;
        const existing = await checkout.load(token);
        if (!existing) {
          const nonce = newNonce();
          return securePageHeaders(reply.code(404), nonce).send(notFoundPage(nonce));
        }
        if (!fromThisPage(request, ownOrigin)) {
          const nonce = newNonce();
          return securePageHeaders(reply.code(403), nonce).send(forbiddenPage(nonce, `/pay/${token}`));
        }
        const view = await run(token, request.body ?? {}, existing);
        if (view.payment.status === 'requires_action') {
          const error = view.wrongCode ? '?error=wrong_code' : view.noCode ? '?error=no_code' : '';
          return reply.code(303).header('cache-control', 'no-store').header('location', `/pay/${token}${error}`).send();
        }
        // The form's redirects end on this page, which then sends the customer to the merchant:
        // browsers hold every redirect after a form POST to the page's form-action, so a return
        // URL that redirects elsewhere (http to https, apex to www) would strand the customer.
        return reply.code(303).header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').header('location', `/pay/${token}?return=1`).send();
      };

    const opts = { schema: { hide: true, params: TokenParams, body: FormBody } };
    app.post('/pay/:token/confirm', opts, action((token, _body, loaded) => checkout.complete(token, loaded)));
    app.post('/pay/:token/challenge', opts, action((token, body, loaded) => checkout.answerChallenge(token, body.otp ?? '', loaded)));
    app.post('/pay/:token/cancel', opts, action((token, _body, loaded) => checkout.cancel(token, loaded)));
  };

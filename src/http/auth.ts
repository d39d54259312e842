import { isIP } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Actor } from '../app/audit.js';
import type { Services } from '../app/services.js';
import type { KeyMode } from '../domain/secret-key.js';
import { MerchantRateLimiter } from './merchant-rate-limit.js';
import { problem, sendProblem } from './problem.js';

declare module 'fastify' {
  interface FastifyRequest {
    merchantId: string;
    /** The id (`key_…`) of the secret key the request authenticated with. */
    secretKeyId: string;
    /** That key's mode: the only channels and payments it may act on; null for a key made before modes, which acts on both (decision 0028). */
    keyMode: KeyMode | null;
  }
  interface FastifyContextConfig {
    /**
     * A write a suspended merchant may still make (decision 0027): it gives money back or
     * changes no money (a refund, a void, a callback endpoint). Reads need no flag.
     */
    whileSuspended?: boolean;
  }
  interface FastifyInstance {
    /** preHandler for merchant API routes: resolves X-Secret-Key to a merchant or answers 401. */
    requireSecretKey: (request: FastifyRequest, reply: FastifyReply) => Promise<void>;
  }
}

/**
 * The spec's example header is X-Secret-Key, and its text says "in the Authorization
 * header": `Authorization: Bearer sk_…` and a bare `Authorization: sk_…` are taken as well.
 */
export function presentedKey(request: FastifyRequest): string | undefined {
  const header = request.headers['x-secret-key'];
  if (typeof header === 'string') return header.trim();
  // The auth scheme is case-insensitive (RFC 9110 §11.1).
  const authorization = /^(?:bearer\s+)?(\S+)\s*$/i.exec(request.headers.authorization ?? '');
  return authorization?.[1];
}

function readOnly(request: FastifyRequest): boolean {
  return request.method === 'GET' || request.method === 'HEAD';
}

export function registerAuth(app: FastifyInstance, services: Services): void {
  app.decorateRequest('merchantId', '');
  app.decorateRequest('secretKeyId', '');
  app.decorateRequest('keyMode', null);
  const limit = services.ctx.config.merchantRateLimit;
  const limiter = limit && new MerchantRateLimiter(limit);
  app.decorate('requireSecretKey', async (request: FastifyRequest, reply: FastifyReply) => {
    const key = presentedKey(request);
    const found = await services.merchants.authenticate(key);
    if (!found) {
      // One answer for missing, malformed, unknown and revoked keys: nothing to learn from it.
      const detail = key === undefined ? 'send your secret key in the X-Secret-Key header' : 'the secret key is not valid (malformed, unknown or revoked)';
      reply.header('www-authenticate', 'X-Secret-Key');
      await sendProblem(reply, problem(request, 401, 'unauthorized', detail, '/headers/x-secret-key'));
      return;
    }
    if (found.suspended && !readOnly(request) && request.routeOptions.config.whileSuspended !== true) {
      // The reason stays with the operator (merchant list, audit): it may name an investigation.
      const detail = 'this merchant is suspended by the gateway operator: new payments, stored-card charges and captures are refused; reads, refunds and voids still work. Nothing was done; contact the operator';
      await sendProblem(reply, problem(request, 403, 'merchant_suspended', detail));
      return;
    }
    // A sandbox key's load test does not use up the live keys' share (decision 0028).
    const refused = limiter?.take(found.mode === null ? found.merchantId : `${found.merchantId}/${found.mode}`);
    if (refused) {
      if (refused.report) request.log.warn({ merchant_id: found.merchantId, per_second: limit!.perSecond, burst: limit!.burst }, 'merchant over its request rate: answering 429 (logged once a minute a merchant)');
      // Refused before the body is read and before any Idempotency-Key is claimed: nothing was done.
      const detail = `this merchant's requests are over ${limit!.perSecond} a second (bursts of ${limit!.burst}) to this gateway; nothing was done: send it again after Retry-After, with the same Idempotency-Key`;
      reply.header('retry-after', String(Math.ceil(refused.waitMs / 1000)));
      await sendProblem(reply, problem(request, 429, 'rate_limited', detail));
      return;
    }
    request.merchantId = found.merchantId;
    request.secretKeyId = found.keyId;
    request.keyMode = found.mode;
  });
}

/**
 * The client's address as the audit and access logs record it. Behind TRUST_PROXY that is what
 * X-Forwarded-For names, taken as written: a value that is no address (a card number, say)
 * would be kept in clear, so the hop that forwarded it is recorded instead.
 */
export function clientAddress(request: FastifyRequest): string {
  if (isIP(request.ip)) return request.ip;
  return request.ips?.filter((address) => isIP(address) !== 0).pop() ?? 'unknown';
}

/**
 * The merchant as the audit log records it: with the key that acted, so a leaked key's
 * doings can be told from the merchant's own (PCI DSS 10.2.1, 10.2.2).
 */
export function merchantActor(request: FastifyRequest): Actor {
  const key = request.secretKeyId ? `/${request.secretKeyId}` : '';
  return { who: `merchant:${request.merchantId}${key}`, from: `ip:${clientAddress(request)}` };
}

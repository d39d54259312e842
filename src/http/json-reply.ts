import type { FastifyReply, FastifyRequest } from 'fastify';

/** Handlers send JSON text themselves, so the response schemas document without re-serialising. */
export function sendJsonText(reply: FastifyReply, text: string, status = 200): FastifyReply {
  return reply.code(status).header('content-type', 'application/json; charset=utf-8').send(text);
}

export function sendJson(reply: FastifyReply, value: unknown, status = 200): FastifyReply {
  return sendJsonText(reply, JSON.stringify(value), status);
}

/** The operator API's answers: what one operator saw is kept by no cache on the way. */
export function sendOperatorJson(reply: FastifyReply, status: number, value: unknown): FastifyReply {
  return sendJson(reply.header('cache-control', 'no-store'), value, status);
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route takes no body as `{}`, also an empty one sent as JSON (src/http/app.ts's parser). */
    optionalBody?: boolean;
  }
}

/**
 * For POSTs whose body is optional: a bare request, an empty JSON body, `{}` and `{ }` all
 * validate as `{}`, and are one and the same request to Idempotency-Key. A JSON `null` is a
 * body that is not an object, refused as `[]` is: taken as none, it captured or refunded the
 * full amount for a client whose serialiser wrote null where it meant to send `amount`.
 */
async function emptyBodyIsEmptyObject(request: FastifyRequest): Promise<void> {
  const body = request.body;
  if (body === undefined || (typeof body === 'object' && body !== null && !Array.isArray(body) && Object.keys(body).length === 0)) {
    request.body = {};
    request.rawBody = '';
  }
}

/** Route options of a POST whose body is optional. */
export const optionalJsonBody = { preValidation: emptyBodyIsEmptyObject, config: { optionalBody: true } };

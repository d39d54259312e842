import type { FastifyReply, FastifyRequest } from 'fastify';

/** Handlers send JSON text themselves, so the response schemas document without re-serialising. */
export function sendJsonText(reply: FastifyReply, text: string, status = 200): FastifyReply {
  return reply.code(status).header('content-type', 'application/json; charset=utf-8').send(text);
}

export function sendJson(reply: FastifyReply, value: unknown, status = 200): FastifyReply {
  return sendJsonText(reply, JSON.stringify(value), status);
}

/** For POSTs whose body is optional: a bare request validates as `{}`. */
export async function emptyBodyIsEmptyObject(request: FastifyRequest): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

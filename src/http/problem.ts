import type { FastifyReply, FastifyRequest } from 'fastify';
import { redactCardNumbers } from '../domain/card-number-in-text.js';

/** RFC 9457 problem details, the one error shape of the whole API. */
export interface ProblemBody {
  type: string;
  title: string;
  status: number;
  detail: string;
  code: string;
  param?: string;
  request_id: string;
  [extra: string]: unknown;
}

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  408: 'Request Timeout',
  409: 'Conflict',
  413: 'Content Too Large',
  414: 'URI Too Long',
  415: 'Unsupported Media Type',
  422: 'Unprocessable Content',
  429: 'Too Many Requests',
  431: 'Request Header Fields Too Large',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

declare module 'fastify' {
  interface FastifyInstance {
    /** Where this gateway serves a page for each error code: a problem's `type` is this and its code. */
    problemTypeBase: string;
  }
}

/**
 * A problem's `type` resolves (RFC 9457 §3.1.1: dereferenced, it documents the problem) to
 * the gateway's own page for its code, GET /errors/{code} at PUBLIC_URL (decision 0034).
 */
export const problemTypeBase = (publicUrl: string) => `${publicUrl}/errors/`;

export function statusTitle(status: number): string {
  return TITLES[status] ?? 'Error';
}

export function problem(request: FastifyRequest, status: number, code: string, detail: string, param?: string, extra?: Record<string, unknown>): ProblemBody {
  // A field at fault is listed in errors[] whatever the status (a 404's path parameter, a 415's
  // header), as a 400's are: a client library reads one list. ValidationFailed and schema
  // errors list every field themselves, the first being param's.
  if (param !== undefined && !Array.isArray(extra?.errors)) extra = { ...extra, errors: [{ param, code, message: detail }] };
  return {
    type: request.server.problemTypeBase + code,
    title: statusTitle(status),
    status,
    // Messages quote what was sent (an unknown channel, an event type) and pointers name the
    // keys sent: never a card number.
    detail: redactCardNumbers(detail),
    code,
    ...(param !== undefined ? { param: redactCardNumbers(param) } : {}),
    request_id: request.id,
    ...(Array.isArray(extra?.errors) ? { ...extra, errors: extra.errors.map(redactFieldError) } : extra),
  };
}

/** Each entry of a list of field errors quotes what was sent as the first one's detail and param do. */
function redactFieldError(error: { param: string; code: string; message: string }) {
  return { ...error, param: redactCardNumbers(error.param), message: redactCardNumbers(error.message) };
}

export function sendProblem(reply: FastifyReply, body: ProblemBody): FastifyReply {
  return reply.code(body.status).header('content-type', 'application/problem+json; charset=utf-8').send(JSON.stringify(body));
}

/** What a client is told to wait before trying again while the database is out of reach. */
export const DATABASE_RETRY_AFTER_S = 5;

/**
 * The database could not serve the request. A write cut off at its COMMIT may or may not
 * have taken effect: the stored response commits with the effect, so the same request
 * sent again under its Idempotency-Key answers with what happened.
 */
export const databaseUnavailable = (request: FastifyRequest) =>
  problem(
    request,
    503,
    'database_unavailable',
    'our database cannot be reached right now; send the request again after Retry-After, with the same Idempotency-Key: if it took effect, that answers with its result',
  );

import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { PROBLEM_TYPE_BASE, statusTitle } from './problem.js';

const REFUSALS: Record<string, [status: number, code: string, detail: string]> = {
  ERR_HTTP_REQUEST_TIMEOUT: [408, 'request_timeout', 'the request was not received in full within the time allowed (60 s)'],
  HPE_HEADER_OVERFLOW: [431, 'headers_too_large', 'the request line and headers together are larger than the 16 KB allowed'],
};
const MALFORMED: [number, string, string] = [400, 'malformed_request', 'the request is not valid HTTP/1.1'];

/**
 * Whether this connection has already been answered, where another answer would be read
 * as the reply to a later request: a response under way (Node's own rule), or, for the
 * request timeout, any byte written (a request answered early, e.g. 401 before its body
 * arrived, and then stalled).
 */
function answered(socket: Socket, error: NodeJS.ErrnoException): boolean {
  const inFlight = (socket as Socket & { _httpMessage?: { headersSent?: boolean } | null })._httpMessage;
  return inFlight?.headersSent === true || (error.code === 'ERR_HTTP_REQUEST_TIMEOUT' && socket.bytesWritten > 0);
}

/**
 * Requests Node's HTTP parser refuses never reach Fastify's handlers: they get the API's
 * problem+json as well (Fastify's own answer is a different JSON shape), then the
 * connection closes, as Node would close it.
 */
export function clientErrorHandler(newRequestId: () => string) {
  return function (this: FastifyInstance, error: NodeJS.ErrnoException, socket: Socket): void {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const [status, code, detail] = REFUSALS[error.code ?? ''] ?? MALFORMED;
    const requestId = newRequestId();
    this.log.info({ code: error.code, request_id: requestId, remote_address: socket.remoteAddress }, 'request refused before routing');
    if (socket.writable && !answered(socket, error)) {
      const title = statusTitle(status);
      const body = JSON.stringify({ type: PROBLEM_TYPE_BASE + code, title, status, detail, code, request_id: requestId });
      socket.write(`HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRequest-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`);
    }
    socket.destroy(error);
  };
}

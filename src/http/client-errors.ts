import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Metrics } from '../app/metrics.js';
import { statusTitle } from './problem.js';

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
 * connection closes, as Node would close it. Their answer is logged and counted as every
 * other is (app.ts): one access-log line under the `reqId` the answer carries, and
 * `tzero_http_requests_total` under no route, by method `unknown` (the parser gave none).
 */
export function clientErrorHandler(newRequestId: () => string, metrics: Pick<Metrics, 'observeRequest'>, typeBase: string) {
  return function (this: FastifyInstance, error: NodeJS.ErrnoException, socket: Socket): void {
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    const remote_address = socket.remoteAddress;
    if (!socket.writable || answered(socket, error)) {
      // Nothing is answered: what was answered on this connection was logged and counted with its request.
      this.log.info({ code: error.code, remote_address }, 'connection closed before its request was read in full');
      socket.destroy(error);
      return;
    }
    const [status, code, detail] = REFUSALS[error.code ?? ''] ?? MALFORMED;
    const reqId = newRequestId();
    const title = statusTitle(status);
    const body = JSON.stringify({ type: typeBase + code, title, status, detail, code, request_id: reqId });
    socket.write(`HTTP/1.1 ${status} ${title}\r\nContent-Type: application/problem+json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nRequest-Id: ${reqId}\r\nConnection: close\r\n\r\n${body}`);
    this.log.info({ reqId, res: { statusCode: status }, code: error.code, remote_address }, 'request completed');
    metrics.observeRequest('unknown', undefined, status);
    socket.destroy(error);
  };
}

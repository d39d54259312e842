import http from 'node:http';
import https from 'node:https';
import { performance } from 'node:perf_hooks';
import { storableText } from '../../domain/storable-text.js';
import { checkUrl, guardedLookup, type OutboundPolicy, type Resolver, systemResolver, TargetRefused } from './ssrf-guard.js';

export interface WebhookRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
  signal?: AbortSignal;
}

export interface WebhookResponse {
  /** null when no HTTP response arrived (refused, timed out, connection error). */
  statusCode: number | null;
  durationMs: number;
  /** The start of the response body, for the attempt log, with NUL and unpaired surrogates as U+FFFD (storableText). */
  body: string | null;
  /** Storable text as well: it can quote the receiver. */
  error: string | null;
  /** How long a 429 or 503 asked us to wait (Retry-After, in seconds or as a date); null otherwise. */
  retryAfterMs: number | null;
}

/** RFC 9110's preferred date form (IMF-fixdate); Date.parse alone takes "1.5" as a date in 2001. */
const IMF_FIXDATE = /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/** Retry-After as RFC 9110 allows it: a number of seconds or an HTTP date. */
export function retryAfterMs(statusCode: number | undefined, header: string | undefined, nowMs: number): number | null {
  if ((statusCode !== 429 && statusCode !== 503) || header === undefined) return null;
  const value = header.trim();
  if (/^\d{1,10}$/.test(value)) return Number(value) * 1000;
  if (!IMF_FIXDATE.test(value)) return null;
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, at - nowMs);
}

export const USER_AGENT = 'tZeroPay-Webhooks/1.0 (+https://docs.tzero-pay.test/webhooks)';
/** What the attempt log keeps of a response body. */
export const RESPONSE_BODY_LIMIT = 1024;

/**
 * POSTs one signed callback. Redirects are not followed (a 3xx is a failed attempt like
 * any other non-2xx), the whole exchange is bounded by the timeout, the response is read
 * no further than the attempt log keeps (the connection is then closed), and every new
 * connection goes through the SSRF guard's lookup so it reaches only checked addresses.
 * Connections are kept alive: a busy endpoint costs one TLS handshake, not one per event.
 */
export class WebhookSender {
  private readonly httpAgent: http.Agent;
  private readonly httpsAgent: https.Agent;
  private readonly lookup: ReturnType<typeof guardedLookup>;

  constructor(
    private readonly policy: OutboundPolicy,
    private readonly timeoutMs: number,
    maxSockets: number,
    resolver: Resolver = systemResolver,
  ) {
    // Idle sockets are closed before common server keep-alive timeouts (Node's is 5 s),
    // so a reused socket is rarely one the server is about to drop.
    const agentOptions = { keepAlive: true, maxSockets, maxFreeSockets: maxSockets, timeout: 4000, scheduling: 'lifo' as const };
    this.httpAgent = new http.Agent(agentOptions);
    this.httpsAgent = new https.Agent(agentOptions);
    this.lookup = guardedLookup(policy, resolver);
  }

  async send(req: WebhookRequest): Promise<WebhookResponse> {
    const started = performance.now();
    let url: URL;
    try {
      url = checkUrl(req.url, this.policy);
    } catch (error) {
      return { statusCode: null, durationMs: 0, body: null, error: describe(error as Error), retryAfterMs: null };
    }
    const first = await this.exchange(url, req, started);
    // A kept-alive socket the server closed while idle fails at once; that says nothing
    // about the endpoint, so the message goes again on a fresh connection.
    if (first.staleSocket) return this.exchange(url, req, started);
    return first;
  }

  close(): void {
    this.httpAgent.destroy();
    this.httpsAgent.destroy();
  }

  private exchange(url: URL, req: WebhookRequest, started: number): Promise<WebhookResponse & { staleSocket?: boolean }> {
    const secure = url.protocol === 'https:';
    const body = Buffer.from(req.body);
    return new Promise((resolve) => {
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const finish = (r: Omit<WebhookResponse, 'durationMs'> & { staleSocket?: boolean }) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ ...r, durationMs: Math.round(performance.now() - started) });
      };
      const request = (secure ? https : http).request(
        {
          method: 'POST',
          host: url.hostname.replace(/^\[|\]$/g, ''),
          port: url.port || (secure ? 443 : 80),
          path: url.pathname + url.search,
          headers: { ...req.headers, 'content-type': 'application/json', 'content-length': String(body.length), 'user-agent': USER_AGENT },
          agent: secure ? this.httpsAgent : this.httpAgent,
          lookup: this.lookup as unknown as http.RequestOptions['lookup'],
          ...(req.signal ? { signal: req.signal } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          let kept = 0;
          const answered = { statusCode: res.statusCode ?? null, retryAfterMs: retryAfterMs(res.statusCode, res.headers['retry-after'], Date.now()) };
          const text = () => storedBody(Buffer.concat(chunks).toString('utf8'));
          res.on('data', (chunk: Buffer) => {
            chunks.push(chunk);
            kept += chunk.length;
            // The status decides the attempt and the log keeps no more than this: reading on
            // would let a receiver make the gateway download whatever it sends until the timeout.
            if (kept > RESPONSE_BODY_LIMIT) {
              finish({ ...answered, body: text(), error: null });
              res.destroy();
            }
          });
          res.on('end', () => finish({ ...answered, body: text(), error: null }));
          res.on('error', (error) => finish({ ...answered, body: text(), error: describe(error) }));
          res.on('aborted', () => finish({ ...answered, body: text(), error: 'the response was cut off' }));
        },
      );
      timer = setTimeout(() => request.destroy(new Error(`no complete response within ${this.timeoutMs} ms`)), this.timeoutMs);
      request.on('error', (error: NodeJS.ErrnoException) => {
        const stale = request.reusedSocket && (error.code === 'ECONNRESET' || error.code === 'EPIPE');
        finish({ statusCode: null, body: null, error: describe(error), retryAfterMs: null, ...(stale ? { staleSocket: true } : {}) });
      });
      request.end(body);
    });
  }
}

/** Cut first, then made storable: the cut can fall between the halves of a surrogate pair. */
function storedBody(s: string): string {
  return storableText(s.length > RESPONSE_BODY_LIMIT ? s.slice(0, RESPONSE_BODY_LIMIT) : s);
}

/** Storable too: a TLS error quotes the receiver's certificate, and others may quote what it sent. */
function describe(error: Error): string {
  if (error instanceof TargetRefused) return `refused: ${error.message}`;
  if (error.name === 'AbortError') return 'aborted';
  const code = (error as NodeJS.ErrnoException).code;
  const message = storableText(error.message.slice(0, 300));
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

import pino, { type Logger } from 'pino';

/**
 * A URL as logged: page tokens are bearer credentials for a payment page, and a card number
 * pasted into a path or query (`GET /payment/4242…`) is card data like any other.
 */
export function redactUrl(url: string): string {
  return scrubText(url);
}

/** `%34%32…` is `42…` to anyone reading the log: percent-encoded digits are scrubbed as digits. */
const ENCODED_DIGIT = /%3([0-9])/g;

/**
 * 13 or more digits with at most two separators between two of them, also %-encoded: logs
 * keep no long numbers however they were written. A colon does not separate them here: it
 * sits in times and `host:port`, which operators need (COLON_GROUPS below).
 */
const DIGIT_RUN = /\d(?:(?:%[0-9a-fA-F]{2}|[^\p{L}\p{N}%:]){0,2}\d){12,}/gu;

/**
 * Groups of 3 to 6 digits joined by colons, as a card number's 4-4-4-4 or 4-6-5 groups could
 * be written; times (2-digit groups), `address:port` (one colon after a dotted address) and
 * IPv6 addresses (more groups, or `::`, beside them) are never this shape.
 */
const COLON_GROUPS = /(?<![\d.]|[\d:]:)\d{3,6}(?::\d{3,6}){2,}(?![\d.]|:[\d:])/g;

function scrubColonGroups(match: string): string {
  return match.length - (match.split(':').length - 1) >= 13 ? '[digits redacted]' : match;
}

function scrubDigits(text: string): string {
  const scrubbed = text.replace(DIGIT_RUN, '[digits redacted]').replace(COLON_GROUPS, scrubColonGroups);
  if (!text.includes('%3')) return scrubbed;
  // Read with its %-encoded digits as digits; the text is shown as sent unless that finds more.
  const decoded = scrubbed.replace(ENCODED_DIGIT, '$1');
  const again = decoded.replace(DIGIT_RUN, '[digits redacted]');
  return again === decoded ? scrubbed : again;
}

/** Card-number-like digit runs and our secret formats, wherever they appear in free text. */
export function scrubText(text: string): string {
  return scrubDigits(text)
    .replace(/\b(sk|rsk|whsec)_[A-Za-z0-9+/=_-]+/g, '$1_[redacted]')
    .replace(/\/pay\/[A-Za-z0-9_-]+/g, '/pay/[token]');
}

/**
 * Driver errors quote values in their message and `detail` (PostgreSQL's "Key (x)=(…)"),
 * which path-based redaction never sees: scrub the text, drop the quoting fields.
 */
function scrubError(err: ReturnType<typeof pino.stdSerializers.err>): Record<string, unknown> {
  const { detail: _detail, where: _where, parameters: _parameters, ...rest } = err as unknown as Record<string, unknown>;
  const out: Record<string, unknown> = { ...rest };
  for (const field of ['message', 'stack'] as const) if (typeof out[field] === 'string') out[field] = scrubText(out[field] as string);
  return out;
}

/**
 * JSON logs that never carry secrets: keys, cookies and card fields are censored by
 * path, and request logging records method and URL only, never bodies.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      redact: {
        paths: [
          'req.headers["x-secret-key"]',
          'req.headers.authorization',
          'req.headers.cookie',
          'res.headers["set-cookie"]',
          // pino has no recursive wildcard; the root and two levels cover a logged body
          // ({ body: { payment_method: … } }).
          'number',
          'cvc',
          'pan',
          'secret_key',
          'secret',
          'return_secret',
          'redirect_url',
          '*.number',
          '*.cvc',
          '*.pan',
          '*.*.number',
          '*.*.cvc',
          '*.*.pan',
          '*.expiry_month',
          '*.expiry_year',
          '*.*.expiry_month',
          '*.*.expiry_year',
          '*.secret_key',
          '*.secret',
          '*.return_secret',
          '*.redirect_url',
          '*.*.secret_key',
          '*.*.secret',
          '*.*.return_secret',
          '*.*.redirect_url',
        ],
        censor: '[redacted]',
      },
      serializers: {
        req: (req: { method: string; url: string; id: string }) => ({ id: req.id, method: req.method, url: redactUrl(req.url) }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
        err: (err: Error) => scrubError(pino.stdSerializers.err(err)),
      },
    },
    destination,
  );
}

type LogMethod = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';

/**
 * A request's logger, built on first use. Fastify makes a child logger for every
 * request, and pino's child() serialises and redacts its bindings at once: about 2 % of
 * the event loop at a few thousand requests a second, for a logger that at `warn` and
 * above is almost never written to.
 */
class LazyChildLogger {
  #child: Logger | undefined;

  constructor(
    private readonly parent: Logger,
    private readonly own: pino.Bindings,
  ) {}

  #real(): Logger {
    return (this.#child ??= this.parent.child(this.own));
  }

  #log(level: LogMethod, args: unknown[]): void {
    if (this.#child === undefined && !this.parent.isLevelEnabled(level)) return;
    (this.#real()[level] as (...a: unknown[]) => void)(...args);
  }

  get level(): string {
    return (this.#child ?? this.parent).level;
  }
  set level(level: string) {
    this.#real().level = level;
  }
  isLevelEnabled(level: string): boolean {
    return (this.#child ?? this.parent).isLevelEnabled(level);
  }
  bindings(): pino.Bindings {
    return this.#real().bindings();
  }
  child(bindings: pino.Bindings, options?: pino.ChildLoggerOptions): Logger {
    return this.#real().child(bindings, options);
  }
  fatal(...args: unknown[]): void {
    this.#log('fatal', args);
  }
  error(...args: unknown[]): void {
    this.#log('error', args);
  }
  warn(...args: unknown[]): void {
    this.#log('warn', args);
  }
  info(...args: unknown[]): void {
    this.#log('info', args);
  }
  debug(...args: unknown[]): void {
    this.#log('debug', args);
  }
  trace(...args: unknown[]): void {
    this.#log('trace', args);
  }
  silent(): void {}
}

/**
 * Fastify's `childLoggerFactory`: lazy when the route keeps the parent's level and
 * serialisers (all of ours do), pino's own child otherwise.
 */
export function requestLogger(parent: Logger, bindings: pino.Bindings, options: pino.ChildLoggerOptions): Logger {
  if (Object.keys(options).length > 0) return parent.child(bindings, options);
  return new LazyChildLogger(parent, bindings) as unknown as Logger;
}

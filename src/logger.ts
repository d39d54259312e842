import pino, { type Logger } from 'pino';

/** Page tokens in URLs are bearer credentials for a payment page: keep them out of logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/pay\/[A-Za-z0-9_-]+/, '/pay/[token]');
}

/** Card-number-like digit runs and our secret formats, wherever they appear in free text. */
export function scrubText(text: string): string {
  return text
    .replace(/\b(?:\d[ -]?){12,18}\d\b/g, '[digits redacted]')
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

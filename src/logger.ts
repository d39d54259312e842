import pino, { type Logger } from 'pino';

/** Page tokens in URLs are bearer credentials for a payment page: keep them out of logs. */
export function redactUrl(url: string): string {
  return url.replace(/\/pay\/[A-Za-z0-9_-]+/, '/pay/[token]');
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
          // pino has no recursive wildcard; two levels cover a logged body ({ body: { payment_method: … } }).
          '*.number',
          '*.cvc',
          '*.pan',
          '*.*.number',
          '*.*.cvc',
          '*.*.pan',
          '*.secret_key',
          '*.secret',
        ],
        censor: '[redacted]',
      },
      serializers: {
        req: (req: { method: string; url: string; id: string }) => ({ id: req.id, method: req.method, url: redactUrl(req.url) }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
    },
    destination,
  );
}

import { createHmac, randomBytes } from 'node:crypto';

/**
 * Standard Webhooks v1: `webhook-signature` holds space-separated `v1,<base64 HMAC-SHA256
 * of "id.timestamp.body">` entries, one per valid secret, so a receiver that knows
 * either the old or the new secret accepts the message during a rotation overlap.
 */
export const SECRET_PREFIX = 'whsec_';

/** 32 random bytes, base64, behind the `whsec_` prefix the standard's libraries strip. */
export function generateSecret(): string {
  return SECRET_PREFIX + randomBytes(32).toString('base64');
}

function secretKey(secret: string): Buffer {
  return Buffer.from(secret.startsWith(SECRET_PREFIX) ? secret.slice(SECRET_PREFIX.length) : secret, 'base64');
}

export function sign(secret: string, id: string, timestampSeconds: number, body: string): string {
  const mac = createHmac('sha256', secretKey(secret)).update(`${id}.${timestampSeconds}.${body}`).digest('base64');
  return `v1,${mac}`;
}

export interface SignedHeaders {
  'webhook-id': string;
  'webhook-timestamp': string;
  'webhook-signature': string;
}

export function signedHeaders(secrets: readonly string[], id: string, timestampSeconds: number, body: string): SignedHeaders {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestampSeconds),
    'webhook-signature': secrets.map((s) => sign(s, id, timestampSeconds, body)).join(' '),
  };
}

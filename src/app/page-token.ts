import { createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';
import { ID_PREFIX } from '../domain/ids.js';

/**
 * `<payment id>-<MAC>`: the id selects the session by primary key, the MAC is the
 * credential. `-` cannot occur in an id (`[a-z0-9_]`, src/domain/ids.ts), so the first one
 * splits the token, and it is in the alphabet the log redaction matches (src/logger.ts),
 * so the whole token, MAC included, is replaced in logs.
 */
const TOKEN = new RegExp(`^(${ID_PREFIX.payment}_[0-9a-f]{32})-([A-Za-z0-9_-]{43})$`);

const byKey = new WeakMap<Buffer, PageTokens>();

/**
 * Hosted-page tokens: `<payment id>-base64url(HMAC-SHA256(pageKey, "checkout v1\n" + payment id))`.
 * The MAC carries the same 256 bits of unguessability as a random token, but nothing
 * secret is stored: the database keeps the session under its payment id and the URL is
 * recomputed when needed. The key comes from HMAC_KEY, so rotating HMAC_KEY ends every
 * open page's URL (as it changes card fingerprints); the vault KEK plays no part.
 */
export class PageTokens {
  /** Derived once per HMAC key: the hot path only pays for the HMAC itself. */
  static of(hmacKey: Buffer): PageTokens {
    let tokens = byKey.get(hmacKey);
    if (!tokens) byKey.set(hmacKey, (tokens = new PageTokens(Buffer.from(hkdfSync('sha256', hmacKey, Buffer.alloc(0), 'tzero checkout page v1', 32)))));
    return tokens;
  }

  private constructor(private readonly key: Buffer) {}

  mint(paymentId: string): string {
    return `${paymentId}-${this.mac(paymentId)}`;
  }

  /**
   * The payment a token opens, or null for any token this key did not mint. The MAC is
   * checked before any lookup, so a forged token costs no query and its answer does not
   * depend on whether the payment exists. Comparing the text, not the decoded bytes,
   * refuses the other spellings of the same MAC that base64url's last character allows.
   */
  paymentIdOf(token: string): string | null {
    const parts = TOKEN.exec(token);
    if (!parts) return null;
    const paymentId = parts[1]!;
    return timingSafeEqual(Buffer.from(parts[2]!, 'latin1'), Buffer.from(this.mac(paymentId), 'latin1')) ? paymentId : null;
  }

  private mac(paymentId: string): string {
    return createHmac('sha256', this.key).update(`checkout v1\n${paymentId}`).digest('base64url');
  }
}

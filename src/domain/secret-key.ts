/**
 * Which payments a key may act on (decision 0028): a `sandbox` key only on sandbox channels and
 * their payments, a `live` key only on live ones. Keys made before modes have none (`null`):
 * they act on both, as they always did.
 */
export type KeyMode = 'sandbox' | 'live';
export const KEY_MODES: readonly KeyMode[] = ['sandbox', 'live'];

/**
 * The spec's format: `sk_` then 32 lowercase hex digits (128 bits). Keys made with a mode say it
 * after `sk_` (`sk_test_…`, `sk_live_…`, as Stripe's do), so a key pasted into the wrong place
 * can be told at a glance; the older keys without it stay valid.
 */
export const SECRET_KEY_PATTERN = /^sk_(?:test_|live_)?[0-9a-f]{32}$/;

const PREFIX: Record<KeyMode, string> = { sandbox: 'sk_test_', live: 'sk_live_' };

export function isWellFormedSecretKey(value: string): boolean {
  return SECRET_KEY_PATTERN.test(value);
}

export function formatSecretKey(random16: Uint8Array, mode: KeyMode): string {
  if (random16.length !== 16) throw new RangeError('a secret key is exactly 128 random bits');
  return PREFIX[mode] + Buffer.from(random16).toString('hex');
}

/** How `key list` shows a key without its secret: the prefix that tells its mode, and the last four. */
export function secretKeyHint(mode: KeyMode | null, last4: string): string {
  return `${mode === null ? 'sk_' : PREFIX[mode]}…${last4}`;
}

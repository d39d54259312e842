/** The spec's format: `sk_` then 32 lowercase hex digits (128 bits). */
export const SECRET_KEY_PATTERN = /^sk_[0-9a-f]{32}$/;

export function isWellFormedSecretKey(value: string): boolean {
  return SECRET_KEY_PATTERN.test(value);
}

export function formatSecretKey(random16: Uint8Array): string {
  if (random16.length !== 16) throw new RangeError('a secret key is exactly 128 random bits');
  return 'sk_' + Buffer.from(random16).toString('hex');
}

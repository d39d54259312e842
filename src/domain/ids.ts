/** Object types and the prefixes their ids carry, so an id says what it names. */
export const ID_PREFIX = {
  merchant: 'mer',
  channel: 'ch',
  secretKey: 'key',
  payment: 'pay',
  event: 'evt',
  paymentMethod: 'pm',
  refund: 're',
  release: 'rel',
  webhookEndpoint: 'we',
  delivery: 'del',
  document: 'doc',
  audit: 'aud',
} as const;

export type IdKind = keyof typeof ID_PREFIX;

/**
 * `<prefix>_` + 12 hex digits of milliseconds + 20 hex digits of randomness: sortable
 * by creation time (so cursors and indexes follow insertion order) and unguessable.
 */
export function formatId(kind: IdKind, nowMs: number, random: Uint8Array): string {
  if (random.length < 10) throw new RangeError('ids need 80 random bits');
  const time = Math.floor(nowMs).toString(16).padStart(12, '0');
  const rand = Buffer.from(random.buffer, random.byteOffset, 10).toString('hex');
  return `${ID_PREFIX[kind]}_${time}${rand}`;
}

export function hasPrefix(id: string, kind: IdKind): boolean {
  return new RegExp(`^${ID_PREFIX[kind]}_[0-9a-f]{32}$`).test(id);
}

/**
 * An id as a message or an audit row may quote it back: one of ours as it is; anything
 * else not at all, since a value in an id's place can be anything, a card number pasted
 * by mistake included.
 */
export function quotedId(value: string, kind: IdKind): string {
  return hasPrefix(value, kind) ? value : `with that id (not a ${ID_PREFIX[kind]}_ id)`;
}

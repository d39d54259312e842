import type { Kysely } from 'kysely';
import type { Schema } from '../adapters/storage/schema.js';
import { DomainError } from '../domain/errors.js';
import { quotedId } from '../domain/ids.js';
import type { KeyMode } from '../domain/secret-key.js';

/**
 * What a request's secret key may act on (decision 0028): its mode's channels and their
 * payments, events and stored cards; null for a key made before modes, which acts on both.
 */
export type KeyScope = KeyMode | null;

/** The ids of the channels in `mode`: a filter on payments, events and stored cards' agreements. */
export function channelsIn(db: Kysely<Schema>, mode: KeyMode) {
  return db.selectFrom('channels').select('channels.id').where('channels.mode', '=', mode);
}

/**
 * A channel of the other mode is named by the merchant itself (its own configuration), so the
 * answer says what is wrong: a test set-up holding a sandbox key is told to use a live one, not
 * that its channel is missing. Payments, events and stored cards of the other mode are not
 * found, exactly as missing ones: their ids say nothing to a key that may not see them.
 */
export function checkChannelMode(scope: KeyScope, channel: { reference: string; mode: KeyMode }): void {
  if (scope === null || scope === channel.mode) return;
  const wanted = channel.mode === 'live' ? 'a live key (sk_live_…)' : 'a sandbox key (sk_test_…)';
  throw new DomainError(403, 'key_mode_mismatch', `channel "${channel.reference}" is a ${channel.mode} channel and this is a ${scope} secret key: send ${channel.mode} payments with ${wanted}`, '/channel');
}

/** The 404 for a payment the key may not see: missing, another merchant's, or of the other mode alike. */
export function paymentNotFound(paymentId: string, scope: KeyScope): DomainError {
  const among = scope === null ? "this secret key's merchant" : `this ${scope} secret key's merchant (a ${scope} key sees ${scope} payments only)`;
  return new DomainError(404, 'payment_not_found', `no payment ${quotedId(paymentId, 'payment')} for ${among}`, '/params/id');
}

/** The same for a refund: missing, another merchant's, or of a payment of the other mode alike. */
export function refundNotFound(refundId: string, scope: KeyScope): DomainError {
  const among = scope === null ? "this secret key's merchant" : `this ${scope} secret key's merchant (a ${scope} key sees ${scope} refunds only)`;
  return new DomainError(404, 'refund_not_found', `no refund ${quotedId(refundId, 'refund')} for ${among}`, '/params/id');
}

import { DomainError } from '../domain/errors.js';
import type { Trx } from '../adapters/storage/database.js';
import type { PaymentsTable } from '../adapters/storage/schema.js';
import type { AppContext } from './context.js';
import { detailsOf } from './payment-transitions.js';
import { LookupCache } from './lookup-cache.js';

const HOUR_MS = 60 * 60 * 1000;
const DAY_MS = 24 * HOUR_MS;

/**
 * How many issuer declines of merchant-initiated payments a card may have at one merchant
 * before the next MIT on it is refused unsent (decision 0033): Mastercard charges every attempt
 * after 10 declines of a card in 24 hours, Visa every reattempt after the 15th in 30 days. Both
 * apply to every brand: a merchant's retry logic need not know which scheme a card is.
 */
export const MIT_DECLINE_LIMITS = [
  { declines: 10, windowMs: DAY_MS, window: '24 hours' },
  { declines: 15, windowMs: 30 * DAY_MS, window: '30 days' },
] as const;

const LONGEST_WINDOW_MS = Math.max(...MIT_DECLINE_LIMITS.map((l) => l.windowMs));

/**
 * Refuses an MIT the schemes would bar or charge for as a retry of the card's declines at this
 * merchant: after a decline advised do_not_retry, unless the payment it names was approved since
 * (a new agreement the issuer approved: the card is good again), and beyond the limits above.
 * Only declines of the payment's own mode count: a sandbox decline never reached a scheme, and
 * a sandbox key must not be able to bar a card's live MITs (decision 0028). A few indexed rows
 * of the card's own declines are read, with their payments' channels by primary key.
 */
export async function checkMitRetries(ctx: AppContext, payment: PaymentsTable, namedApprovedAt: number | null): Promise<void> {
  const now = ctx.clock.now();
  const channels = LookupCache.of(ctx);
  const mode = (await channels.channelById(payment.channel_id)).mode;
  const declines = await ctx.database.db
    .selectFrom('mit_declines')
    .innerJoin('payments', 'payments.id', 'mit_declines.payment_id')
    .select(['mit_declines.payment_id', 'mit_declines.declined_at', 'mit_declines.do_not_retry', 'payments.channel_id'])
    .where('mit_declines.merchant_id', '=', payment.merchant_id)
    .where('mit_declines.card_fingerprint', '=', payment.card_fingerprint)
    .where((eb) => eb.or([eb('mit_declines.declined_at', '>', now - LONGEST_WINDOW_MS), eb('mit_declines.do_not_retry', '=', 1)]))
    .orderBy('mit_declines.declined_at')
    .execute();
  const rows = [];
  for (const row of declines) if ((await channels.channelById(row.channel_id)).mode === mode) rows.push(row);
  const final = rows.find((r) => r.do_not_retry === 1 && (namedApprovedAt === null || namedApprovedAt <= r.declined_at));
  if (final) {
    throw new DomainError(
      422,
      'mit_retry_not_allowed',
      `the issuer declined merchant-initiated payment ${final.payment_id} on this card with retry_advice "do_not_retry" (${new Date(final.declined_at).toISOString()}), and the schemes charge for, and may bar, any retry of it: ask the customer in a customer-initiated payment, and name that payment once approved`,
      '/payment_method',
    );
  }
  for (const limit of MIT_DECLINE_LIMITS) {
    const counted = rows.filter((r) => r.declined_at > now - limit.windowMs);
    if (counted.length < limit.declines) continue;
    const freeAt = counted[counted.length - limit.declines]!.declined_at + limit.windowMs;
    throw new DomainError(
      422,
      'mit_retry_limit_reached',
      `the issuer declined ${counted.length} merchant-initiated payments on this card in the last ${limit.window}, and the schemes allow no more than ${limit.declines}: the next may be sent after ${new Date(freeAt).toISOString()}`,
      '/payment_method',
    );
  }
}

/** An issuer's decline of an MIT, counted against the card's later ones (in the transaction recording it). */
export async function recordMitDecline(trx: Trx, row: PaymentsTable): Promise<void> {
  await trx
    .insertInto('mit_declines')
    .values({
      payment_id: row.id,
      merchant_id: row.merchant_id,
      card_fingerprint: row.card_fingerprint,
      declined_at: row.updated_at,
      do_not_retry: detailsOf(row).retry_advice === 'do_not_retry' ? 1 : 0,
    })
    .execute();
}

import { DomainError } from '../domain/errors.js';
import { canTransition, eventTypeFor, type PaymentStatus } from '../domain/payment-state.js';
import type { PaymentsTable } from '../adapters/storage/schema.js';
import type { Trx } from '../adapters/storage/database.js';
import type { AppContext } from './context.js';
import { appendEvent } from './events.js';
import { type PaymentDetails, type PaymentResource, paymentResource } from './payment-resource.js';
import { storedJson, unpackJson } from '../adapters/storage/packed-json.js';
import { releaseInstalment } from './instalments.js';

/** A channel's reference never changes once assigned, so it is safe to remember. */
const channelReferences = new Map<string, string>();

export async function channelReference(ex: Trx | AppContext['database']['db'], channelId: string): Promise<string> {
  const known = channelReferences.get(channelId) ?? paymentChannels.get(channelId)?.reference;
  if (known) return known;
  const row = await ex.selectFrom('channels').select('reference').where('id', '=', channelId).executeTakeFirstOrThrow();
  channelReferences.set(channelId, row.reference);
  return row.reference;
}

/**
 * A payment's channel as its resource names it. The reference never changes once assigned, and
 * the mode is fixed once the channel has taken a payment (Merchants.updateChannel), so both are
 * safe to remember for a channel asked about for a payment (only: another's mode may change).
 */
export interface PaymentChannel {
  reference: string;
  mode: 'sandbox' | 'live';
}
const paymentChannels = new Map<string, PaymentChannel>();

export async function paymentChannel(ex: Trx | AppContext['database']['db'], channelId: string): Promise<PaymentChannel> {
  const known = paymentChannels.get(channelId);
  if (known) return known;
  const row = await ex.selectFrom('channels').select(['reference', 'mode']).where('id', '=', channelId).executeTakeFirstOrThrow();
  const channel = { reference: row.reference, mode: row.mode };
  paymentChannels.set(channelId, channel);
  return channel;
}

/**
 * Read a payment inside a transaction, locking its row where the database can. With
 * `merchantId`, another merchant's payment is not read at all: PostgreSQL locks only the
 * rows the condition selects, so such a request neither waits on the owner's lock (which
 * would tell that the payment exists and is busy) nor makes the owner wait on it.
 */
export async function loadForUpdate(trx: Trx, ctx: AppContext, paymentId: string, merchantId?: string): Promise<PaymentsTable | undefined> {
  let q = trx.selectFrom('payments').selectAll().where('id', '=', paymentId);
  if (merchantId !== undefined) q = q.where('merchant_id', '=', merchantId);
  if (ctx.database.caps.rowLocks) q = q.forUpdate();
  return q.executeTakeFirst();
}

export function detailsOf(row: Pick<PaymentsTable, 'details'>): PaymentDetails {
  return JSON.parse(unpackJson(row.details)) as PaymentDetails;
}

export interface TransitionOptions {
  /** Event type when it is not the one the new status implies (e.g. payment.capture_failed). */
  eventType?: string;
  /** What the main event carries when it is not the payment itself (e.g. the refund), built from the changed payment. */
  eventObject?: (payment: PaymentResource) => Record<string, unknown>;
  /** Claims (capturing, voiding) are not news to the merchant: no event, sequence unchanged. */
  silent?: boolean;
  /** Extra events recorded after the main one, in order (e.g. refund.succeeded). */
  extraEvents?: Array<{ type: string; object: Record<string, unknown> }>;
  details?: PaymentDetails;
}

/**
 * The only way a payment's status changes: checked against the state machine, guarded
 * by the row version (so a concurrent writer that slipped past a lock-free read loses
 * cleanly), and recorded with its event in the same transaction.
 */
export async function applyTransition(
  trx: Trx,
  ctx: AppContext,
  row: PaymentsTable,
  to: PaymentStatus,
  patch: Partial<PaymentsTable>,
  opts: TransitionOptions = {},
): Promise<PaymentsTable> {
  const from = row.status as PaymentStatus;
  if (!canTransition(from, to)) {
    throw new DomainError(409, 'invalid_state_transition', `a payment in status "${from}" cannot become "${to}"`, undefined, { payment_status: from });
  }
  const now = ctx.clock.now();
  const details = opts.details ?? detailsOf(row);
  const next: PaymentsTable = {
    ...row,
    ...patch,
    ...(opts.details ? { details: storedJson(ctx.database.dialect, 'payments', 'details', JSON.stringify(opts.details)) } : {}),
    status: to,
    sequence: opts.silent ? row.sequence : row.sequence + 1,
    version: row.version + 1,
    updated_at: now,
  };
  const { id: _id, merchant_id: _m, channel_id: _c, created_at: _cr, ...changes } = next;
  const res = await trx.updateTable('payments').set(changes).where('id', '=', row.id).where('version', '=', row.version).executeTakeFirst();
  if (Number(res.numUpdatedRows) !== 1) {
    throw new DomainError(409, 'concurrent_modification', 'the payment was changed by another request at the same time; fetch it and retry if still needed');
  }
  await releaseInstalment(trx, row, to, details);
  if (opts.silent) return next;
  const resource = paymentResource(ctx.vault, next, await paymentChannel(trx, row.channel_id), details);
  await appendEvent(trx, ctx, next, opts.eventType ?? eventTypeFor(to), opts.eventObject?.(resource) ?? resource, now);
  for (const extra of opts.extraEvents ?? []) await appendEvent(trx, ctx, next, extra.type, extra.object, now);
  return next;
}

/**
 * An event about a payment whose status does not change (e.g. refund.failed): the
 * sequence still moves on, under the same version guard as a transition.
 */
export async function appendPaymentEvent(trx: Trx, ctx: AppContext, row: PaymentsTable, type: string, object: (payment: PaymentResource) => Record<string, unknown>): Promise<PaymentsTable> {
  const now = ctx.clock.now();
  const next: PaymentsTable = { ...row, sequence: row.sequence + 1, version: row.version + 1, updated_at: now };
  const res = await trx
    .updateTable('payments')
    .set({ sequence: next.sequence, version: next.version, updated_at: now })
    .where('id', '=', row.id)
    .where('version', '=', row.version)
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) !== 1) {
    throw new DomainError(409, 'concurrent_modification', 'the payment was changed by another request at the same time; fetch it and retry if still needed');
  }
  const resource = paymentResource(ctx.vault, next, await paymentChannel(trx, row.channel_id), detailsOf(next));
  await appendEvent(trx, ctx, next, type, object(resource), now);
  return next;
}

/**
 * A payment's sealed card (number and CVC) serves its hosted page only: nothing after it
 * (capture, void, refund, a merchant-initiated payment) needs more than BIN, last 4 and the
 * network reference, and a card kept for later is copied into payment_methods at approval. So
 * it is erased when the page ends: on approval, decline, failure, cancel and expiry alike.
 */
export async function eraseCard(trx: Trx, ctx: AppContext, paymentId: string): Promise<void> {
  await trx.deleteFrom('card_secrets').where('payment_id', '=', paymentId).execute();
  ctx.database.shredErased();
}

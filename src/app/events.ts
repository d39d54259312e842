import type { PaymentsTable } from '../adapters/storage/schema.js';
import type { Trx } from '../adapters/storage/database.js';
import type { AppContext } from './context.js';
import type { PaymentResource } from './payment-resource.js';

/**
 * The outbox write: the event row goes into the same transaction as the state change
 * it reports, so a committed change always has its event and a rolled-back one never
 * does. The body is serialised here once and delivered byte for byte.
 */
export function eventRow(ctx: AppContext, payment: Pick<PaymentsTable, 'merchant_id' | 'channel_id' | 'id' | 'sequence'>, type: string, object: unknown, now: number) {
  const id = ctx.newId('event');
  const created_at = new Date(now).toISOString();
  const body = JSON.stringify({ id, object: 'event', type, created_at, sequence: payment.sequence, data: { object } });
  return {
    id,
    merchant_id: payment.merchant_id,
    channel_id: payment.channel_id,
    payment_id: payment.id,
    type,
    sequence: payment.sequence,
    created_at: now,
    body,
  };
}

export async function appendEvent(trx: Trx, ctx: AppContext, payment: PaymentsTable, type: string, object: PaymentResource | Record<string, unknown>, now: number): Promise<string> {
  const row = eventRow(ctx, payment, type, object, now);
  await trx.insertInto('events').values(row).execute();
  return row.id;
}

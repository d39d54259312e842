import type { PaymentsTable } from '../adapters/storage/schema.js';
import type { Trx } from '../adapters/storage/database.js';
import { insertRow } from '../adapters/storage/compiled.js';
import { unpackJson } from '../adapters/storage/packed-json.js';
import type { AppContext } from './context.js';
import { type FixedPaymentFields, type PaymentDetails, type PaymentResource, fixedPaymentFields } from './payment-resource.js';

type EventSubject = Pick<PaymentsTable, 'merchant_id' | 'channel_id' | 'id' | 'sequence'>;

/** Placeholders that keep each fixed field's place in the stored JSON, so restoring it keeps the key order. */
const LEFT_OUT: Record<keyof FixedPaymentFields, null> = {
  capture_delay: null,
  payment_data: null,
  customer: null,
  billing_details: null,
  shipping_details: null,
  metadata: null,
  return_url: null,
};

type Slimmable = { object?: unknown; payment?: { object?: unknown } };

/**
 * A payment (or a refund's payment) without the fields it shares with the payment's
 * details, which never change: stored events take them from the payment row when read.
 * Null when the object holds no payment (compliance events are stored whole).
 */
function slim(object: unknown): unknown {
  const o = object as Slimmable;
  if (o?.object === 'payment') return { ...o, ...LEFT_OUT, redirect_url: null };
  if (o?.object === 'refund' && o.payment?.object === 'payment') return { ...o, payment: { ...o.payment, ...LEFT_OUT, redirect_url: null } };
  return null;
}

/**
 * The outbox write: the event row goes into the same transaction as the state change
 * it reports, so a committed change always has its event and a rolled-back one never
 * does. A payment's event is stored slim (see `slim`); `eventBody` gives the whole
 * event back, byte for byte the same every time it is read, delivered or redelivered.
 * Events never carry the hosted-page URL: it is a bearer credential for the page.
 */
export function eventRow(ctx: AppContext, payment: EventSubject, type: string, object: unknown, now: number) {
  const id = ctx.newId('event');
  const created_at = new Date(now).toISOString();
  const slimmed = slim(object);
  const body = JSON.stringify({ id, object: 'event', type, created_at, sequence: payment.sequence, data: { object: slimmed ?? object } });
  return {
    id,
    merchant_id: payment.merchant_id,
    channel_id: payment.channel_id,
    payment_id: payment.id,
    type,
    sequence: payment.sequence,
    created_at: now,
    body,
    body_slim: slimmed === null ? 0 : 1,
  };
}

/** What reading an event needs: its row and, for slim bodies, its payment's details (a join on payment_id). */
export interface StoredEvent {
  body: string | Uint8Array;
  body_slim: number;
  payment_details: string | Uint8Array | null;
}

/** The whole event as delivered and listed. */
export function eventBody(row: StoredEvent): string {
  const body = unpackJson(row.body);
  if (row.body_slim !== 1) return body;
  if (row.payment_details === null) throw new Error('a slim event body needs its payment, which is never deleted');
  const event = JSON.parse(body) as { data: { object: Slimmable & Record<string, unknown> } };
  const object = event.data.object;
  const payment = (object.object === 'payment' ? object : object.payment) as Record<string, unknown>;
  // Assigning existing keys keeps their places: the JSON comes out as it was first built.
  Object.assign(payment, fixedPaymentFields(JSON.parse(unpackJson(row.payment_details)) as PaymentDetails));
  return JSON.stringify(event);
}

export async function appendEvent(trx: Trx, ctx: AppContext, payment: PaymentsTable, type: string, object: PaymentResource | Record<string, unknown>, now: number): Promise<string> {
  const row = eventRow(ctx, payment, type, object, now);
  await insertRow(trx, 'events', row);
  return row.id;
}

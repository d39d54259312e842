import type { PaymentsTable } from '../adapters/storage/schema.js';
import type { Trx } from '../adapters/storage/database.js';
import { insertRow } from '../adapters/storage/compiled.js';
import { unpackJson } from '../adapters/storage/packed-json.js';
import type { AppContext } from './context.js';
import { dispatchedOnWrite } from './event-interest.js';
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

type Slimmable = { id?: unknown; object?: unknown; payment?: { id?: unknown; object?: unknown } };

/**
 * A payment (or a refund's payment) without the fields it shares with the payment's
 * details, which never change, and without its id: stored events take them from the
 * payment row and the event's own columns when read. Null when the object holds no
 * payment (compliance events are stored whole).
 */
function slim(object: unknown): unknown {
  const o = object as Slimmable;
  if (o?.object === 'payment') return { ...o, id: null, ...LEFT_OUT, redirect_url: null };
  if (o?.object === 'refund' && o.payment?.object === 'payment') return { ...o, payment: { ...o.payment, id: null, ...LEFT_OUT, redirect_url: null } };
  return null;
}

/**
 * How `events.body` is stored (`events.body_slim`). Whole: the event as delivered (events
 * without a payment). Slim: the event with its payment's fixed fields left out (payment
 * events written before the object form). Object: only `data.object`, slimmed and
 * without the payment's id; the envelope (id, type, created_at, sequence) is rebuilt
 * from the event's columns, so the two ids and the timestamp are not stored twice
 * (docs/decisions/0008-compact-values-on-sqlite.md).
 */
export const BODY_FORM = { whole: 0, slim: 1, object: 2 } as const;

/**
 * The outbox write: the event row goes into the same transaction as the state change
 * it reports, so a committed change always has its event and a rolled-back one never
 * does. A payment's event is stored slim (see `slim`); `eventBody` gives the whole
 * event back, byte for byte the same every time it is read, delivered or redelivered.
 * Events never carry the hosted-page URL: it is a bearer credential for the page.
 * An event that no endpoint and no e-mail rule can take is written already dispatched
 * (src/app/event-interest.ts): the fan-out would only read it and mark it so.
 */
export function eventRow(ctx: AppContext, payment: EventSubject, type: string, object: unknown, now: number) {
  const id = ctx.newId('event');
  const slimmed = slim(object);
  const body = slimmed === null ? envelope(id, type, now, payment.sequence, JSON.stringify(object)) : JSON.stringify(slimmed);
  const dispatched = dispatchedOnWrite(ctx, { merchant_id: payment.merchant_id, channel_id: payment.channel_id, type, created_at: now });
  return {
    id,
    merchant_id: payment.merchant_id,
    channel_id: payment.channel_id,
    payment_id: payment.id,
    type,
    sequence: payment.sequence,
    created_at: now,
    body,
    body_slim: slimmed === null ? BODY_FORM.whole : BODY_FORM.object,
    dispatched,
  };
}

/** The event around its object, keys in the order events have always had. */
function envelope(id: string, type: string, createdAt: number, sequence: number, object: string): string {
  return `{"id":${JSON.stringify(id)},"object":"event","type":${JSON.stringify(type)},"created_at":"${new Date(createdAt).toISOString()}","sequence":${sequence},"data":{"object":${object}}}`;
}

/**
 * What reading an event needs: its row and, for slim bodies, its payment's details (a
 * join on payment_id). `EVENT_READ_COLUMNS` selects them.
 */
export interface StoredEvent {
  id: string;
  type: string;
  sequence: number;
  created_at: number;
  payment_id: string | null;
  body: string | Uint8Array;
  body_slim: number;
  payment_details: string | Uint8Array | null;
}

export const EVENT_READ_COLUMNS = [
  'events.id',
  'events.type',
  'events.sequence',
  'events.created_at',
  'events.payment_id',
  'events.body',
  'events.body_slim',
  'payments.details as payment_details',
] as const;

/** The whole event as delivered and listed: the same bytes every time it is read. */
export function eventBody(row: StoredEvent): string {
  const body = unpackJson(row.body);
  if (row.body_slim === BODY_FORM.whole) return body;
  if (row.payment_details === null || row.payment_id === null) throw new Error('a slim event body needs its payment, which is never deleted');
  const stored = JSON.parse(body) as Record<string, unknown>;
  const object = (row.body_slim === BODY_FORM.object ? stored : (stored as { data: { object: Record<string, unknown> } }).data.object) as Slimmable & Record<string, unknown>;
  const payment = (object.object === 'payment' ? object : object.payment) as Record<string, unknown>;
  // Assigning existing keys keeps their places: the JSON comes out as it was first built.
  Object.assign(payment, fixedPaymentFields(JSON.parse(unpackJson(row.payment_details)) as PaymentDetails));
  if (row.body_slim !== BODY_FORM.object) return JSON.stringify(stored);
  payment.id = row.payment_id;
  return envelope(row.id, row.type, row.created_at, row.sequence, JSON.stringify(object));
}

export async function appendEvent(trx: Trx, ctx: AppContext, payment: PaymentsTable, type: string, object: PaymentResource | Record<string, unknown>, now: number): Promise<string> {
  const row = eventRow(ctx, payment, type, object, now);
  await insertRow(trx, 'events', row);
  return row.id;
}

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

/**
 * The event around its object, keys in the order events have always had. `livemode` is given
 * when the event is read, never stored (see `eventBody`).
 */
function envelope(id: string, type: string, createdAt: number, sequence: number, object: string, livemode?: boolean): string {
  const mode = livemode === undefined ? '' : `"livemode":${livemode},`;
  return `{"id":${JSON.stringify(id)},"object":"event",${mode}"type":${JSON.stringify(type)},"created_at":"${new Date(createdAt).toISOString()}","sequence":${sequence},"data":{"object":${object}}}`;
}

/** A stored envelope with `livemode` after `object`, where the envelopes built above have it. */
function withLivemode(event: Record<string, unknown>, livemode: boolean): string {
  const { id, object, ...rest } = event;
  return JSON.stringify({ id, object, livemode, ...rest });
}

/**
 * What reading an event needs: its row, its channel's mode and, for slim bodies, its
 * payment's details (joins on channel_id and payment_id). `EVENT_READ_COLUMNS` selects them.
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
  /** The mode of the event's channel: its `livemode`. */
  channel_mode: 'sandbox' | 'live' | null;
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
  'channels.mode as channel_mode',
] as const;

/**
 * The whole event as delivered and listed: the same bytes every time it is read. Its
 * `livemode` is its channel's mode (a channel's mode is fixed once it has a payment, and a
 * compliance event says the mode of the channel it rides), added here rather than stored, so
 * events recorded before it carry it too.
 */
export function eventBody(row: StoredEvent): string {
  const body = unpackJson(row.body);
  const livemode = row.channel_mode === 'live';
  if (row.body_slim === BODY_FORM.whole) return withLivemode(JSON.parse(body) as Record<string, unknown>, livemode);
  if (row.payment_details === null || row.payment_id === null) throw new Error('a slim event body needs its payment, which is never deleted');
  const stored = JSON.parse(body) as Record<string, unknown>;
  const object = (row.body_slim === BODY_FORM.object ? stored : (stored as { data: { object: Record<string, unknown> } }).data.object) as Slimmable & Record<string, unknown>;
  const payment = (object.object === 'payment' ? object : object.payment) as Record<string, unknown>;
  // Assigning existing keys keeps their places: the JSON comes out as it was first built.
  Object.assign(payment, fixedPaymentFields(JSON.parse(unpackJson(row.payment_details)) as PaymentDetails));
  if (row.body_slim !== BODY_FORM.object) return withLivemode(stored, livemode);
  payment.id = row.payment_id;
  return envelope(row.id, row.type, row.created_at, row.sequence, JSON.stringify(object), livemode);
}

export async function appendEvent(trx: Trx, ctx: AppContext, payment: PaymentsTable, type: string, object: PaymentResource | Record<string, unknown>, now: number): Promise<string> {
  const row = eventRow(ctx, payment, type, object, now);
  await insertRow(trx, 'events', row);
  return row.id;
}

import { type Static, Type } from '@sinclair/typebox';
import { PAYMENT_STATUSES, type PaymentStatus } from '../../domain/payment-state.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../../app/payment-list.js';
import { MinorUnits, Nullable, StrictObject, Timestamp } from './common.js';
import { Payment } from './payment-resource.js';

export const CaptureRequest = StrictObject(
  {
    amount: Type.Optional(
      MinorUnits('Minor units to capture, at most the authorised amount; omit to capture all of it. A payment is captured once: a partial capture releases the rest of the authorisation.'),
    ),
  },
  { description: 'May be empty or omitted.' },
);
export type CaptureRequestBody = Static<typeof CaptureRequest>;

export const VoidRequest = StrictObject({}, { description: 'Empty; may be omitted.' });

export const RefundRequest = StrictObject(
  {
    amount: Type.Optional(MinorUnits('Minor units to refund, at most what is captured and not yet refunded; omit to refund all of that.')),
    reason: Type.Optional(Type.String({ minLength: 1, maxLength: 500, description: 'Your note on why, e.g. "returned item"; shown back on the refund.' })),
  },
  { description: 'May be empty or omitted.' },
);
export type RefundRequestBody = Static<typeof RefundRequest>;

export const Refund = Type.Object(
  {
    id: Type.String({ description: 're_…' }),
    object: Type.Literal('refund'),
    payment_id: Type.String(),
    livemode: Type.Boolean({ description: "Its payment's livemode: true for a refund of a payment on a live channel, false on a sandbox one." }),
    amount: Type.Integer({ description: 'Refunded amount in minor units of currency.' }),
    currency: Type.String({ description: "ISO 4217 code, the payment's." }),
    status: Type.Union([Type.Literal('pending'), Type.Literal('succeeded'), Type.Literal('failed')], {
      description: 'pending while the acquirer has not answered (its amount is held), then succeeded or failed.',
    }),
    reason: Nullable(Type.String()),
    failure_code: Nullable(Type.String()),
    failure_message: Nullable(Type.String()),
    created_at: Timestamp,
    updated_at: Timestamp,
  },
  { $id: 'Refund' },
);

export const RefundList = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(Refund),
  has_more: Type.Boolean(),
  next_starting_after: Nullable(Type.String({ description: 'Pass as starting_after for the next page; null on the last page.' })),
});

export const RefundListQuery = StrictObject({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, description: `Page size, 1 to ${MAX_PAGE_SIZE}; default ${MAX_PAGE_SIZE}.` })),
  starting_after: Type.Optional(Type.String({ maxLength: 64, description: 'A refund id of this payment: the page of later refunds after it (use next_starting_after of the previous page).' })),
});

const Status = Type.Unsafe<PaymentStatus>({ type: 'string', enum: [...PAYMENT_STATUSES], description: 'Only payments in this status.' });

export const PaymentListQuery = StrictObject({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_PAGE_SIZE, description: `Page size, 1 to ${MAX_PAGE_SIZE}; default ${DEFAULT_PAGE_SIZE}.` })),
  starting_after: Type.Optional(Type.String({ maxLength: 64, description: 'A payment id: the page after it (use next_starting_after of the previous page).' })),
  ending_before: Type.Optional(Type.String({ maxLength: 64, description: 'A payment id: the page of newer payments just before it, still newest first (not with starting_after).' })),
  status: Type.Optional(Status),
  channel: Type.Optional(Type.String({ maxLength: 64, description: 'Channel reference.' })),
  reference: Type.Optional(Type.String({ maxLength: 128, description: 'Your order reference, exact match.' })),
  customer_reference: Type.Optional(Type.String({ maxLength: 128, description: 'customer.reference, exact match.' })),
  created_gte: Type.Optional(Type.String({ format: 'date-time', description: 'Created at or after this ISO 8601 time (with Z or an offset).' })),
  created_lte: Type.Optional(Type.String({ format: 'date-time', description: 'Created at or before this ISO 8601 time, the whole of its last unit included: 23:59:59Z takes in 23:59:59.999Z.' })),
});
export type PaymentListQueryString = Static<typeof PaymentListQuery>;

const TimelineEntry = Type.Object({ id: Type.String({ description: 'evt_…' }), type: Type.String(), sequence: Type.Integer(), created_at: Timestamp });

export const PaymentPage = Type.Object({
  object: Type.Literal('list'),
  data: Type.Array(Type.Composite([Payment, Type.Object({ timeline: Type.Array(TimelineEntry, { description: 'The events of this payment, oldest first.' }) })])),
  has_more: Type.Boolean(),
  next_starting_after: Nullable(Type.String({ description: 'Pass as starting_after for the next page; null on the last page.' })),
});

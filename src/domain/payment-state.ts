/**
 * The one state machine every payment follows. Use cases ask it before they write,
 * so an illegal move is refused the same way wherever it is attempted.
 *
 * `capturing` and `voiding` are claims: a payment enters one (in its own committed
 * transaction) before the acquirer is called, so a second capture, a void racing a
 * capture or a second scheduler finds the claim and is refused instead of moving
 * money twice. A claim ends in the outcome, or back in `authorised` when the acquirer
 * refuses.
 *
 * One capture per payment: a partial capture releases the remainder of the
 * authorisation (`partially_captured` is final for capturing), as most acquirers do.
 */
export const PAYMENT_STATUSES = [
  'requires_action',
  'authorised',
  'capturing',
  'voiding',
  'partially_captured',
  'captured',
  'partially_refunded',
  'refunded',
  'declined',
  'failed',
  'expired',
  'cancelled',
  'voided',
] as const;
export type PaymentStatus = (typeof PAYMENT_STATUSES)[number];

const TRANSITIONS: Record<PaymentStatus, readonly PaymentStatus[]> = {
  requires_action: ['authorised', 'captured', 'declined', 'failed', 'expired', 'cancelled'],
  // Straight to captured only when the capture happened with the authorisation itself.
  authorised: ['capturing', 'voiding', 'captured', 'expired', 'failed'],
  capturing: ['captured', 'partially_captured', 'authorised'],
  voiding: ['voided', 'authorised'],
  partially_captured: ['partially_refunded', 'refunded'],
  captured: ['partially_refunded', 'refunded'],
  partially_refunded: ['partially_refunded', 'refunded'],
  refunded: [],
  declined: [],
  failed: [],
  expired: [],
  cancelled: [],
  voided: [],
};

export function canTransition(from: PaymentStatus, to: PaymentStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/**
 * How long a claim (a payment in `capturing`/`voiding`, a `pending` refund) may wait for
 * the acquirer's answer before the scheduler takes its holder for dead and asks the
 * acquirer again. Connectors send our payment or refund id as the acquirer's
 * idempotency reference, so asking twice never moves money twice.
 */
export const CLAIM_LEASE_MS = 2 * 60_000;

/**
 * How late the scheduler may still make a delayed capture after the authorisation's
 * validity has ended. A capture due exactly at the end of the validity (a delay as long as
 * the validity) is always a few seconds late, as is one caught in a backlog or a restart;
 * a scheduler that was stopped for longer would take money on a lapsed authorisation, so
 * past this the payment expires instead (docs/decisions/0023-delayed-capture-within-validity.md).
 */
export const LATE_CAPTURE_GRACE_MS = 15 * 60_000;

/** Claims held while the acquirer is being asked; the scheduler takes over those whose holder died. */
export const CLAIM_STATUSES = ['capturing', 'voiding'] as const satisfies readonly PaymentStatus[];

/** Only an authorisation that nobody is capturing or voiding can be captured or voided. */
export function isCapturable(status: PaymentStatus): boolean {
  return status === 'authorised';
}

export function isVoidable(status: PaymentStatus): boolean {
  return status === 'authorised';
}

/** Statuses in which money has been taken and may be given back. */
export function isRefundable(status: PaymentStatus): boolean {
  return status === 'captured' || status === 'partially_captured' || status === 'partially_refunded';
}

/** Where a successful capture of `amount` out of `authorised` leads. */
export function capturedStatus(amount: number, authorised: number): 'captured' | 'partially_captured' {
  return amount === authorised ? 'captured' : 'partially_captured';
}

/** Where a successful refund leaves a payment, given its totals after the refund. */
export function refundedStatus(refunded: number, captured: number): 'refunded' | 'partially_refunded' {
  return refunded >= captured ? 'refunded' : 'partially_refunded';
}

/**
 * The event type a merchant receives when a payment enters `status`. Claims are not
 * news (they emit nothing); refunds are reported by `refund.*` events carrying the refund.
 */
export function eventTypeFor(status: PaymentStatus): string {
  switch (status) {
    case 'requires_action':
      return 'payment.created';
    case 'authorised':
      return 'payment.authorised';
    case 'capturing':
    case 'voiding':
      throw new Error(`"${status}" is a claim and has no event of its own`);
    case 'partially_captured':
      return 'payment.partially_captured';
    case 'captured':
      return 'payment.captured';
    case 'partially_refunded':
    case 'refunded':
      return 'refund.succeeded';
    case 'declined':
      return 'payment.declined';
    case 'failed':
      return 'payment.failed';
    case 'expired':
      return 'payment.expired';
    case 'cancelled':
      return 'payment.cancelled';
    case 'voided':
      return 'payment.voided';
  }
}

/** Payment and refund event types; `EVENT_TYPES` in event-types.ts adds the merchant-level ones. */
export const PAYMENT_EVENT_TYPES = [
  'payment.created',
  'payment.authorised',
  'payment.captured',
  'payment.partially_captured',
  'payment.capture_failed',
  'payment.declined',
  'payment.failed',
  'payment.expired',
  'payment.cancelled',
  'payment.voided',
  'payment.void_failed',
  'refund.succeeded',
  'refund.failed',
] as const;

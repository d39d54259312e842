/**
 * The one state machine every payment follows. Use cases ask it before they write,
 * so an illegal move is refused the same way wherever it is attempted.
 */
export const PAYMENT_STATUSES = [
  'requires_action',
  'authorised',
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
  authorised: ['captured', 'partially_captured', 'voided', 'expired', 'failed'],
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

export function isFinal(status: PaymentStatus): boolean {
  return TRANSITIONS[status].length === 0;
}

/** Statuses in which money has been taken and may be given back. */
export function isRefundable(status: PaymentStatus): boolean {
  return status === 'captured' || status === 'partially_captured' || status === 'partially_refunded';
}

/** The event type a merchant receives when a payment enters `status`. */
export function eventTypeFor(status: PaymentStatus): string {
  switch (status) {
    case 'requires_action':
      return 'payment.created';
    case 'authorised':
      return 'payment.authorised';
    case 'partially_captured':
      return 'payment.partially_captured';
    case 'captured':
      return 'payment.captured';
    case 'partially_refunded':
    case 'refunded':
      return 'payment.refunded';
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

export const EVENT_TYPES = [
  'payment.created',
  'payment.authorised',
  'payment.captured',
  'payment.partially_captured',
  'payment.declined',
  'payment.failed',
  'payment.expired',
  'payment.cancelled',
  'payment.voided',
  'payment.refunded',
  'refund.succeeded',
  'refund.failed',
] as const;

import type { DeliveriesTable } from '../adapters/storage/schema.js';

export type NewDelivery = Pick<DeliveriesTable, 'id' | 'event_id' | 'merchant_id' | 'kind' | 'target'> & Partial<Pick<DeliveriesTable, 'endpoint_id' | 'recipient' | 'template'>>;

/** A delivery due at once with nothing tried yet, as the fan-out and a redelivery queue it. */
export function pendingDelivery(d: NewDelivery, now: number, retryUntil: number): DeliveriesTable {
  return {
    endpoint_id: null,
    recipient: null,
    template: null,
    status: 'pending',
    attempts: 0,
    failures: 0,
    next_attempt_at: now,
    retry_until: retryUntil,
    locked_until: null,
    lease_token: null,
    last_status_code: null,
    last_error: null,
    created_at: now,
    updated_at: now,
    completed_at: null,
    ...d,
  };
}

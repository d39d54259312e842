import { COMPLIANCE_EVENT_TYPES } from './compliance.js';
import { PAYMENT_EVENT_TYPES } from './payment-state.js';

/** Every event type a merchant can subscribe to, filter on or be notified of. */
export const EVENT_TYPES = [...PAYMENT_EVENT_TYPES, ...COMPLIANCE_EVENT_TYPES] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export function isEventType(value: string): value is EventType {
  return (EVENT_TYPES as readonly string[]).includes(value);
}

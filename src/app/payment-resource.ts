import type { PaymentsTable } from '../adapters/storage/schema.js';
import type { PaymentData } from '../domain/payment-data.js';
import type { PaymentStatus } from '../domain/payment-state.js';
import type { InstalmentPlan } from './instalments.js';

/** Everything a payment keeps that has no column of its own, stored as one JSON text. */
export interface PaymentDetails {
  customer?: Record<string, unknown>;
  billing_details?: Record<string, unknown>;
  shipping_details?: Record<string, unknown>;
  metadata?: Record<string, string>;
  device_info?: Record<string, unknown>;
  payment_data: PaymentData;
  card_name?: { first_name?: string; middle_name?: string; last_name?: string };
  store_for_future_use: boolean;
  capture_delay?: string;
  return_url: string;
  decline_message?: string;
  retry_advice?: RetryAdvice;
  initial_network_reference?: string;
  /** An industry-practice MIT's agreement's initial reference, where it passed another one (initial_network_reference) on. */
  agreement_network_reference?: string;
  /** A resubmission's or delayed charge's chain start (industry-practice.ts): never shown, it bounds the next link's age. */
  industry_practice_since?: number;
  /** An instalment MIT's plan (instalments.ts): never shown, it is what the plan's count is kept under. */
  instalment_plan?: InstalmentPlan;
}

/**
 * The resource fields that come from details set when the payment is created and never
 * changed after. Events leave them out of their stored bodies and take them from the
 * payment when read (events.ts), so each event does not keep another copy of the
 * customer, addresses and metadata.
 */
export function fixedPaymentFields(details: PaymentDetails) {
  return {
    capture_delay: details.capture_delay ?? null,
    payment_data: details.payment_data,
    customer: details.customer ?? null,
    billing_details: details.billing_details ?? null,
    shipping_details: details.shipping_details ?? null,
    metadata: details.metadata ?? {},
    return_url: details.return_url,
  };
}

export type FixedPaymentFields = ReturnType<typeof fixedPaymentFields>;

export type RetryAdvice = 'do_not_retry' | 'retry_later' | 'retry_with_new_details';

const recentIso = new Map<number, string>();

/**
 * A resource shows several times, mostly the same few milliseconds (created, updated,
 * expires): the last few conversions are kept.
 */
export function iso(ms: number | null): string | null {
  if (ms === null) return null;
  let text = recentIso.get(ms);
  if (text === undefined) {
    if (recentIso.size >= 8) recentIso.clear();
    text = new Date(ms).toISOString();
    recentIso.set(ms, text);
  }
  return text;
}

/** The card fingerprint a merchant is shown: its own view of the one stored (Vault). */
export interface FingerprintView {
  shownFingerprint(merchantId: string, stored: string): string;
}

/**
 * The payment as merchants see it: in the API, in webhooks and in replays alike. It
 * shows BIN and last 4 at most, never anything that could rebuild the card number.
 */
/** `channel`: the payment's channel (its reference and mode). */
export function paymentResource(fingerprints: FingerprintView, row: PaymentsTable, channel: { reference: string; mode: 'sandbox' | 'live' }, details: PaymentDetails, redirectUrl?: string) {
  const status = row.status as PaymentStatus;
  const fixed = fixedPaymentFields(details);
  return {
    id: row.id,
    object: 'payment' as const,
    // Made on a live channel (decision 0028): what a sandbox key never sees.
    livemode: channel.mode === 'live',
    status,
    amount: row.amount,
    currency: row.currency,
    amount_captured: row.captured_amount,
    amount_refunded: row.refunded_amount,
    channel: channel.reference,
    reference: row.reference,
    capture: row.capture_mode,
    capture_delay: fixed.capture_delay,
    capture_at: iso(row.capture_at),
    payment_method: {
      type: 'card' as const,
      token: row.payment_method_id,
      card: {
        brand: row.card_brand,
        bin: row.card_bin,
        last4: row.card_last4,
        expiry_month: row.card_exp_month,
        expiry_year: row.card_exp_year,
        fingerprint: fingerprints.shownFingerprint(row.merchant_id, row.card_fingerprint),
        name: details.card_name ?? null,
      },
    },
    payment_data: fixed.payment_data,
    customer: fixed.customer,
    billing_details: fixed.billing_details,
    shipping_details: fixed.shipping_details,
    metadata: fixed.metadata,
    decline_code: row.decline_code,
    decline_message: details.decline_message ?? null,
    retry_advice: details.retry_advice ?? null,
    failure_message: row.failure_message,
    authorisation_code: row.authorisation_code,
    network_reference: row.network_reference,
    initial_network_reference: details.initial_network_reference ?? null,
    redirect_url: redirectUrl ?? null,
    return_url: fixed.return_url,
    sequence: row.sequence,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
    authorised_at: iso(row.authorised_at),
    expires_at: iso(row.expires_at),
  };
}

export type PaymentResource = ReturnType<typeof paymentResource>;

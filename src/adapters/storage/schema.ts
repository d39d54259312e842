import type { Generated } from 'kysely';

/**
 * Row shapes shared by SQLite and PostgreSQL. Portable types only: times are epoch
 * milliseconds (bigint), booleans are 0/1 integers, structured data is JSON text, so
 * one repository implementation serves both dialects.
 */
export interface MerchantsTable {
  id: string;
  name: string;
  created_at: number;
}

export interface ChannelsTable {
  id: string;
  merchant_id: string;
  reference: string;
  name: string;
  mode: 'sandbox' | 'live';
  currencies: string;
  return_urls: string;
  notify_emails: string;
  notify_events: string;
  customer_receipts: number;
  return_secret_ct: string;
  created_at: number;
  updated_at: number;
}

export interface SecretKeysTable {
  id: string;
  merchant_id: string;
  key_hash: string;
  last4: string;
  label: string | null;
  created_at: number;
  revoked_at: number | null;
}

export interface PaymentsTable {
  id: string;
  merchant_id: string;
  channel_id: string;
  status: string;
  amount: number;
  currency: string;
  captured_amount: number;
  refunded_amount: number;
  reference: string | null;
  customer_reference: string | null;
  payment_type: string;
  capture_mode: string;
  capture_delay_ms: number | null;
  capture_at: number | null;
  card_brand: string;
  card_bin: string;
  card_last4: string;
  card_exp_month: number;
  card_exp_year: number;
  card_fingerprint: string;
  payment_method_id: string | null;
  decline_code: string | null;
  failure_message: string | null;
  authorisation_code: string | null;
  network_reference: string | null;
  /** JSON: customer, billing/shipping details, metadata, device info, payment_data. */
  details: string;
  sequence: number;
  version: number;
  created_at: number;
  updated_at: number;
  authorised_at: number | null;
  expires_at: number | null;
}

/** Encrypted card data, apart from the payment so erasure is a plain update. */
export interface CardSecretsTable {
  payment_id: string;
  kek_id: string;
  wrapped_dek: string;
  pan_ct: string;
  cvc_ct: string | null;
}

export interface CheckoutSessionsTable {
  token_hash: string;
  payment_id: string;
  /** The page token sealed, so GET /payment/{id} can show redirect_url again. */
  token_ct: string;
  state: 'open' | 'processing' | 'done';
  challenge_attempts: number;
  created_at: number;
  expires_at: number;
}

export interface IdempotencyKeysTable {
  merchant_id: string;
  key: string;
  endpoint: string;
  request_hash: string;
  response_status: number;
  response_body: string;
  created_at: number;
  expires_at: number;
}

export interface EventsTable {
  id: string;
  merchant_id: string;
  channel_id: string;
  payment_id: string | null;
  type: string;
  sequence: number;
  created_at: number;
  /** The event exactly as delivered: serialised once, signed and sent as these bytes. */
  body: string;
  /** 0 until the dispatcher has fanned the event out to deliveries and e-mails. */
  dispatched: Generated<number>;
}

export interface Schema {
  merchants: MerchantsTable;
  channels: ChannelsTable;
  secret_keys: SecretKeysTable;
  payments: PaymentsTable;
  card_secrets: CardSecretsTable;
  checkout_sessions: CheckoutSessionsTable;
  idempotency_keys: IdempotencyKeysTable;
  events: EventsTable;
}

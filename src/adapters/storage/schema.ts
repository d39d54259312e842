import type { ColumnType, Generated } from 'kysely';

/**
 * Row shapes shared by SQLite and PostgreSQL. Portable types only: times are epoch
 * milliseconds (bigint), booleans are 0/1 integers, structured data is JSON text, so
 * one repository implementation serves both dialects.
 */
export interface MerchantsTable {
  id: string;
  name: string;
  created_at: number;
  /** Set while the operator has the merchant suspended (migration 019). */
  suspended_at: number | null;
  suspended_reason: string | null;
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
  /** Customers' contact for questions about a payment; null: none given. */
  support_email: string | null;
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
  /** Null: a key made before modes, acting on sandbox and live alike (decision 0028). */
  mode: 'sandbox' | 'live' | null;
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
  /**
   * PaymentDetails (customer, billing/shipping details, metadata, device info,
   * payment_data) as JSON text; SQLite stores it packed (packed-json.ts): read it with
   * `detailsOf` (app/payment-transitions.ts) or `unpackJson`.
   */
  details: string | Uint8Array;
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
  /** One session per payment; its page token is a MAC of this id (src/app/page-token.ts), never stored. */
  payment_id: string;
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
  /**
   * JSON text in the form `body_slim` names (BODY_FORM in app/events.ts): the whole event,
   * or a payment event without what reading takes from its columns and its payment. Read
   * it with `eventBody`; SQLite stores it packed (packed-json.ts).
   */
  body: ColumnType<string | Uint8Array, string, string>;
  body_slim: Generated<number>;
  /** 0 until the dispatcher has fanned the event out to deliveries and e-mails. */
  dispatched: Generated<number>;
}

/** One refund of a captured payment; `pending` rows reserve their amount until the acquirer answers. */
export interface RefundsTable {
  id: string;
  payment_id: string;
  merchant_id: string;
  amount: number;
  currency: string;
  status: 'pending' | 'succeeded' | 'failed';
  reason: string | null;
  failure_code: string | null;
  failure_message: string | null;
  created_at: number;
  updated_at: number;
}

/**
 * Money the acquirer may hold for a payment that does not account for it: an approval that
 * arrived after its payment had ended (voided, or refunded if it was captured at once), or an
 * authorisation whose answer never came (reversed). Written in the transaction that finds
 * it, and asked again by the scheduler until the acquirer confirms (src/app/releases.ts).
 */
export interface ReleasesTable {
  id: string;
  payment_id: string;
  merchant_id: string;
  action: 'void' | 'refund';
  reason: 'late_approval' | 'unconfirmed_authorisation' | 'lapsed_authorisation';
  amount: number;
  currency: string;
  network_reference: string | null;
  card_bin: string;
  card_last4: string;
  /** nothing_held: a reversal the acquirer refused because it holds nothing for the payment. */
  status: 'pending' | 'succeeded' | 'failed' | 'nothing_held';
  attempts: number;
  /** Also the claim's lease: an attempt pushes it past the acquirer call. */
  next_attempt_at: number;
  last_error: string | null;
  created_at: number;
  updated_at: number;
}

/** A merchant's callback URL; secrets are vault-sealed, the previous one kept for the rotation overlap. */
export interface WebhookEndpointsTable {
  id: string;
  merchant_id: string;
  url: string;
  description: string | null;
  /** JSON array of event types, or ["*"]. */
  events: string;
  /** Only this channel's events when set. */
  channel_id: string | null;
  /** Only this mode's events (the registering key's, decision 0032); null for both (registered by a key made before modes). */
  mode: 'sandbox' | 'live' | null;
  status: 'enabled' | 'disabled';
  disabled_reason: string | null;
  secret_ct: string;
  previous_secret_ct: string | null;
  previous_secret_expires_at: number | null;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
}

/** One event on its way to one target: a webhook endpoint or one e-mail address. */
export interface DeliveriesTable {
  id: string;
  event_id: string;
  merchant_id: string;
  kind: 'webhook' | 'email';
  /** Endpoint id, or `<template>:<address>` for e-mail; unique per event. */
  target: string;
  endpoint_id: string | null;
  recipient: string | null;
  template: 'notification' | 'receipt' | 'compliance' | null;
  status: 'pending' | 'succeeded' | 'failed' | 'cancelled';
  attempts: number;
  /** Consecutive failures since the delivery was (re)scheduled; drives the backoff. */
  failures: number;
  next_attempt_at: number;
  retry_until: number;
  /** Lease: a claim expires at this time, so a crashed worker's claim is taken over. */
  locked_until: number | null;
  lease_token: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: number;
  updated_at: number;
  completed_at: number | null;
}

export interface DeliveryAttemptsTable {
  delivery_id: string;
  attempt: number;
  event_id: string;
  started_at: number;
  duration_ms: number;
  status_code: number | null;
  error: string | null;
  response_body: string | null;
  succeeded: number;
}

/** A card stored for later use (`pm_…`): one merchant's, under one customer reference. Never a CVC. */
export interface PaymentMethodsTable {
  id: string;
  merchant_id: string;
  customer_reference: string;
  /** Keyed hash of the PAN (Vault.fingerprint): the same card stored again finds this row. */
  fingerprint: string;
  brand: string;
  bin: string;
  last4: string;
  exp_month: number;
  exp_year: number;
  /** The sealed PAN (envelope under this row's id); all three are null once the card is deleted. */
  kek_id: string | null;
  wrapped_dek: string | null;
  pan_ct: string | null;
  initial_payment_id: string;
  initial_network_reference: string | null;
  created_at: number;
  updated_at: number;
  deleted_at: number | null;
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
  payment_methods: PaymentMethodsTable;
  webhook_endpoints: WebhookEndpointsTable;
  deliveries: DeliveriesTable;
  delivery_attempts: DeliveryAttemptsTable;
  refunds: RefundsTable;
  releases: ReleasesTable;
  instalment_plans: InstalmentPlansTable;
  mit_declines: MitDeclinesTable;
  compliance_profiles: ComplianceProfilesTable;
  compliance_documents: ComplianceDocumentsTable;
  audit_log: AuditLogTable;
  config_versions: ConfigVersionsTable;
  vault_keys: VaultKeysTable;
  hmac_key_check: HmacKeyCheckTable;
}

/**
 * An instalment plan's payments so far (src/app/instalments.ts): one row per instalment-initial
 * payment, made by its first instalment-subsequent MIT (migration 025).
 */
export interface InstalmentPlansTable {
  /** The instalment-initial payment that agreed the plan. */
  agreement_payment_id: string;
  /** Its payment_data.instalments: the plan's length, the initial payment included. */
  allowed: number;
  /** The initial payment and every instalment MIT approved or still under way. */
  taken: number;
}

/** An issuer's decline of a merchant-initiated payment, counted against the card's retries (src/app/mit-retries.ts, migration 025). */
export interface MitDeclinesTable {
  payment_id: string;
  merchant_id: string;
  card_fingerprint: string;
  declined_at: number;
  /** 1 when the decline was advised do_not_retry: no MIT on the card follows it. */
  do_not_retry: number;
}

/** The one HMAC_KEY the database is used with, as a value derived from it (migration 016). */
export interface HmacKeyCheckTable {
  /** Always 1: one row. */
  id: number;
  check_value: string;
  created_at: number;
}

/** A key id data may be sealed under, with a value sealed by its key to check the configured bytes against. */
export interface VaultKeysTable {
  kek_id: string;
  /** Null for an id found in the data by migration 014 until a gateway with its key boots. */
  check_ct: string | null;
  created_at: number;
}

/** One row (id 1): moves with every change to merchants, channels and secret keys (migration 007). */
export interface ConfigVersionsTable {
  id: number;
  version: number;
}

/** One row per merchant: declared volume, the current approval and what was already notified. */
export interface ComplianceProfilesTable {
  merchant_id: string;
  declared_transactions: number | null;
  declared_at: number | null;
  approved_at: number | null;
  valid_until: number | null;
  approved_basis: 'saq' | 'aoc' | null;
  aoc_required_since: number | null;
  counted_transactions: number | null;
  counted_at: number | null;
  last_review_outcome: 'approved' | 'rejected' | null;
  last_review_reason: string | null;
  last_reviewed_at: number | null;
  last_reviewed_by: string | null;
  /** The valid_until the expiry reminders were sent for, and the fewest days-before already sent. */
  reminded_for: number | null;
  reminded_days: number | null;
  expiry_notified_for: number | null;
  updated_at: number;
}

/** PDF sealed like card data (per-record data key wrapped by the KEK); the digest is of the plaintext. */
export interface ComplianceDocumentsTable {
  id: string;
  merchant_id: string;
  type: 'asv_scan' | 'saq' | 'aoc';
  document_date: string;
  filename: string;
  size_bytes: number;
  sha256: string;
  kek_id: string;
  wrapped_dek: string;
  content_ct: string;
  status: 'pending' | 'approved' | 'rejected' | 'superseded';
  uploaded_at: number;
  reviewed_at: number | null;
  review_reason: string | null;
}

/** Who did what, when, from where, with what outcome. Append-only. */
export interface AuditLogTable {
  id: string;
  at: number;
  actor: string;
  source: string;
  action: string;
  merchant_id: string | null;
  target: string | null;
  outcome: 'success' | 'refused' | 'failed';
  code: string | null;
  detail: string | null;
}

import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('merchants')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('channels')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('merchant_id', 'text', (c) => c.notNull().references('merchants.id'))
    .addColumn('reference', 'text', (c) => c.notNull().unique())
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('mode', 'text', (c) => c.notNull())
    .addColumn('currencies', 'text', (c) => c.notNull())
    .addColumn('return_urls', 'text', (c) => c.notNull())
    .addColumn('notify_emails', 'text', (c) => c.notNull())
    .addColumn('notify_events', 'text', (c) => c.notNull())
    .addColumn('customer_receipts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('return_secret_ct', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('channels_merchant').on('channels').column('merchant_id').execute();

  await db.schema
    .createTable('secret_keys')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('merchant_id', 'text', (c) => c.notNull().references('merchants.id'))
    .addColumn('key_hash', 'text', (c) => c.notNull().unique())
    .addColumn('last4', 'text', (c) => c.notNull())
    .addColumn('label', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('revoked_at', 'bigint')
    .execute();
  await db.schema.createIndex('secret_keys_merchant').on('secret_keys').column('merchant_id').execute();

  await db.schema
    .createTable('payments')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('merchant_id', 'text', (c) => c.notNull())
    .addColumn('channel_id', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('currency', 'text', (c) => c.notNull())
    .addColumn('captured_amount', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('refunded_amount', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('reference', 'text')
    .addColumn('customer_reference', 'text')
    .addColumn('payment_type', 'text', (c) => c.notNull())
    .addColumn('capture_mode', 'text', (c) => c.notNull())
    .addColumn('capture_delay_ms', 'bigint')
    .addColumn('capture_at', 'bigint')
    .addColumn('card_brand', 'text', (c) => c.notNull())
    .addColumn('card_bin', 'text', (c) => c.notNull())
    .addColumn('card_last4', 'text', (c) => c.notNull())
    .addColumn('card_exp_month', 'integer', (c) => c.notNull())
    .addColumn('card_exp_year', 'integer', (c) => c.notNull())
    .addColumn('card_fingerprint', 'text', (c) => c.notNull())
    .addColumn('payment_method_id', 'text')
    .addColumn('decline_code', 'text')
    .addColumn('failure_message', 'text')
    .addColumn('authorisation_code', 'text')
    .addColumn('network_reference', 'text')
    .addColumn('details', 'text', (c) => c.notNull())
    .addColumn('sequence', 'integer', (c) => c.notNull())
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('authorised_at', 'bigint')
    .addColumn('expires_at', 'bigint')
    .execute();
  // Ids are time-ordered, so (merchant_id, id) serves "newest first" listing and cursors.
  await db.schema.createIndex('payments_merchant_id').on('payments').columns(['merchant_id', 'id']).execute();
  await db.schema.createIndex('payments_capture_at').on('payments').column('capture_at').where(sql.ref('capture_at'), 'is not', null).execute();
  await db.schema.createIndex('payments_expires_at').on('payments').column('expires_at').where(sql.ref('expires_at'), 'is not', null).execute();

  await db.schema
    .createTable('card_secrets')
    .addColumn('payment_id', 'text', (c) => c.primaryKey())
    .addColumn('kek_id', 'text', (c) => c.notNull())
    .addColumn('wrapped_dek', 'text', (c) => c.notNull())
    .addColumn('pan_ct', 'text', (c) => c.notNull())
    .addColumn('cvc_ct', 'text')
    .execute();

  await db.schema
    .createTable('checkout_sessions')
    .addColumn('token_hash', 'text', (c) => c.primaryKey())
    .addColumn('payment_id', 'text', (c) => c.notNull())
    .addColumn('token_ct', 'text', (c) => c.notNull())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('challenge_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('checkout_sessions_payment').on('checkout_sessions').column('payment_id').execute();

  await db.schema
    .createTable('idempotency_keys')
    .addColumn('merchant_id', 'text', (c) => c.notNull())
    .addColumn('key', 'text', (c) => c.notNull())
    .addColumn('endpoint', 'text', (c) => c.notNull())
    .addColumn('request_hash', 'text', (c) => c.notNull())
    .addColumn('response_status', 'integer', (c) => c.notNull())
    .addColumn('response_body', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .addPrimaryKeyConstraint('idempotency_keys_pk', ['merchant_id', 'key'])
    .execute();
  await db.schema.createIndex('idempotency_keys_expires').on('idempotency_keys').column('expires_at').execute();

  await db.schema
    .createTable('events')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('merchant_id', 'text', (c) => c.notNull())
    .addColumn('channel_id', 'text', (c) => c.notNull())
    .addColumn('payment_id', 'text')
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('sequence', 'integer', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('body', 'text', (c) => c.notNull())
    .addColumn('dispatched', 'integer', (c) => c.notNull().defaultTo(0))
    .execute();
  await db.schema.createIndex('events_merchant_id').on('events').columns(['merchant_id', 'id']).execute();
  await db.schema.createIndex('events_payment').on('events').columns(['payment_id', 'sequence']).execute();
  await db.schema.createIndex('events_undispatched').on('events').column('id').where(sql.ref('dispatched'), '=', 0).execute();
}

import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('payment_methods')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('merchant_id', 'text', (c) => c.notNull())
    .addColumn('customer_reference', 'text', (c) => c.notNull())
    .addColumn('fingerprint', 'text', (c) => c.notNull())
    .addColumn('brand', 'text', (c) => c.notNull())
    .addColumn('bin', 'text', (c) => c.notNull())
    .addColumn('last4', 'text', (c) => c.notNull())
    .addColumn('exp_month', 'integer', (c) => c.notNull())
    .addColumn('exp_year', 'integer', (c) => c.notNull())
    // Nulled on deletion: without the wrapped data key the PAN can never be decrypted again.
    .addColumn('kek_id', 'text')
    .addColumn('wrapped_dek', 'text')
    .addColumn('pan_ct', 'text')
    .addColumn('initial_payment_id', 'text', (c) => c.notNull())
    .addColumn('initial_network_reference', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .addColumn('deleted_at', 'bigint')
    .execute();
  // One live token per card per customer: storing the same card again finds this row.
  await db.schema
    .createIndex('payment_methods_live_card')
    .on('payment_methods')
    .columns(['merchant_id', 'customer_reference', 'fingerprint'])
    .unique()
    .where(sql.ref('deleted_at'), 'is', null)
    .execute();
  await db.schema.createIndex('payment_methods_customer').on('payment_methods').columns(['merchant_id', 'customer_reference', 'id']).execute();
}

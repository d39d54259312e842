import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('refunds')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('payment_id', 'text', (c) => c.notNull())
    .addColumn('merchant_id', 'text', (c) => c.notNull())
    .addColumn('amount', 'bigint', (c) => c.notNull())
    .addColumn('currency', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('reason', 'text')
    .addColumn('failure_code', 'text')
    .addColumn('failure_message', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('refunds_payment').on('refunds').columns(['payment_id', 'id']).execute();
  // The scheduler looks for refunds whose process died before the acquirer's answer was recorded.
  await db.schema.createIndex('refunds_pending').on('refunds').column('updated_at').where(sql.ref('status'), '=', 'pending').execute();

  // Likewise for captures and voids whose claim was never settled.
  await db.schema.createIndex('payments_claims').on('payments').column('updated_at').where(sql<boolean>`status in ('capturing', 'voiding')`).execute();

  // GET /payments filters, each still walking ids newest first.
  await db.schema.createIndex('payments_merchant_status').on('payments').columns(['merchant_id', 'status', 'id']).execute();
  await db.schema.createIndex('payments_merchant_reference').on('payments').columns(['merchant_id', 'reference', 'id']).execute();
  await db.schema.createIndex('payments_merchant_customer').on('payments').columns(['merchant_id', 'customer_reference', 'id']).execute();
}

import { type Kysely, sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('compliance_profiles')
    .addColumn('merchant_id', 'text', (c) => c.primaryKey().references('merchants.id'))
    .addColumn('declared_transactions', 'bigint')
    .addColumn('declared_at', 'bigint')
    .addColumn('approved_at', 'bigint')
    .addColumn('valid_until', 'bigint')
    .addColumn('approved_basis', 'text')
    .addColumn('aoc_required_since', 'bigint')
    .addColumn('counted_transactions', 'bigint')
    .addColumn('counted_at', 'bigint')
    .addColumn('last_review_outcome', 'text')
    .addColumn('last_review_reason', 'text')
    .addColumn('last_reviewed_at', 'bigint')
    .addColumn('last_reviewed_by', 'text')
    .addColumn('reminded_for', 'bigint')
    .addColumn('reminded_days', 'integer')
    .addColumn('expiry_notified_for', 'bigint')
    .addColumn('updated_at', 'bigint', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('compliance_profiles_valid_until').on('compliance_profiles').column('valid_until').where(sql.ref('valid_until'), 'is not', null).execute();

  await db.schema
    .createTable('compliance_documents')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('merchant_id', 'text', (c) => c.notNull().references('merchants.id'))
    .addColumn('type', 'text', (c) => c.notNull())
    .addColumn('document_date', 'text', (c) => c.notNull())
    .addColumn('filename', 'text', (c) => c.notNull())
    .addColumn('size_bytes', 'integer', (c) => c.notNull())
    .addColumn('sha256', 'text', (c) => c.notNull())
    .addColumn('kek_id', 'text', (c) => c.notNull())
    .addColumn('wrapped_dek', 'text', (c) => c.notNull())
    .addColumn('content_ct', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) => c.notNull())
    .addColumn('uploaded_at', 'bigint', (c) => c.notNull())
    .addColumn('reviewed_at', 'bigint')
    .addColumn('review_reason', 'text')
    .execute();
  await db.schema.createIndex('compliance_documents_merchant').on('compliance_documents').columns(['merchant_id', 'id']).execute();
  await db.schema.createIndex('compliance_documents_pending').on('compliance_documents').column('merchant_id').where(sql.ref('status'), '=', 'pending').execute();

  await db.schema
    .createTable('audit_log')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('at', 'bigint', (c) => c.notNull())
    .addColumn('actor', 'text', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull())
    .addColumn('action', 'text', (c) => c.notNull())
    .addColumn('merchant_id', 'text')
    .addColumn('target', 'text')
    .addColumn('outcome', 'text', (c) => c.notNull())
    .addColumn('code', 'text')
    .addColumn('detail', 'text')
    .execute();
  await db.schema.createIndex('audit_log_merchant').on('audit_log').columns(['merchant_id', 'id']).execute();
  await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute();
}

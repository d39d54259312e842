import type { Kysely } from 'kysely';

/**
 * Limits the card schemes set on merchant-initiated payments (decision 0033): how many payments
 * an instalment plan has had, and the issuer declines of MITs on each card. Both are read by
 * key or index prefix only, so an MIT's checks cost a few indexed rows however long the
 * customer's history.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('instalment_plans')
    .addColumn('agreement_payment_id', 'text', (c) => c.primaryKey())
    .addColumn('allowed', 'integer', (c) => c.notNull())
    .addColumn('taken', 'integer', (c) => c.notNull())
    .execute();
  await db.schema
    .createTable('mit_declines')
    .addColumn('payment_id', 'text', (c) => c.primaryKey())
    .addColumn('merchant_id', 'text', (c) => c.notNull())
    .addColumn('card_fingerprint', 'text', (c) => c.notNull())
    .addColumn('declined_at', 'bigint', (c) => c.notNull())
    .addColumn('do_not_retry', 'integer', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('mit_declines_card').on('mit_declines').columns(['merchant_id', 'card_fingerprint', 'declined_at']).execute();
}

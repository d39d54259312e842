import type { Kysely } from 'kysely';

/**
 * Limits the card schemes set on merchant-initiated payments (decision 0033): how many payments
 * an instalment plan has had. A row per plan, read and moved by its key only, so counting costs
 * an instalment MIT one indexed row however long the customer's history.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('instalment_plans')
    .addColumn('agreement_payment_id', 'text', (c) => c.primaryKey())
    .addColumn('allowed', 'integer', (c) => c.notNull())
    .addColumn('taken', 'integer', (c) => c.notNull())
    .execute();
}

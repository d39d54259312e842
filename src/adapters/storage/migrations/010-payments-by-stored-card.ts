import { type Kysely, sql } from 'kysely';

/**
 * Deleting a stored card erases the card data of the payments made with it
 * (src/app/stored-cards.ts). Without an index those payments were found among all of the
 * merchant's payments, in a write transaction: at a million payments, seconds for each
 * deletion. Only payments made with a stored card are in this index, so it costs the
 * others nothing.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createIndex('payments_payment_method')
    .on('payments')
    .columns(['payment_method_id', 'merchant_id'])
    .where(sql.ref('payment_method_id'), 'is not', null)
    .execute();
}

import type { Kysely } from 'kysely';

/**
 * Where a channel's customers write with questions about a payment: its receipts name it
 * and answer to it (Reply-To). Without one a receipt told the customer to contact the shop
 * and gave no way to, and a reply went to the gateway's no-reply sender. Null until the
 * operator sets it; receipts read as before then.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('channels').addColumn('support_email', 'text').execute();
}

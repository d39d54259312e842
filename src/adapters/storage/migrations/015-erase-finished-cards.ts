import { type Kysely, sql } from 'kysely';

/**
 * A payment's sealed card is erased when its hosted page ends (eraseCard in
 * src/app/payment-transitions.ts); before, it was kept with the payment. Those copies of
 * finished payments go now: nothing reads them, and card data is kept no longer than it
 * is needed (PCI DSS 3.2.1). Deleting a stored card no longer looks for such copies, so
 * the index that found them (migration 010) goes too.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`delete from card_secrets where not exists (select 1 from payments where payments.id = card_secrets.payment_id and payments.status = 'requires_action')`.execute(db);
  await db.schema.dropIndex('payments_payment_method').ifExists().execute();
}

import type { Kysely } from 'kysely';

/**
 * Payment events stop copying the customer, addresses, metadata and payment data that
 * the payment's own row already holds and never changes (src/app/events.ts). Rows
 * written before keep their whole bodies (body_slim 0) and read as they always did.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('events').addColumn('body_slim', 'integer', (c) => c.notNull().defaultTo(0)).execute();
}

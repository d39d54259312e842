import type { Kysely } from 'kysely';

/**
 * The HMAC_KEY a database is used with, as a one-way check value (src/app/kek-check.ts):
 * a gateway with another key would mint page links, card fingerprints and Idempotency-Key
 * comparisons the others do not match, so it is refused at boot. One row; written by the
 * first boot after this migration, since nothing stored before can tell which key made it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('hmac_key_check')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('check_value', 'text', (c) => c.notNull())
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
}

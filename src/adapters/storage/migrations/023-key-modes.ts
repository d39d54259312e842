import type { Kysely } from 'kysely';

/**
 * A secret key's mode (decision 0028): `sandbox` or `live`, the only channels and payments it
 * may act on. Keys that exist already are left null, acting on both as before, so no running
 * integration stops; `key list` shows them as `both (legacy)` and the boot says how many
 * remain. Migration 007's triggers on secret_keys move the config counter on any change here.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('secret_keys').addColumn('mode', 'text').execute();
}

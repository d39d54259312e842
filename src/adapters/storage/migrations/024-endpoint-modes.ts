import type { Kysely } from 'kysely';

/**
 * A webhook endpoint's mode (decision 0032): `sandbox` or `live`, the mode of the key that
 * registered it and of the only events it takes. Endpoints that exist already were registered
 * by keys made before modes and are left null, taking both modes' events as before, so no
 * receiver stops getting callbacks. It is set when an endpoint is registered and never
 * changed, so migration 012's insert triggers already move the config counter for it.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('webhook_endpoints').addColumn('mode', 'text').execute();
}

import type { Kysely } from 'kysely';

/**
 * A merchant the operator has suspended (decision 0027): from `suspended_at` on it takes no
 * new money while it can still read, refund and void. The reason is the operator's, kept
 * beside it for `merchant list`; both are null for a merchant in good standing. Migration
 * 007's triggers already move the config counter on any change to merchants, so every
 * gateway's key cache sees a suspension on its next request without a trigger of its own.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('merchants').addColumn('suspended_at', 'bigint').execute();
  await db.schema.alterTable('merchants').addColumn('suspended_reason', 'text').execute();
}

import { type Kysely, SqliteAdapter, sql } from 'kysely';

/**
 * Webhook endpoints join merchants, channels and secret keys in moving the config
 * counter (migration 007), so gateways can cache each merchant's enabled endpoints
 * (src/app/lookup-cache.ts): an event that no endpoint and no e-mail rule can take is
 * written already dispatched instead of going through the outbox's fan-out
 * (src/app/event-interest.ts), and the fan-out reads endpoints from the cache. Only the
 * columns that decide which events an endpoint takes move it: the dispatcher does not
 * empty every gateway's cache when it records a delivery or `vault rotate` re-wraps a
 * signing secret.
 */
const COLUMNS = ['status', 'events', 'channel_id', 'deleted_at', 'created_at', 'merchant_id'];

export async function up(db: Kysely<unknown>): Promise<void> {
  if (db.getExecutor().adapter instanceof SqliteAdapter) {
    const bump = 'begin update config_versions set version = version + 1 where id = 1; end';
    await sql.raw(`create trigger webhook_endpoints_insert_config_version after insert on webhook_endpoints ${bump}`).execute(db);
    await sql.raw(`create trigger webhook_endpoints_delete_config_version after delete on webhook_endpoints ${bump}`).execute(db);
    await sql.raw(`create trigger webhook_endpoints_update_config_version after update of ${COLUMNS.join(', ')} on webhook_endpoints ${bump}`).execute(db);
    return;
  }
  await sql
    .raw(`create trigger webhook_endpoints_config_changed after insert or update of ${COLUMNS.join(', ')} or delete or truncate on webhook_endpoints for each statement execute function config_changed()`)
    .execute(db);
}

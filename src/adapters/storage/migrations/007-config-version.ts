import { type Kysely, SqliteAdapter, sql } from 'kysely';

/**
 * A counter that moves in the same transaction as every change to merchants, channels
 * and secret keys, so a gateway can cache those rows and still see a change made by
 * another process (the operator CLI) on its next request (src/app/lookup-cache.ts).
 * Triggers rather than code in the services that write these tables: every writer is
 * covered, `vault rotate` and an operator at a SQL prompt included. On PostgreSQL the
 * trigger also sends NOTIFY config_changed, which the gateways LISTEN for; reading the
 * counter there would cost a round trip per request.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('config_versions')
    .addColumn('id', 'integer', (c) => c.primaryKey())
    .addColumn('version', 'bigint', (c) => c.notNull())
    .execute();
  await sql`insert into config_versions (id, version) values (1, 0)`.execute(db);
  const tables = ['merchants', 'channels', 'secret_keys'];
  if (db.getExecutor().adapter instanceof SqliteAdapter) {
    // SQLite triggers fire per row; a config write touches one row, so that costs nothing.
    for (const table of tables) {
      for (const op of ['insert', 'update', 'delete']) {
        await sql
          .raw(`create trigger ${table}_${op}_config_version after ${op} on ${table} begin update config_versions set version = version + 1 where id = 1; end`)
          .execute(db);
      }
    }
    return;
  }
  await sql
    .raw(
      `create function config_changed() returns trigger language plpgsql as $$
       begin
         update config_versions set version = version + 1 where id = 1;
         notify config_changed;
         return null;
       end $$`,
    )
    .execute(db);
  for (const table of tables) {
    await sql.raw(`create trigger ${table}_config_changed after insert or update or delete or truncate on ${table} for each statement execute function config_changed()`).execute(db);
  }
}

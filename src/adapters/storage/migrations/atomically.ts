import { type Kysely, sql } from 'kysely';

/**
 * All of `step` or none of it. A savepoint, not a transaction: SQLite's migration run
 * already holds one (database.ts, migrate) and cannot open another inside it, while a
 * migration run alone (a test's Migrator) gets a transaction of its own from it.
 * PostgreSQL's migrations run in a transaction of Kysely's.
 */
export async function atomically(db: Kysely<unknown>, step: (db: Kysely<unknown>) => Promise<void>): Promise<void> {
  if (db.isTransaction) return step(db);
  await sql`savepoint migration_step`.execute(db);
  try {
    await step(db);
  } catch (error) {
    await sql`rollback to migration_step`.execute(db);
    await sql`release migration_step`.execute(db);
    throw error;
  }
  await sql`release migration_step`.execute(db);
}

import { type Kysely, SqliteAdapter, sql } from 'kysely';
import { atomically } from './atomically.js';

/**
 * checkout_sessions keyed by payment_id, without token_hash and token_ct: the page token
 * is now a MAC of the payment id (src/app/page-token.ts), so nothing secret is stored and
 * each insert appends to a time-ordered key instead of landing on a random B-tree page.
 * A payment has at most one session (authorise creates its payment with it; a
 * merchant-initiated step-up adds one to a payment that had none, with a card_secrets row
 * that is itself keyed by payment id), so the copy keeps every row: payments keep their
 * state and their sessions their attempts and expiry. A duplicate would break that
 * invariant and fails the migration rather than drop a row.
 *
 * Open sessions lose their old URLs: those tokens were random and cannot be derived
 * again. GET /payment/{id} shows the new URL in `redirect_url` (a replayed authorise
 * response still carries the old one); a customer holding the old URL sees the
 * not-found page until the merchant sends the new one, or the payment expires as before.
 *
 * Rebuilt rather than altered because SQLite cannot change a primary key in place. On
 * SQLite the table is WITHOUT ROWID: the rows are small, so keeping them in the primary
 * key's B-tree saves a second tree (and its page writes) per insert.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  const sqlite = db.getExecutor().adapter instanceof SqliteAdapter;
  // A crash between the drop and the rename must not lose the table.
  return atomically(db, (step) => rebuild(step, sqlite));
}

async function rebuild(db: Kysely<unknown>, sqlite: boolean): Promise<void> {
  await db.schema
    .createTable('checkout_sessions_next')
    .addColumn('payment_id', 'text', (c) => c.primaryKey())
    .addColumn('state', 'text', (c) => c.notNull())
    .addColumn('challenge_attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .addColumn('expires_at', 'bigint', (c) => c.notNull())
    .$call((t) => (sqlite ? t.modifyEnd(sql`without rowid`) : t))
    .execute();
  await sql`insert into checkout_sessions_next (payment_id, state, challenge_attempts, created_at, expires_at)
    select payment_id, state, challenge_attempts, created_at, expires_at from checkout_sessions`.execute(db);
  // Takes the old payment_id index with it.
  await db.schema.dropTable('checkout_sessions').execute();
  await db.schema.alterTable('checkout_sessions_next').renameTo('checkout_sessions').execute();
  // PostgreSQL keeps the constraint's creation name; errors should name the real table.
  if (!sqlite) await sql`alter table checkout_sessions rename constraint checkout_sessions_next_pkey to checkout_sessions_pkey`.execute(db);
}

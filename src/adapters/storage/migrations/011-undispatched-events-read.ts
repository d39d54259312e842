import { type Kysely, SqliteAdapter, sql } from 'kysely';

/**
 * PostgreSQL: the dispatcher's read of undispatched events as a function that may only
 * walk `events_undispatched` in order (src/workers/dispatcher.ts).
 *
 * Marking an event dispatched is an UPDATE: PostgreSQL keeps the old row version, and its
 * entry in the partial index, until VACUUM. For `... where dispatched = 0 order by id
 * limit n` the planner chose a bitmap scan, which visits the heap page of every such entry
 * and never marks one dead: under API load each fan-out pass re-read every event
 * dispatched since the last vacuum (8 ms a pass after 28,000 events, 34 ms when idle, and
 * growing until autovacuum came). A plain index scan marks the entries of dead rows as it
 * passes them, so the next pass skips them without reading the table (0.4 ms). The
 * settings apply inside the function only. SQLite updates its index in place: nothing
 * to do there.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  if (db.getExecutor().adapter instanceof SqliteAdapter) return;
  await sql
    .raw(
      `create function undispatched_events(batch integer)
       returns table (id text, merchant_id text, channel_id text, payment_id text, type text, created_at bigint)
       language sql stable
       set enable_bitmapscan = off
       set enable_seqscan = off
       set enable_sort = off
       as $$
         select e.id, e.merchant_id, e.channel_id, e.payment_id, e.type, e.created_at
         from events e where e.dispatched = 0 order by e.id limit batch
       $$`,
    )
    .execute(db);
}

import { sql } from 'kysely';
import type { AppContext } from './context.js';

/**
 * How long the oldest callback or e-mail that should have gone out has waited, in whole
 * seconds: an event no dispatcher has fanned out yet counts from when it happened, a delivery
 * from when it fell due (a retry waiting out its backoff is not behind). Two index seeks,
 * cheap enough for a readiness probe.
 */
export async function deliveriesBehindSeconds(ctx: AppContext): Promise<number> {
  const { db, dialect } = ctx.database;
  // PostgreSQL reads the oldest undispatched event through migration 011's function, which
  // skips the dead row versions dispatched events leave in the partial index.
  const event = dialect === 'postgres'
    ? (await sql<{ created_at: number | string }>`select created_at from undispatched_events(1)`.execute(db)).rows[0]
    : await db.selectFrom('events').select('created_at').where('dispatched', '=', 0).orderBy('id').limit(1).executeTakeFirst();
  const delivery = await db.selectFrom('deliveries').select('next_attempt_at').where('status', '=', 'pending').orderBy('next_attempt_at').limit(1).executeTakeFirst();
  const now = ctx.clock.now();
  const oldest = Math.min(event ? Number(event.created_at) : now, delivery ? Number(delivery.next_attempt_at) : now);
  return Math.max(0, Math.floor((now - oldest) / 1000));
}

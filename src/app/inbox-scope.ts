import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Kysely } from 'kysely';
import type { Schema } from '../adapters/storage/schema.js';
import { hasPrefix } from '../domain/ids.js';
import { channelsIn, type KeyScope } from './key-scope.js';

/** The e-mail deliveries a key may read (decision 0031): its merchant's, about its mode's channels (decision 0028). */
function readableDeliveries(db: Kysely<Schema>, merchantId: string, scope: KeyScope) {
  // From the merchant's events (indexed by merchant), so the cost follows this merchant's mail,
  // however much other merchants of a hosted sandbox have.
  let query = db
    .selectFrom('events')
    .innerJoin('deliveries', 'deliveries.event_id', 'events.id')
    .select('deliveries.id')
    .where('events.merchant_id', '=', merchantId)
    .where('deliveries.merchant_id', '=', merchantId)
    .where('deliveries.kind', '=', 'email');
  if (scope !== null) query = query.where('events.channel_id', 'in', channelsIn(db, scope));
  return query;
}

/** The named inbox file (`<delivery id>.eml`) if the key may read it; another merchant's, or one no delivery names, is not. */
export async function readableMessage(db: Kysely<Schema>, merchantId: string, scope: KeyScope, name: string): Promise<string | null> {
  const id = name.slice(0, -'.eml'.length);
  if (!hasPrefix(id, 'delivery')) return null;
  const row = await readableDeliveries(db, merchantId, scope).where('deliveries.id', '=', id).executeTakeFirst();
  return row ? name : null;
}

/**
 * The newest `limit` inbox files the key may read, newest first (delivery ids are
 * time-ordered). Deliveries without a file (still pending, or sent while SMTP_URL was set)
 * are passed over, a page at a time.
 */
export async function newestReadableMessages(db: Kysely<Schema>, merchantId: string, scope: KeyScope, dir: string, limit: number): Promise<string[]> {
  const kept: string[] = [];
  let before: string | null = null;
  for (;;) {
    let query = readableDeliveries(db, merchantId, scope).orderBy('deliveries.id', 'desc').limit(limit);
    if (before !== null) query = query.where('deliveries.id', '<', before);
    const ids = (await query.execute()).map((row) => row.id);
    for (const id of ids) if (kept.length < limit && existsSync(join(dir, `${id}.eml`))) kept.push(`${id}.eml`);
    if (kept.length >= limit || ids.length < limit) return kept;
    before = ids[ids.length - 1]!;
  }
}

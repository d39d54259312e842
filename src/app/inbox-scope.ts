import type { Kysely } from 'kysely';
import type { Schema } from '../adapters/storage/schema.js';
import { hasPrefix } from '../domain/ids.js';
import { channelsIn, type KeyScope } from './key-scope.js';

/** Names looked up at once: one query by primary key each. */
const CHUNK = 200;

/**
 * Of the sandbox inbox's files (`<delivery id>.eml`, in the order given), the first `limit` a
 * key may read (decision 0031): its merchant's e-mails, about its mode's channels (decision
 * 0028). Anything else, another merchant's message or a file no delivery names, is left out.
 */
export async function readableMessages(db: Kysely<Schema>, merchantId: string, scope: KeyScope, names: readonly string[], limit = Infinity): Promise<string[]> {
  const kept: string[] = [];
  const named = names.filter((name) => hasPrefix(name.slice(0, -'.eml'.length), 'delivery'));
  for (let i = 0; i < named.length && kept.length < limit; i += CHUNK) {
    const chunk = named.slice(i, i + CHUNK);
    let query = db
      .selectFrom('deliveries')
      .innerJoin('events', 'events.id', 'deliveries.event_id')
      .select('deliveries.id')
      .where('deliveries.id', 'in', chunk.map((name) => name.slice(0, -'.eml'.length)))
      .where('deliveries.merchant_id', '=', merchantId)
      .where('deliveries.kind', '=', 'email');
    if (scope !== null) query = query.where('events.channel_id', 'in', channelsIn(db, scope));
    const ids = new Set((await query.execute()).map((row) => row.id));
    for (const name of chunk) if (ids.has(name.slice(0, -'.eml'.length))) kept.push(name);
  }
  return kept.slice(0, limit);
}

import { hkdfSync } from 'node:crypto';
import { type Kysely, PostgresAdapter, sql } from 'kysely';
import { ConfigError, type Config } from '../config.js';
import type { Schema } from '../adapters/storage/schema.js';
import { sealedStringParts, type Vault } from '../adapters/vault/envelope.js';

/** One data key as stored: where it is, the record id it is bound to, and its KEK's id. */
interface WrappedKey {
  table: string;
  recordId: string;
  kek_id: string;
  wrapped_dek: string;
}

/**
 * Refuses to start a gateway, or an operator command, that could not open what the
 * database holds: a KEK id with no configured key, or a key whose bytes are not the ones
 * that id sealed with. Otherwise either shows up much later, as a 500 on the payment,
 * stored card, callback or Idempotency-Key replay that needs it.
 *
 * The ids come from `vault_keys` (migration 014), where every gateway that passes this
 * check registers its active key, with a check value sealed by it, before it seals anything; `vault rotate` removes the
 * ids it has moved everything away from. So a boot reads a table of a few rows, never the
 * tables that grow with every payment. Ids found in the data by the migration have no
 * check value yet: their key is tried once on one data key wrapped under them.
 */
export async function checkKeks(db: Kysely<Schema>, keks: Config['keks'], vault: Vault, hmacKey: Buffer, now: number, register = true): Promise<void> {
  const check = async (ex: Kysely<Schema>) => {
    await checkAndRegister(ex, keks, vault, now, register);
    await checkHmacKey(ex, hmacKey, now, register);
  };
  // All or nothing: a process refused by the HMAC_KEY check, after the vault keys passed and its
  // new active key was registered, would otherwise leave that id behind, and every gateway
  // configured as before would then be refused for not having it.
  if (!(db.getExecutor().adapter instanceof PostgresAdapter)) {
    // IMMEDIATE: the write lock before the first read. A deferred transaction beside a serving
    // gateway (an operator command) would fail with SQLITE_BUSY on its first write whenever
    // the gateway had committed since its reads, without waiting out the busy timeout.
    await db.connection().execute(async (conn) => {
      await sql`begin immediate`.execute(conn);
      try {
        await check(conn);
      } catch (error) {
        await sql`rollback`.execute(conn);
        throw error;
      }
      await sql`commit`.execute(conn);
    });
    return;
  }
  // Gateways starting at the same moment with different new keys each passed the check
  // before the other had registered, then sealed what the other cannot open. Taken in
  // turn, the second sees the first's key and is refused. Reads of the table go on.
  await db.transaction().execute(async (trx) => {
    await sql`lock table vault_keys in share row exclusive mode`.execute(trx);
    await check(trx);
  });
}

/**
 * HMAC_KEY seals nothing, so no data key can be tried with it: the database keeps a value
 * derived from it instead (one-way: it tells nothing of the key). A gateway with another key
 * would send customers to page links the others refuse, and take an Idempotency-Key retry
 * reaching another process as a new payment: it is refused. The first gateway to boot
 * registers its key; a read-only operator command only compares.
 */
async function checkHmacKey(db: Kysely<Schema>, hmacKey: Buffer, now: number, register: boolean): Promise<void> {
  const mine = Buffer.from(hkdfSync('sha256', hmacKey, Buffer.alloc(0), 'tzero hmac key check v1', 32)).toString('hex');
  if (register) await db.insertInto('hmac_key_check').values({ id: 1, check_value: mine, created_at: now }).onConflict((oc) => oc.column('id').doNothing()).execute();
  const registered = await db.selectFrom('hmac_key_check').select('check_value').where('id', '=', 1).executeTakeFirst();
  if (registered === undefined || registered.check_value === mine) return;
  throw new ConfigError(
    `HMAC_KEY is not the key this database is used with: payment page links, card fingerprints and Idempotency-Key comparisons made with it would not match the other gateways'. ${SAME_KEYS}`,
  );
}

async function checkAndRegister(db: Kysely<Schema>, keks: Config['keks'], vault: Vault, now: number, register: boolean): Promise<void> {
  const problems: string[] = [];
  for (const row of await db.selectFrom('vault_keys').selectAll().orderBy('kek_id').execute()) {
    const id = row.kek_id;
    if (!keks.all.has(id)) {
      // Found by migration 014 and never confirmed: if nothing is sealed under it any more
      // (its key was dropped once nothing needed it), it is no reason to refuse.
      if (row.check_ct === null && !(await firstWrappedUnder(db, id))) {
        await db.deleteFrom('vault_keys').where('kek_id', '=', id).where('check_ct', 'is', null).execute();
        continue;
      }
      problems.push(`key-encrypting key id "${id}" is not configured, yet data is sealed under it: add its key to VAULT_OLD_KEKS (id:base64), then \`vault rotate\` can retire it`);
      continue;
    }
    if (row.check_ct !== null) {
      if (!vault.opensKekCheck(id, row.check_ct)) problems.push(wrongBytes(id, 'its check value'));
      continue;
    }
    const wrapped = await firstWrappedUnder(db, id);
    if (wrapped && !vault.opensDataKey(wrapped.recordId, wrapped)) {
      problems.push(wrongBytes(id, `a data key it wrapped (${wrapped.table} ${wrapped.recordId})`));
      continue;
    }
    await db.updateTable('vault_keys').set({ check_ct: vault.kekCheck(id) }).where('kek_id', '=', id).where('check_ct', 'is', null).execute();
  }
  if (problems.length > 0) throw new ConfigError(`VAULT_KEK / VAULT_OLD_KEKS (configured ids: ${[...keks.all.keys()].join(', ')}): ${problems.join('; ')}. ${SAME_KEYS}`);
  if (!register) return;
  // Only a gateway that may start registers its key: one refused must not leave an id behind.
  const active = keks.active.id;
  await db
    .insertInto('vault_keys')
    .values({ kek_id: active, check_ct: vault.kekCheck(active), created_at: now })
    .onConflict((oc) => oc.column('kek_id').doNothing())
    .execute();
  // Another process starting at the same moment may have registered the same id with other bytes.
  const registered = await db.selectFrom('vault_keys').select('check_ct').where('kek_id', '=', active).executeTakeFirst();
  if (registered?.check_ct != null && !vault.opensKekCheck(active, registered.check_ct)) {
    throw new ConfigError(`VAULT_KEK: ${wrongBytes(active, 'its check value, registered by another gateway starting at the same time')}. ${SAME_KEYS}`);
  }
}

/** The usual cause: a second gateway on one database that generated sandbox keys of its own. */
const SAME_KEYS =
  'Every gateway on one database needs the same VAULT_KEK, VAULT_OLD_KEKS and HMAC_KEY; a sandbox without them uses DATA_DIR/sandbox-keys.json, so give each one a copy of the first one\'s file (or set the variables)';

function wrongBytes(id: string, what: string): string {
  return `the key configured for key-encrypting key id "${id}" cannot open ${what}: configure the bytes that id had when it sealed`;
}

/**
 * One data key under `id`, small tables first. Once per id found by migration 014 (its
 * check value is written after), and the oldest rows hold the oldest ids, so the first
 * match in the growing tables comes early.
 */
async function firstWrappedUnder(db: Kysely<Schema>, id: string): Promise<WrappedKey | undefined> {
  const prefix = `${id}|`;
  for (const c of await db.selectFrom('channels').select(['id', 'return_secret_ct']).execute()) {
    if (c.return_secret_ct.startsWith(prefix)) return packed('channels', c.id, c.return_secret_ct);
  }
  for (const w of await db.selectFrom('webhook_endpoints').select(['id', 'secret_ct', 'previous_secret_ct']).execute()) {
    for (const v of [w.secret_ct, w.previous_secret_ct]) if (v?.startsWith(prefix)) return packed('webhook_endpoints', w.id, v);
  }
  const doc = await db.selectFrom('compliance_documents').select(['id', 'kek_id', 'wrapped_dek']).where('kek_id', '=', id).limit(1).executeTakeFirst();
  if (doc) return { table: 'compliance_documents', recordId: doc.id, kek_id: id, wrapped_dek: doc.wrapped_dek };
  const card = await db.selectFrom('payment_methods').select(['id', 'wrapped_dek']).where('kek_id', '=', id).limit(1).executeTakeFirst();
  if (card?.wrapped_dek) return { table: 'payment_methods', recordId: card.id, kek_id: id, wrapped_dek: card.wrapped_dek };
  const secret = await db.selectFrom('card_secrets').select(['payment_id', 'wrapped_dek']).where('kek_id', '=', id).limit(1).executeTakeFirst();
  return secret && { table: 'card_secrets', recordId: secret.payment_id, kek_id: id, wrapped_dek: secret.wrapped_dek };
}

function packed(table: string, recordId: string, value: string): WrappedKey {
  const { kek_id, wrapped_dek } = sealedStringParts(value);
  return { table, recordId, kek_id, wrapped_dek };
}

/**
 * After `vault rotate` has re-wrapped everything under the active key, the other ids hold
 * nothing a gateway needs: the boot check stops asking for their keys.
 */
export async function retireKekIds(db: Kysely<Schema>, activeId: string): Promise<number> {
  const r = await db.deleteFrom('vault_keys').where('kek_id', '!=', activeId).executeTakeFirst();
  return Number(r.numDeletedRows);
}

import { sql } from 'kysely';
import type { Services } from '../app/services.js';
import { inKeyBatches } from '../app/key-batches.js';

/**
 * Re-wraps every data key under the active VAULT_KEK (old KEKs stay readable through
 * VAULT_OLD_KEKS until this has run): payment cards, stored cards, channel return secrets
 * webhook signing secrets and stored Idempotency-Key responses. Ciphertext is not touched.
 * Each row is written only if it still holds what was read: a value the running gateway
 * changed meanwhile (a webhook secret rotated by the merchant) is never put back. Hosted-page tokens are MACs
 * keyed from HMAC_KEY and nothing of them is sealed (src/app/page-token.ts).
 */
export async function rotateKek(services: Services, batch = 500): Promise<number> {
  return (
    (await rotateCardSecrets(services, batch)) +
    (await services.storedCards.rewrap(batch)) +
    (await rotateChannelSecrets(services)) +
    (await rotateWebhookSecrets(services)) +
    (await rotateStoredResponses(services, batch))
  );
}

/** Whether a `sealString` value needs re-wrapping; its KEK id is the first field. */
function stale(services: Services, packed: string | null): packed is string {
  return packed !== null && !packed.startsWith(`${services.ctx.vault.activeKekId}|`);
}

async function rotateChannelSecrets(services: Services): Promise<number> {
  const { database, vault } = services.ctx;
  const rows = await database.db.selectFrom('channels').select(['id', 'return_secret_ct']).execute();
  let count = 0;
  for (const r of rows) {
    if (!stale(services, r.return_secret_ct)) continue;
    await database.db.updateTable('channels').set({ return_secret_ct: vault.rewrapString(r.id, r.return_secret_ct) }).where('id', '=', r.id).where('return_secret_ct', '=', r.return_secret_ct).execute();
    count++;
  }
  return count;
}

async function rotateWebhookSecrets(services: Services): Promise<number> {
  const { database, vault } = services.ctx;
  const rows = await database.db.selectFrom('webhook_endpoints').select(['id', 'secret_ct', 'previous_secret_ct']).execute();
  let count = 0;
  for (const r of rows) {
    if (!stale(services, r.secret_ct) && !stale(services, r.previous_secret_ct)) continue;
    await database.db
      .updateTable('webhook_endpoints')
      .set({ secret_ct: vault.rewrapString(r.id, r.secret_ct), previous_secret_ct: r.previous_secret_ct === null ? null : vault.rewrapString(r.id, r.previous_secret_ct) })
      .where('id', '=', r.id)
      .where('secret_ct', '=', r.secret_ct)
      .where((eb) => (r.previous_secret_ct === null ? eb('previous_secret_ct', 'is', null) : eb('previous_secret_ct', '=', r.previous_secret_ct)))
      .execute();
    count++;
  }
  return count;
}

/**
 * Responses kept for Idempotency-Key replays (sealed: they may hold a hosted-page URL),
 * merchant by merchant in key order, `batch` to a transaction (the table grows with traffic).
 */
async function rotateStoredResponses(services: Services, batch: number): Promise<number> {
  const { database, vault } = services.ctx;
  const active = `${vault.activeKekId}|`;
  let count = 0;
  for (const { id: merchantId } of await database.db.selectFrom('merchants').select('id').orderBy('id').execute()) {
    count += await inKeyBatches(
      database,
      (after) =>
        database.db
          .selectFrom('idempotency_keys')
          .select(['key', 'response_body'])
          .where('merchant_id', '=', merchantId)
          .where('key', '>', after)
          // Not LIKE: key ids may hold '_', a LIKE wildcard.
          .where(sql<boolean>`substr(response_body, 1, ${active.length}) <> ${active}`)
          .orderBy('key')
          .limit(batch)
          .execute(),
      (r) => r.key,
      (trx, r) =>
        trx
          .updateTable('idempotency_keys')
          .set({ response_body: vault.rewrapString(`idempotency:${merchantId}:${r.key}`, r.response_body) })
          .where('merchant_id', '=', merchantId)
          .where('key', '=', r.key)
          .where('response_body', '=', r.response_body)
          .execute(),
    );
  }
  return count;
}

/** Payment cards, `batch` to a transaction in payment id order (src/app/key-batches.ts). */
function rotateCardSecrets(services: Services, batch: number): Promise<number> {
  const { database, vault } = services.ctx;
  return inKeyBatches(
    database,
    (after) =>
      database.db
        .selectFrom('card_secrets')
        .select(['payment_id', 'kek_id', 'wrapped_dek'])
        .where('payment_id', '>', after)
        .where('kek_id', '!=', vault.activeKekId)
        .orderBy('payment_id')
        .limit(batch)
        .execute(),
    (r) => r.payment_id,
    (trx, r) => trx.updateTable('card_secrets').set(vault.rewrap(r.payment_id, r)).where('payment_id', '=', r.payment_id).where('kek_id', '=', r.kek_id).execute(),
  );
}

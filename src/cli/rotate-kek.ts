import type { Services } from '../app/services.js';

/**
 * Re-wraps every data key under the active VAULT_KEK (old KEKs stay readable through
 * VAULT_OLD_KEKS until this has run): payment cards, stored cards, channel return secrets
 * and webhook signing secrets. Ciphertext is not touched. Hosted-page tokens are MACs
 * keyed from HMAC_KEY and nothing of them is sealed (src/app/page-token.ts).
 */
export async function rotateKek(services: Services, batch = 500): Promise<number> {
  return (
    (await rotateCardSecrets(services, batch)) +
    (await services.storedCards.rewrap(batch)) +
    (await rotateChannelSecrets(services)) +
    (await rotateWebhookSecrets(services))
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
    await database.db.updateTable('channels').set({ return_secret_ct: vault.rewrapString(r.id, r.return_secret_ct) }).where('id', '=', r.id).execute();
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
      .execute();
    count++;
  }
  return count;
}

/**
 * One transaction per `batch` cards, in payment id order from where the last one stopped:
 * every payment has a card row, so starting each batch from the top again would read the
 * rows already re-wrapped once per batch (quadratic in the number of payments).
 */
async function rotateCardSecrets(services: Services, batch: number): Promise<number> {
  const { database, vault } = services.ctx;
  const active = vault.activeKekId;
  let count = 0;
  let after = '';
  for (;;) {
    const rows = await database.db
      .selectFrom('card_secrets')
      .select(['payment_id', 'kek_id', 'wrapped_dek'])
      .where('payment_id', '>', after)
      .where('kek_id', '!=', active)
      .orderBy('payment_id')
      .limit(batch)
      .execute();
    if (rows.length === 0) return count;
    await database.transaction(async (trx) => {
      for (const r of rows) {
        const next = vault.rewrap(r.payment_id, r);
        await trx.updateTable('card_secrets').set(next).where('payment_id', '=', r.payment_id).where('kek_id', '=', r.kek_id).execute();
      }
    });
    count += rows.length;
    after = rows[rows.length - 1]!.payment_id;
  }
}

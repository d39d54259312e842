import type { Services } from '../app/services.js';

/**
 * Re-wraps every data key under the active VAULT_KEK (old KEKs stay readable through
 * VAULT_OLD_KEKS until this has run): payment cards, stored cards and channel secrets.
 * Ciphertext is not touched.
 */
export async function rotateKek(services: Services): Promise<number> {
  return (await rotateCardSecrets(services)) + (await services.storedCards.rewrap()) + (await rotateChannelSecrets(services));
}

async function rotateChannelSecrets(services: Services): Promise<number> {
  const { database, vault } = services.ctx;
  const rows = await database.db.selectFrom('channels').select(['id', 'return_secret_ct']).execute();
  let count = 0;
  for (const r of rows) {
    if (r.return_secret_ct.startsWith(`${vault.activeKekId}|`)) continue;
    await database.db.updateTable('channels').set({ return_secret_ct: vault.sealString(r.id, vault.openString(r.id, r.return_secret_ct)) }).where('id', '=', r.id).execute();
    count++;
  }
  return count;
}

async function rotateCardSecrets(services: Services): Promise<number> {
  const { database, vault } = services.ctx;
  const active = vault.activeKekId;
  let count = 0;
  for (;;) {
    const rows = await database.db.selectFrom('card_secrets').select(['payment_id', 'kek_id', 'wrapped_dek']).where('kek_id', '!=', active).limit(500).execute();
    if (rows.length === 0) return count;
    await database.transaction(async (trx) => {
      for (const r of rows) {
        const next = vault.rewrap(r.payment_id, r);
        await trx.updateTable('card_secrets').set(next).where('payment_id', '=', r.payment_id).where('kek_id', '=', r.kek_id).execute();
      }
    });
    count += rows.length;
  }
}

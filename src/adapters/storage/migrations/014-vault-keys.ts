import { type Kysely, SqliteAdapter, sql } from 'kysely';

/**
 * The key ids data is sealed under (src/app/kek-check.ts): every gateway registers its
 * active key at boot, before it seals anything, so the boot check reads this small table
 * instead of the tables that grow with every payment. Ids already in use are found here,
 * once (cards of finished payments, which migration 015 erases, and expired responses are
 * not counted); their check values are written by the first boot that has their key.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('vault_keys')
    .addColumn('kek_id', 'text', (c) => c.primaryKey())
    .addColumn('check_ct', 'text')
    .addColumn('created_at', 'bigint', (c) => c.notNull())
    .execute();
  const before = sql.raw(db.getExecutor().adapter instanceof SqliteAdapter ? "substr(v, 1, instr(v, '|') - 1)" : "split_part(v, '|', 1)");
  await sql`
    insert into vault_keys (kek_id, created_at)
    select distinct kek_id, 0 from (
      select kek_id from card_secrets where exists (select 1 from payments where payments.id = card_secrets.payment_id and payments.status = 'requires_action')
      union select kek_id from payment_methods where kek_id is not null
      union select kek_id from compliance_documents
      union select ${before} from (
        select return_secret_ct as v from channels
        union all select secret_ct from webhook_endpoints
        union all select previous_secret_ct from webhook_endpoints where previous_secret_ct is not null
        union all select response_body from idempotency_keys where response_body like '%|%' and expires_at > ${Date.now()}
      ) sealed
    ) found`.execute(db);
}

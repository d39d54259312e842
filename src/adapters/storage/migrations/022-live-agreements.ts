import { type Kysely, sql } from 'kysely';

/** The first live payment naming a stored card: the one that stored it again through a live channel. */
const firstLive = (column: 'id' | 'network_reference') => sql.raw(`(
  select p.${column} from payments p join channels c on c.id = p.channel_id
  where p.merchant_id = payment_methods.merchant_id and p.customer_reference = payment_methods.customer_reference
    and p.payment_method_id = payment_methods.id and c.mode = 'live'
  order by p.created_at, p.id limit 1)`);

/**
 * A card first stored through a sandbox payment and stored again by a live one kept the
 * sandbox payment as its agreement until the agreement learnt to move (a live MIT naming the
 * live payment was refused, and the sandbox network reference could reach a scheme). Such
 * cards take their first live payment as agreement now, as they would today; the gateway then
 * tells a live-stored card by its agreement's channel alone, not by searching the card's
 * payments on every token payment. The search here runs once, through the customer's index.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`update payment_methods set
      initial_payment_id = ${firstLive('id')},
      initial_network_reference = ${firstLive('network_reference')}
    where exists (
        select 1 from payments ip join channels ic on ic.id = ip.channel_id
        where ip.id = payment_methods.initial_payment_id and ic.mode <> 'live')
      and ${firstLive('id')} is not null`.execute(db);
}

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { migrate } from '../../src/adapters/storage/database.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { json, mit, payByCard } from '../stored-cards/support.js';

for (const dialect of DIALECTS) {
  describe(`migration 022 on cards stored again live before the agreement moved (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(() => t.close());

    it('gives such a card its first live payment as agreement, and leaves sandbox-only cards alone', async () => {
      const db = t.gateway.services.ctx.database.db;
      const sandboxOnly = await payByCard(t, { customer: 'cust-m022-sandbox' });
      const storedTwice = await payByCard(t, { customer: 'cust-m022-twice', number: '5555555555554444' });
      const token = storedTwice.payment_method.token as string;
      const later = json(await mit(t, { token, previous_payment_id: storedTwice.id, customer: 'cust-m022-twice' }));
      const latest = json(await mit(t, { token, previous_payment_id: storedTwice.id, customer: 'cust-m022-twice' }));
      // As such a card looked: its later payments went through a live channel, the agreement stayed.
      const { channel } = await t.gateway.services.merchants.createChannel(t.credentials.merchant_id, { reference: 'm022-live', name: 'Live Shop', mode: 'live', currencies: ['USD'], returnUrls: ['https://shop.example/return'], notifyEmails: [] });
      for (const [id, reference] of [[later.id, 'nr-m022-first-live'], [latest.id, 'nr-m022-second-live']] as const) {
        await db.updateTable('payments').set({ channel_id: channel.id, network_reference: reference }).where('id', '=', id).execute();
      }
      // Migrations run in order: 023 to 025 run again too and make their columns and tables anew.
      await db.schema.alterTable('secret_keys').dropColumn('mode').execute();
      await db.schema.alterTable('webhook_endpoints').dropColumn('mode').execute();
      await db.schema.dropTable('instalment_plans').execute();
      await db.schema.dropTable('mit_declines').execute();
      await db.deleteFrom('kysely_migration' as never).where(sql.ref('name'), '>=', '022').execute();

      assert.deepEqual((await migrate(db))[0], '022-live-agreements');
      const agreement = (id: string) => db.selectFrom('payment_methods').select(['initial_payment_id', 'initial_network_reference']).where('id', '=', id).executeTakeFirstOrThrow();
      assert.deepEqual(await agreement(token), { initial_payment_id: later.id, initial_network_reference: 'nr-m022-first-live' });
      assert.equal((await agreement(sandboxOnly.payment_method.token as string)).initial_payment_id, sandboxOnly.id);
      // And the card is now told live by its agreement: a sandbox channel refuses it.
      const res = await mit(t, { token, previous_payment_id: later.id, customer: 'cust-m022-twice' });
      assert.equal(res.statusCode, 422, res.body);
      assert.equal(json(res).code, 'payment_method_live_only');
    });
  });
}

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { migrate } from '../../src/adapters/storage/database.js';
import { DEFAULT_NOTIFY_EVENTS } from '../../src/app/merchants.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';

/** The list every channel was given when none was named, before migration 017. */
const OLD_DEFAULT = ['payment.captured', 'payment.authorised', 'payment.declined', 'payment.failed', 'payment.expired', 'payment.cancelled'];

for (const dialect of DIALECTS) {
  describe(`migration 017 on channels made before it (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(() => t.close());

    it("gives channels still on the old default today's, and leaves a chosen list alone", async () => {
      const m = t.gateway.services.merchants;
      const merchant = await m.createMerchant('Before 017');
      const base = { name: 'Shop', mode: 'sandbox' as const, currencies: ['USD'], returnUrls: ['/sandbox/return'], notifyEmails: ['ops@example.com'] };
      await m.createChannel(merchant.id, { ...base, reference: 'm017-default' });
      await m.createChannel(merchant.id, { ...base, reference: 'm017-chosen', notifyEvents: ['payment.captured'] });
      const db = t.gateway.services.ctx.database.db;
      await db.updateTable('channels').set({ notify_events: JSON.stringify(OLD_DEFAULT) }).where('reference', '=', 'm017-default').execute();
      // Migrations run in order: those after 017 run again too (018 and 019 add their columns anew).
      await db.schema.alterTable('channels').dropColumn('support_email').execute();
      await db.schema.alterTable('merchants').dropColumn('suspended_at').execute();
      await db.schema.alterTable('merchants').dropColumn('suspended_reason').execute();
      await db.schema.alterTable('secret_keys').dropColumn('mode').execute();
      await db.schema.alterTable('webhook_endpoints').dropColumn('mode').execute();
      await db.schema.dropTable('instalment_plans').execute();
      await db.schema.dropTable('mit_declines').execute();
      await db.deleteFrom('kysely_migration' as never).where(sql.ref('name'), '>=', '017').execute();

      assert.deepEqual((await migrate(db))[0], '017-notify-defaults');
      const events = async (reference: string) => JSON.parse((await db.selectFrom('channels').select('notify_events').where('reference', '=', reference).executeTakeFirstOrThrow()).notify_events) as string[];
      assert.deepEqual(await events('m017-default'), DEFAULT_NOTIFY_EVENTS);
      assert.ok((await events('m017-default')).includes('payment.capture_failed'));
      assert.deepEqual(await events('m017-chosen'), ['payment.captured']);
    });
  });
}

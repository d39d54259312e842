import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import pino from 'pino';
import { migrate } from '../../src/adapters/storage/database.js';
import { createGateway } from '../../src/server.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { authorisedPayment } from '../lifecycle/helpers.js';
import { registerEndpoint } from '../webhooks/support.js';

for (const dialect of DIALECTS) {
  describe(`migrations 014 and 015 on a database with payments (${dialect})`, () => {
    let t: TestGateway;
    let open = '';
    let finished = '';
    let endpoint = '';
    before(async () => {
      t = await startTestGateway({ dialect });
      finished = (await authorisedPayment(t, { reference: 'm015-finished' })).id;
      const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ reference: 'm015-open' }) });
      assert.equal(res.statusCode, 201, res.body);
      open = res.json<{ id: string }>().id;
      const db = t.gateway.services.ctx.database.db;
      endpoint = (await registerEndpoint(t, 'http://127.0.0.1:9/hooks')).id;
      // As a database from before 015 holds it: the finished payment's card kept, under an
      // id 014 has not registered yet.
      const card = await db.selectFrom('card_secrets').selectAll().where('payment_id', '=', open).executeTakeFirstOrThrow();
      await db.insertInto('card_secrets').values({ ...card, payment_id: finished, kek_id: 'before-014' }).execute();
      await db.schema.dropTable('vault_keys').execute();
      await db.schema.dropTable('hmac_key_check').execute();
      await db.schema.alterTable('channels').dropColumn('support_email').execute();
      await db.schema.alterTable('merchants').dropColumn('suspended_at').execute();
      await db.schema.alterTable('merchants').dropColumn('suspended_reason').execute();
      await db.schema.alterTable('secret_keys').dropColumn('mode').execute();
      await db.schema.alterTable('webhook_endpoints').dropColumn('mode').execute();
      await db.schema.dropTable('instalment_plans').execute();
      await db.schema.dropTable('mit_declines').execute();
      // Migrations run in order: those after 015 run again too (016 makes its table anew, 018 and 019 their columns).
      await db.deleteFrom('kysely_migration' as never).where(sql.ref('name'), '>=', '014').execute();
    });
    after(() => t.close());

    it('registers the key ids in use and erases the cards of finished payments only', async () => {
      const db = t.gateway.services.ctx.database.db;
      assert.deepEqual((await migrate(db)).slice(0, 3), ['014-vault-keys', '015-erase-finished-cards', '016-hmac-key-check']);
      const cards = await db.selectFrom('card_secrets').select('payment_id').execute();
      assert.deepEqual(cards.map((c) => c.payment_id), [open], 'the open page keeps its card, the finished payment none');
      const keys = await db.selectFrom('vault_keys').select(['kek_id', 'check_ct']).orderBy('kek_id').execute();
      const active = t.config.keks.active.id;
      assert.deepEqual(keys, [{ kek_id: active, check_ct: null }], "a finished payment's card, erased by 015, does not count");
    });

    it('leaves the secret keys made before 023 without a mode: they act on sandbox and live as before', async () => {
      const keys = await t.gateway.services.ctx.database.db.selectFrom('secret_keys').select('mode').execute();
      assert.deepEqual(keys, [{ mode: null }]);
      assert.equal((await t.request({ method: 'GET', url: `/payment/${open}` })).statusCode, 200, 'the sandbox key still works');
    });

    it('leaves the webhook endpoints registered before 024 taking both modes, as the keys that made them act on both', async () => {
      const rows = await t.gateway.services.ctx.database.db.selectFrom('webhook_endpoints').select(['id', 'mode']).execute();
      assert.deepEqual(rows, [{ id: endpoint, mode: null }]);
      assert.equal((await t.request({ method: 'GET', url: `/webhook-endpoints/${endpoint}` })).json().livemode, null);
    });

    it('lets a gateway start without the key of an id found by the migration under which nothing is sealed any more', async () => {
      const db = t.gateway.services.ctx.database.db;
      await db.insertInto('vault_keys').values({ kek_id: 'nothing-left', check_ct: null, created_at: 0 }).execute();
      await t.gateway.close();
      t.gateway.close = async () => {};
      const g = await createGateway(t.config, pino({ level: 'silent' }), { clock: t.clock });
      try {
        const keys = await g.services.ctx.database.db.selectFrom('vault_keys').select(['kek_id', 'check_ct']).execute();
        assert.deepEqual(keys.map((k) => k.kek_id), [t.config.keks.active.id]);
        assert.notEqual(keys[0]!.check_ct, null, 'the active id confirmed, its check value written');
      } finally {
        await g.close();
      }
    });
  });
}

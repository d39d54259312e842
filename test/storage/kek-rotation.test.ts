import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createGateway, type Gateway } from '../../src/server.js';
import { rotateKek } from '../../src/cli/rotate-kek.js';
import { Vault } from '../../src/adapters/vault/envelope.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { authorisedPayment } from '../lifecycle/helpers.js';

for (const dialect of DIALECTS) {
  describe(`KEK rotation in batches (${dialect})`, () => {
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    let t: TestGateway;
    let rotated: Gateway;
    const payments: string[] = [];
    before(async () => {
      t = await startTestGateway({ dialect, env: { VAULT_KEK: `k1:${k1.toString('base64')}`, HMAC_KEY: randomBytes(32).toString('base64') } });
      // Each stores its card too (the spec's example asks to), for a customer of its own, so
      // payment_methods has as many rows to re-wrap.
      for (let i = 0; i < 7; i++) {
        const customer = { reference: `rotate-customer-${i}`, email: 'customer@example.com', name: 'customer name', phone: '12' };
        payments.push((await authorisedPayment(t, { reference: `rotate-${i}`, customer })).id);
      }
      await t.gateway.close();
      t.gateway.close = async () => {};
      const keks = { active: { id: 'k2', key: k2 }, all: new Map([['k1', k1], ['k2', k2]]) };
      rotated = await createGateway({ ...t.config, keks }, pino({ level: 'silent' }), { clock: t.clock });
    });
    after(async () => {
      await rotated.close();
      await t.close();
    });

    it('re-wraps every card and stored card across batches smaller than the table, and each then opens under the new KEK alone', async () => {
      const db = rotated.services.ctx.database.db;
      const methods = await db.selectFrom('payment_methods').select(['id']).execute();
      assert.equal(methods.length, payments.length, 'one stored card per customer');
      const count = await rotateKek(rotated.services, 3);
      assert.ok(count >= payments.length + methods.length, `${count} re-wrapped`);
      const onlyK2 = new Vault({ active: { id: 'k2', key: k2 }, all: new Map([['k2', k2]]) }, randomBytes(32));
      const cards = await db.selectFrom('card_secrets').selectAll().execute();
      assert.deepEqual(new Set(cards.map((c) => c.payment_id)), new Set(payments));
      for (const c of cards) {
        assert.equal(c.kek_id, 'k2');
        assert.match(onlyK2.openCard(c.payment_id, c).pan, /^\d{12,19}$/);
      }
      const stored = await db.selectFrom('payment_methods').select(['id', 'kek_id', 'wrapped_dek']).execute();
      for (const m of stored) assert.equal(m.kek_id, 'k2', m.id);
      assert.equal(await rotateKek(rotated.services, 3), 0, 'a second run finds nothing left to re-wrap');
    });
  });
}

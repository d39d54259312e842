import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createGateway, type Gateway } from '../../src/server.js';
import { rotateKek } from '../../src/cli/rotate-kek.js';
import { Vault } from '../../src/adapters/vault/envelope.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { ConfigError, loadConfig } from '../../src/config.js';
import { authorisedPayment } from '../lifecycle/helpers.js';

for (const dialect of DIALECTS) {
  describe(`KEK rotation in batches (${dialect})`, () => {
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    let t: TestGateway;
    let rotated: Gateway;
    const payments: string[] = [];
    /** Authorised with an Idempotency-Key and left on its page: a card and a stored response to re-wrap. */
    let keptPayment = '';
    before(async () => {
      t = await startTestGateway({ dialect, env: { VAULT_KEK: `k1:${k1.toString('base64')}`, HMAC_KEY: randomBytes(32).toString('base64') } });
      // Each stores its card too (the spec's example asks to), for a customer of its own, so
      // payment_methods has as many rows to re-wrap.
      for (let i = 0; i < 7; i++) {
        const customer = { reference: `rotate-customer-${i}`, email: 'customer@example.com', name: 'customer name', phone: '12' };
        payments.push((await authorisedPayment(t, { reference: `rotate-${i}`, customer })).id);
      }
      // A response kept for Idempotency-Key replays is sealed too.
      const kept = await t.request({ method: 'POST', url: '/payment/authorise', headers: { 'idempotency-key': 'rotate-replay' }, payload: await exampleBody() });
      assert.equal(kept.statusCode, 201, kept.body);
      keptPayment = kept.json<{ id: string }>().id;
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
      assert.deepEqual(new Set(cards.map((c) => c.payment_id)), new Set([...payments, keptPayment]));
      for (const c of cards) {
        assert.equal(c.kek_id, 'k2');
        assert.match(onlyK2.openCard(c.payment_id, c).pan, /^\d{12,19}$/);
      }
      const stored = await db.selectFrom('payment_methods').select(['id', 'kek_id', 'wrapped_dek']).execute();
      for (const m of stored) assert.equal(m.kek_id, 'k2', m.id);
      const responses = await db.selectFrom('idempotency_keys').select(['merchant_id', 'key', 'response_body']).execute();
      assert.equal(responses.length, 1);
      for (const r of responses) assert.match(JSON.parse(onlyK2.openString(`idempotency:${r.merchant_id}:${r.key}`, r.response_body)).id, /^pay_/);
      assert.equal(await rotateKek(rotated.services, 3), 0, 'a second run finds nothing left to re-wrap');
    });
  });
}

describe('key-encrypting key configuration', () => {
  it('refuses an old key with the id of the active one or of another old key', () => {
    const key = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;
    const env = { DATA_DIR: '/tmp/unused', HMAC_KEY: randomBytes(32).toString('base64') };
    assert.throws(() => loadConfig({ ...env, VAULT_KEK: key('k2'), VAULT_OLD_KEKS: key('k2') }), ConfigError);
    assert.throws(() => loadConfig({ ...env, VAULT_KEK: key('k3'), VAULT_OLD_KEKS: `${key('k1')},${key('k1')}` }), ConfigError);
    assert.equal(loadConfig({ ...env, VAULT_KEK: key('k2'), VAULT_OLD_KEKS: key('k1') }).keks.all.size, 2);
  });
});

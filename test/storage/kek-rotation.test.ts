import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createGateway, type Gateway } from '../../src/server.js';
import { rotateKek } from '../../src/cli/rotate-kek.js';
import { Vault } from '../../src/adapters/vault/envelope.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { type Config, ConfigError, loadConfig } from '../../src/config.js';
import { authorisedPayment } from '../lifecycle/helpers.js';
import { registerEndpoint } from '../webhooks/support.js';
import type { Kysely } from 'kysely';
import { up as createVaultKeys } from '../../src/adapters/storage/migrations/014-vault-keys.js';
import { dateDaysAgo, expectStatus, upload } from '../compliance/fixtures.js';

for (const dialect of DIALECTS) {
  describe(`KEK rotation in batches (${dialect})`, () => {
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    let t: TestGateway;
    let rotated: Gateway;
    /** Payments left on their pages, whose cards (kept only until the page ends) are re-wrapped. */
    const payments: string[] = [];
    /** Authorised with an Idempotency-Key and left on its page: a card and a stored response to re-wrap. */
    let keptPayment = '';
    before(async () => {
      t = await startTestGateway({ dialect, env: { VAULT_KEK: `k1:${k1.toString('base64')}`, HMAC_KEY: randomBytes(32).toString('base64') } });
      // Each stores its card too (the spec's example asks to), for a customer of its own, so
      // payment_methods has as many rows to re-wrap.
      for (let i = 0; i < 7; i++) {
        const customer = { reference: `rotate-customer-${i}`, email: 'customer@example.com', name: 'customer name', phone: '12' };
        await authorisedPayment(t, { reference: `rotate-${i}`, customer });
        const open = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ reference: `rotate-open-${i}` }) });
        assert.equal(open.statusCode, 201, open.body);
        payments.push(open.json<{ id: string }>().id);
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
  it('refuses a LOG_LEVEL pino does not know, naming it', () => {
    const env = { DATA_DIR: '/tmp/unused', VAULT_KEK: `k1:${randomBytes(32).toString('base64')}`, HMAC_KEY: randomBytes(32).toString('base64') };
    assert.throws(() => loadConfig({ ...env, LOG_LEVEL: 'verbose' }), (e: Error) => e instanceof ConfigError && /LOG_LEVEL must be one of .*"verbose"/.test(e.message));
    assert.equal(loadConfig({ ...env, LOG_LEVEL: 'warn' }).logLevel, 'warn');
  });

  it('refuses an old key with the id of the active one or of another old key', () => {
    const key = (id: string) => `${id}:${randomBytes(32).toString('base64')}`;
    const env = { DATA_DIR: '/tmp/unused', HMAC_KEY: randomBytes(32).toString('base64') };
    assert.throws(() => loadConfig({ ...env, VAULT_KEK: key('k2'), VAULT_OLD_KEKS: key('k2') }), ConfigError);
    assert.throws(() => loadConfig({ ...env, VAULT_KEK: key('k3'), VAULT_OLD_KEKS: `${key('k1')},${key('k1')}` }), ConfigError);
    assert.equal(loadConfig({ ...env, VAULT_KEK: key('k2'), VAULT_OLD_KEKS: key('k1') }).keks.all.size, 2);
  });
});

for (const dialect of DIALECTS) {
  describe(`key-encrypting keys checked at boot (${dialect})`, () => {
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    let t: TestGateway;
    /** A gateway over the same database with these keys; closed again at once if it starts. */
    const boot = async (keks: Config['keks']) => {
      const g = await createGateway({ ...t.config, keks }, pino({ level: 'silent' }), { clock: t.clock });
      await g.close();
    };
    const onlyK1 = { active: { id: 'k1', key: k1 }, all: new Map([['k1', k1]]) };
    before(async () => {
      t = await startTestGateway({ dialect, env: { VAULT_KEK: `k1:${k1.toString('base64')}`, HMAC_KEY: randomBytes(32).toString('base64') } });
      // Something sealed in every table that keeps a key id: a card (of a payment still on its
      // page), a stored card, a compliance document, the sandbox channel's return secret and a
      // webhook secret.
      await authorisedPayment(t, { reference: 'boot-check', customer: { reference: 'boot-customer', email: 'customer@example.com', name: 'customer name', phone: '12' } });
      assert.equal((await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ reference: 'boot-check-open' }) })).statusCode, 201);
      await registerEndpoint(t, 'http://127.0.0.1:9/hooks');
      await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 3) }), 201);
      await t.gateway.close();
      t.gateway.close = async () => {};
    });
    after(() => t.close());

    it('refuses to start without a key id the database holds, naming it', async () => {
      await assert.rejects(boot({ active: { id: 'k2', key: k2 }, all: new Map([['k2', k2]]) }), (error: Error) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.match(error.message, /"k1"/);
        assert.match(error.message, /VAULT_OLD_KEKS/);
        return true;
      });
    });

    it('refuses a key whose configured bytes do not open what it wrapped, naming it', async () => {
      const wrongK1 = randomBytes(32);
      await assert.rejects(boot({ active: { id: 'k2', key: k2 }, all: new Map([['k2', k2], ['k1', wrongK1]]) }), (error: Error) => {
        assert.ok(error instanceof ConfigError, String(error));
        assert.match(error.message, /"k1"/);
        assert.match(error.message, /cannot open/);
        assert.doesNotMatch(error.message, /"k2"/, 'k2 wraps nothing yet: there is nothing to find wrong with it');
        return true;
      });
    });

    it('starts with the key the data was sealed under, active or old', async () => {
      // The refused boots above left no key id of theirs behind.
      await boot(onlyK1);
      await boot({ active: { id: 'k2', key: k2 }, all: new Map([['k2', k2], ['k1', k1]]) });
    });

    it('refuses a gateway, or an operator command, with another HMAC_KEY than the database is used with', async () => {
      const other = randomBytes(32);
      // The boots above registered k2: both keys are needed from now on.
      const bothKeys = { active: { id: 'k2', key: k2 }, all: new Map([['k2', k2], ['k1', k1]]) };
      for (const registerKek of [true, false]) {
        await assert.rejects(
          createGateway({ ...t.config, keks: bothKeys, hmacKey: other }, pino({ level: 'silent' }), { clock: t.clock, registerKek }).then((g) => g.close()),
          (error: Error) => {
            assert.ok(error instanceof ConfigError, String(error));
            assert.match(error.message, /^HMAC_KEY is not the key this database is used with/);
            assert.ok(!error.message.includes(other.toString('base64')) && !error.message.includes(t.config.hmacKey.toString('base64')), 'no key in the message');
            return true;
          },
        );
      }
      await boot(bothKeys);
    });

    it('registers the HMAC_KEY of the first gateway to boot on a database from before the check', async () => {
      const bothKeys = { active: { id: 'k2', key: k2 }, all: new Map([['k2', k2], ['k1', k1]]) };
      const g = await createGateway({ ...t.config, keks: bothKeys }, pino({ level: 'silent' }), { clock: t.clock });
      try {
        const row = await g.services.ctx.database.db.selectFrom('hmac_key_check').selectAll().execute();
        assert.equal(row.length, 1);
        assert.match(row[0]!.check_value, /^[0-9a-f]{64}$/);
        assert.ok(!row[0]!.check_value.includes(t.config.hmacKey.toString('hex')), 'a value derived from the key, not the key');
        await g.services.ctx.database.db.deleteFrom('hmac_key_check').execute();
      } finally {
        await g.close();
      }
      await boot(bothKeys);
      await assert.rejects(createGateway({ ...t.config, keks: bothKeys, hmacKey: randomBytes(32) }, pino({ level: 'silent' }), { clock: t.clock }).then((x) => x.close()), /HMAC_KEY/);
    });

    it('finds the key ids already in use in every table when the registry is first made', async () => {
      const g = await createGateway({ ...t.config, keks: { active: { id: 'k1', key: k1 }, all: new Map([['k1', k1], ['k2', k2]]) } }, pino({ level: 'silent' }), { clock: t.clock });
      try {
        const db = g.services.ctx.database.db;
        await db.updateTable('card_secrets').set({ kek_id: 'card-kek' }).execute();
        await db.updateTable('payment_methods').set({ kek_id: 'stored-kek' }).execute();
        await db.updateTable('compliance_documents').set({ kek_id: 'doc-kek' }).execute();
        const swap = (id: string, packed: string) => `${id}${packed.slice(packed.indexOf('|'))}`;
        for (const c of await db.selectFrom('channels').select(['id', 'return_secret_ct']).execute()) {
          await db.updateTable('channels').set({ return_secret_ct: swap('channel-kek', c.return_secret_ct) }).where('id', '=', c.id).execute();
        }
        for (const w of await db.selectFrom('webhook_endpoints').select(['id', 'secret_ct']).execute()) {
          await db.updateTable('webhook_endpoints').set({ secret_ct: swap('webhook-kek', w.secret_ct) }).where('id', '=', w.id).execute();
        }
        // A database from before the registry: migration 014 makes it from what is stored.
        await db.schema.dropTable('vault_keys').execute();
        await createVaultKeys(db as unknown as Kysely<unknown>);
      } finally {
        await g.close();
      }
      await assert.rejects(boot(onlyK1), (error: Error) => {
        assert.ok(error instanceof ConfigError, String(error));
        for (const id of ['card-kek', 'stored-kek', 'doc-kek', 'channel-kek', 'webhook-kek']) assert.match(error.message, new RegExp(`"${id}"`));
        assert.doesNotMatch(error.message, /"k1"/, 'nothing is sealed under k1 any more');
        return true;
      });
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`a gateway refused at boot for its HMAC_KEY (${dialect})`, () => {
    it('leaves behind no vault key id of its own, so the gateways configured as before still start', async () => {
      const k1 = randomBytes(32);
      const t = await startTestGateway({ dialect, env: { VAULT_KEK: `k1:${k1.toString('base64')}`, HMAC_KEY: randomBytes(32).toString('base64') } });
      try {
        await t.gateway.close();
        t.gateway.close = async () => {};
        // A rotation's first step (a new active key, the old one kept) with a mistyped HMAC_KEY.
        const rotating = { active: { id: 'k2', key: randomBytes(32) }, all: new Map([['k1', k1]]) };
        rotating.all.set('k2', rotating.active.key);
        await assert.rejects(createGateway({ ...t.config, keks: rotating, hmacKey: randomBytes(32) }, pino({ level: 'silent' }), { clock: t.clock }).then((g) => g.close()), (error: Error) => error instanceof ConfigError && error.message.startsWith('HMAC_KEY is not the key'));
        const g = await createGateway(t.config, pino({ level: 'silent' }), { clock: t.clock });
        try {
          const ids = await g.services.ctx.database.db.selectFrom('vault_keys').select('kek_id').execute();
          assert.deepEqual(ids.map((r) => r.kek_id), ['k1']);
        } finally {
          await g.close();
        }
      } finally {
        await t.close();
      }
    });
  });
}

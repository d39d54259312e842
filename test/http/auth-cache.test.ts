import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import type { CompiledQuery, QueryResult } from 'kysely';
import { LookupCache } from '../../src/app/lookup-cache.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, createMerchant, postAuthorise } from '../support/http.js';
import { runCli } from '../support/process.js';
import { eventually } from '../support/browser.js';

const randomKey = () => 'sk_' + randomBytes(16).toString('hex');

/**
 * The secret-key and channel lookups answer from memory (src/app/lookup-cache.ts), yet
 * a change made by another process (the operator CLI) applies from the next request on.
 */
for (const dialect of DIALECTS) {
  describe(`key and channel lookups from memory (${dialect})`, () => {
    let t: TestGateway;
    let cache: LookupCache;

    before(async () => {
      t = await startTestGateway({ dialect });
      cache = LookupCache.of(t.gateway.services.ctx);
      // On PostgreSQL the cache is bypassed until its listener is in place.
      await cache.start();
    });
    after(() => t?.close());

    /** Runs the operator CLI as its own process against the gateway's database. */
    const cli = async (...args: string[]) => {
      const env: Record<string, string> = { DATA_DIR: t.dataDir, LOG_LEVEL: 'silent' };
      if (t.config.databaseUrl) env.DATABASE_URL = t.config.databaseUrl;
      const r = await runCli([...args, '--json'], env);
      assert.equal(r.code, 0, `cli ${args.join(' ')} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      return JSON.parse(r.stdout) as Record<string, string>;
    };

    /** The compiled-once queries (key by hash, channel by reference) the gateway ran while `fn` did. */
    async function lookupsDuring(fn: () => Promise<unknown>): Promise<{ keys: number; channels: number }> {
      const db = t.gateway.services.ctx.database.db;
      const original = db.executeQuery;
      const seen: string[] = [];
      db.executeQuery = function (this: typeof db, query: CompiledQuery) {
        seen.push(query.sql);
        return original.call(this, query) as Promise<QueryResult<never>>;
      } as typeof db.executeQuery;
      try {
        await fn();
      } finally {
        db.executeQuery = original;
      }
      return { keys: seen.filter((s) => /from "secret_keys"/.test(s)).length, channels: seen.filter((s) => /from "channels"/.test(s)).length };
    }

    /**
     * The lookups of `fn` once the cache holds what it reads. On PostgreSQL the notification
     * of a write the test just made (a key, a channel) may still be on its way and empty the
     * cache once, and on a busy machine a heartbeat answered late has it bypassed for a
     * moment: a few tries, and a cache that never answers from memory still fails.
     */
    async function warmLookups(fn: () => Promise<unknown>): Promise<{ keys: number; channels: number }> {
      let seen = await lookupsDuring(fn);
      for (let i = 1; i < 5 && seen.keys + seen.channels > 0; i++) seen = await lookupsDuring(fn);
      return seen;
    }

    const authorise = async (key: string, overrides: Record<string, unknown> = {}) => postAuthorise(t, await exampleBody(overrides), { 'x-secret-key': key });

    it('answers a known key and its channel without a query, and queries again once emptied', async () => {
      assert.equal((await authorise(t.credentials.secret_key)).statusCode, 201);
      const warm = await warmLookups(async () => assert.equal((await authorise(t.credentials.secret_key)).statusCode, 201));
      assert.deepEqual(warm, { keys: 0, channels: 0 });
      cache.drop();
      const cold = await lookupsDuring(async () => assert.equal((await authorise(t.credentials.secret_key)).statusCode, 201));
      assert.deepEqual(cold, { keys: 1, channels: 1 });
    });

    it('a key revoked by the CLI process gets 401 on the next request', async () => {
      const created = await cli('key', 'create', '--merchant', t.credentials.merchant_id, '--label', 'revoked by another process');
      assert.equal((await authorise(created.secret_key!)).statusCode, 201);
      const warm = await warmLookups(async () => assert.equal((await authorise(created.secret_key!)).statusCode, 201));
      assert.equal(warm.keys, 0, 'the key was not served from memory');

      await cli('key', 'revoke', created.id!);
      assertProblem(await authorise(created.secret_key!), 401, 'unauthorized');
      assert.equal((await authorise(t.credentials.secret_key)).statusCode, 201, 'the other key stopped working');
    });

    it('currencies and return URLs changed by the CLI process apply on the next request', async () => {
      const shop = await createMerchant(t, `cache-shop-${dialect}`, { currencies: ['USD', 'EUR'], returnUrls: ['https://shop.example/return'] });
      const channel = shop.channel.reference;
      const old = { channel, currency: 'USD', return_url: 'https://shop.example/return' };
      assert.equal((await authorise(shop.key.secret_key, old)).statusCode, 201);
      const warm = await warmLookups(async () => assert.equal((await authorise(shop.key.secret_key, old)).statusCode, 201));
      assert.deepEqual(warm, { keys: 0, channels: 0 });

      await cli('channel', 'update', channel, '--currency', 'EUR', '--return-url', 'https://shop.example/new-return');
      assertProblem(await authorise(shop.key.secret_key, old), 422, 'currency_not_allowed', '/currency');
      const oldUrl = assertProblem(await authorise(shop.key.secret_key, { ...old, currency: 'EUR' }), 400);
      assert.match(oldUrl.errors?.map((e) => e.code).join() ?? '', /return_url_not_registered/);
      assert.equal((await authorise(shop.key.secret_key, { ...old, currency: 'EUR', return_url: 'https://shop.example/new-return' })).statusCode, 201);
    });

    it('a payment\'s channel by id comes from memory, and a CLI change reaches it (the hosted page\'s return URLs)', async () => {
      const shop = await createMerchant(t, `cache-byid-${dialect}`, { currencies: ['USD'], returnUrls: ['https://shop.example/return'] });
      const id = shop.channel.id;
      assert.deepEqual(JSON.parse((await cache.channelById(id)).return_urls), ['https://shop.example/return']);
      assert.equal((await warmLookups(() => cache.channelById(id))).channels, 0, 'the channel was not served from memory');

      await cli('channel', 'update', shop.channel.reference, '--return-url', 'https://shop.example/moved');
      assert.deepEqual(JSON.parse((await cache.channelById(id)).return_urls), ['https://shop.example/moved']);
      await assert.rejects(cache.channelById('ch_00000000000000000000000000000000'), /does not exist/);
    });

    it('a channel updated in this process applies on the next request', async () => {
      const shop = await createMerchant(t, `cache-local-${dialect}`, { currencies: ['USD'] });
      const body = { channel: shop.channel.reference, currency: 'USD', return_url: 'https://shop.example/return' };
      assert.equal((await authorise(shop.key.secret_key, body)).statusCode, 201);
      await t.gateway.services.merchants.updateChannel(shop.channel.reference, { currencies: ['GBP'] });
      assertProblem(await authorise(shop.key.secret_key, body), 422, 'currency_not_allowed');
      assert.equal((await authorise(shop.key.secret_key, { ...body, currency: 'GBP' })).statusCode, 201);
    });

    it('a lookup in flight while its key is revoked does not put the old row back', async () => {
      const merchants = t.gateway.services.merchants;
      const key = await merchants.createSecretKey(t.credentials.merchant_id, 'revoked mid-lookup');
      const db = t.gateway.services.ctx.database.db;
      const original = db.executeQuery;
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let read!: () => void;
      const rowRead = new Promise<void>((r) => (read = r));
      // The lookup reads the still-active row, then waits until the revocation is done.
      db.executeQuery = async function (this: typeof db, query: CompiledQuery) {
        const result = await original.call(this, query);
        if (/from "secret_keys"/.test(query.sql)) {
          read();
          await gate;
        }
        return result as QueryResult<never>;
      } as typeof db.executeQuery;
      let inFlight: ReturnType<typeof merchants.authenticate>;
      try {
        inFlight = merchants.authenticate(key.secret_key);
        await rowRead;
      } finally {
        db.executeQuery = original;
      }
      await merchants.revokeSecretKey(key.id);
      release();
      assert.equal((await inFlight)?.keyId, key.id, 'the lookup began before the revocation');
      assert.equal(await merchants.authenticate(key.secret_key), null);
    });

    it("looks another merchant's channel up exactly as a missing one, though its owner's requests keep it in memory", async () => {
      const other = await createMerchant(t, 'cache-prober');
      // The sandbox merchant's own payment keeps its channel in memory.
      assert.equal((await authorise(t.credentials.secret_key)).statusCode, 201);
      assert.equal((await authorise(other.key.secret_key, { channel: 'cache-prober' })).statusCode, 201);
      const foreign = await lookupsDuring(async () => assertProblem(await authorise(other.key.secret_key, { channel: 'sandbox' }), 404, 'channel_not_found'));
      const missing = await lookupsDuring(async () => assertProblem(await authorise(other.key.secret_key, { channel: 'no-such-channel' }), 404, 'channel_not_found'));
      assert.deepEqual(foreign, missing, "another merchant's channel reference answered from memory, faster than a missing one: its existence shows in the timing");
    });

    it('a spray of unknown keys stays within its cap and does not push out keys in use', async () => {
      const merchants = t.gateway.services.merchants;
      if (dialect === 'postgres') {
        // Notifications of earlier tests' changes may still be on their way and would empty
        // the cache mid-spray. They arrive in commit order: once one sent now has emptied the
        // cache, none are left.
        assert.ok(await merchants.authenticate(t.credentials.secret_key));
        const admin = new pg.Client({ connectionString: t.config.databaseUrl });
        await admin.connect();
        try {
          await admin.query(`select pg_notify('config_changed', 'test')`);
        } finally {
          await admin.end();
        }
        await eventually(() => Promise.resolve(cache.sizes().activeKeys === 0), 'the test notification to empty the cache');
      }
      assert.ok(await merchants.authenticate(t.credentials.secret_key));
      for (let i = 0; i < 2_500; i++) assert.equal(await merchants.authenticate(randomKey()), null);
      const sizes = cache.sizes();
      assert.equal(sizes.rejectedKeys, 1_000);
      assert.ok(sizes.activeKeys >= 1);
      const after = await lookupsDuring(async () => assert.ok(await merchants.authenticate(t.credentials.secret_key)));
      assert.equal(after.keys, 0, 'the key in use was pushed out');
    });

    if (dialect === 'postgres') {
      it('after losing its listener the cache goes to the database, listens again and sees the next change', async () => {
        const key = await t.gateway.services.merchants.createSecretKey(t.credentials.merchant_id, 'listener test');
        assert.equal((await authorise(key.secret_key)).statusCode, 201);
        const admin = new pg.Client({ connectionString: t.config.databaseUrl });
        await admin.connect();
        try {
          const killed = await admin.query(
            `select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and query in ('listen config_changed', 'select 1')`,
          );
          assert.equal(killed.rowCount, 1, 'one listener');
        } finally {
          await admin.end();
        }
        await eventually(async () => (await lookupsDuring(() => authorise(key.secret_key))).keys === 1, 'lookups to bypass the cache');
        await eventually(async () => {
          await authorise(key.secret_key);
          return (await lookupsDuring(() => authorise(key.secret_key))).keys === 0;
        }, 'the cache to listen again');

        await cli('key', 'revoke', key.id);
        assertProblem(await authorise(key.secret_key), 401, 'unauthorized');
      });
    }
  });
}

if (DIALECTS.includes('postgres')) {
  describe('a PostgreSQL listener closed while it connects (postgres)', () => {
    it('lets the gateway close', async () => {
      const t = await startTestGateway({ dialect: 'postgres' });
      // pg never settles a connect that end() interrupts: closing must not wait for it.
      const starting = LookupCache.of(t.gateway.services.ctx).start();
      await t.close();
      assert.equal(await starting, undefined);
    });
  });

  describe('a PostgreSQL listener whose connection dies without a word (postgres)', () => {
    it('stops serving keys from memory within about a second and a half, so a key revoked elsewhere fails', async () => {
      const t = await startTestGateway({ dialect: 'postgres' });
      const admin = new pg.Client({ connectionString: t.config.databaseUrl });
      try {
        const { merchants, ctx } = t.gateway.services;
        const cache = LookupCache.of(ctx);
        await cache.start();
        const key = await merchants.createSecretKey(t.credentials.merchant_id, 'silent listener');
        // Held in memory once the key's own notification has come and gone.
        await eventually(async () => (await merchants.authenticate(key.secret_key)) && cache.sizes().activeKeys > 0, 'the key to be cached');
        // The listener's socket stops delivering anything (notifications, answers) and raises
        // nothing, as when a firewall or NAT drops an idle connection without FIN or RST.
        const listener = (cache as unknown as { watch: { client: { connection: { stream: { pause(): void } } } } }).watch.client;
        listener.connection.stream.pause();
        await admin.connect();
        await admin.query('update secret_keys set revoked_at = 1 where id = $1', [key.id]);
        const revokedAt = Date.now();
        await eventually(async () => !(await merchants.authenticate(key.secret_key)), 'the revoked key to fail');
        // Before, the cache trusted a silent listener for up to two 5 s heartbeats.
        assert.ok(Date.now() - revokedAt < 4_000, `the revoked key was accepted for ${Date.now() - revokedAt} ms`);
      } finally {
        await admin.end().catch(() => {});
        await t.close();
      }
    });
  });
}

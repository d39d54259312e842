import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { LookupCache } from '../../src/app/lookup-cache.js';
import { Dispatcher } from '../../src/workers/dispatcher.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { registerEndpoint, waitFor } from './support.js';

/**
 * Events that no endpoint and no e-mail rule can take are written already dispatched
 * (src/app/event-interest.ts); these tests hold that decision to the endpoints and
 * channel rules in force, whoever changes them.
 */
/**
 * The outbox decides from the cache without waiting for it: load what the next event is
 * decided with, and let the change just made reach the cache first (SQLite reads the
 * config counter once per event-loop turn, PostgreSQL's notification arrives after the
 * write), so it does not empty the cache again behind the test's back.
 */
async function warmCache(t: TestGateway): Promise<void> {
  const cache = LookupCache.of(t.gateway.services.ctx);
  await cache.start();
  const channelId = (await t.gateway.services.ctx.database.db.selectFrom('channels').select('id').where('merchant_id', '=', t.credentials.merchant_id).executeTakeFirstOrThrow()).id;
  await waitFor('the cache to hold the endpoints and the channel', async () => {
    await cache.endpoints(t.credentials.merchant_id);
    await cache.channelById(channelId);
    await new Promise((r) => setTimeout(r, 50));
    return cache.cachedEndpoints(t.credentials.merchant_id) !== undefined && cache.cachedChannelById(channelId) !== undefined;
  });
}

for (const dialect of DIALECTS) {
  describe(`events nobody can take skip the fan-out (${dialect})`, () => {
    let t: TestGateway;
    let dispatcher: Dispatcher;
    before(async () => {
      t = await startTestGateway({ dialect });
      // Only its fan-out is used: stopped, it neither wakes up on requests nor sends.
      dispatcher = new Dispatcher(t.gateway.services);
      await dispatcher.stop();
    });
    after(() => t.close());

    const db = () => t.gateway.services.ctx.database.db;
    const cache = () => LookupCache.of(t.gateway.services.ctx);
    const warm = () => warmCache(t);
    /** Authorises a payment and answers its payment.created event's row and deliveries. */
    const authorise = async () => {
      const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody() });
      assert.equal(res.statusCode, 201, res.body);
      const paymentId = (res.json() as { id: string }).id;
      const event = await db().selectFrom('events').select(['id', 'dispatched']).where('payment_id', '=', paymentId).executeTakeFirstOrThrow();
      return { ...event, deliveries: async () => db().selectFrom('deliveries').select(['target']).where('event_id', '=', event.id).execute() };
    };

    it('writes an event no endpoint or e-mail rule takes as dispatched, and the fan-out creates nothing for it', async () => {
      await warm();
      const event = await authorise();
      assert.equal(event.dispatched, 1);
      await dispatcher.fanOut('test');
      assert.deepEqual(await event.deliveries(), []);
    });

    it('writes an event an endpoint registered through the API takes as undispatched, even before the cache has its endpoints', async () => {
      const endpoint = await registerEndpoint(t, 'http://127.0.0.1:9/hooks', { events: ['payment.created'] });
      const cold = await authorise();
      assert.equal(cold.dispatched, 0, 'an event decided without the endpoints cached is fanned out');
      await warm();
      const warmed = await authorise();
      assert.equal(warmed.dispatched, 0);
      await dispatcher.fanOut('test');
      assert.deepEqual(await warmed.deliveries(), [{ target: endpoint.id }]);

      const patched = await t.request({ method: 'PATCH', url: `/webhook-endpoints/${endpoint.id}`, payload: { events: ['payment.captured'] } });
      assert.equal(patched.statusCode, 200, patched.body);
      await warm();
      assert.equal((await authorise()).dispatched, 1, 'the endpoint no longer takes payment.created');
    });

    it('sees an endpoint enabled by another process (a write that bypasses this gateway) before the next event', async () => {
      const endpoint = await registerEndpoint(t, 'http://127.0.0.1:9/other', { events: ['*'] });
      const disabled = await t.request({ method: 'PATCH', url: `/webhook-endpoints/${endpoint.id}`, payload: { status: 'disabled' } });
      assert.equal(disabled.statusCode, 200, disabled.body);
      await warm();
      assert.equal((await authorise()).dispatched, 1, 'no enabled endpoint takes the event');

      // Migration 012's trigger moves the config counter (and notifies, on PostgreSQL).
      await sql`update webhook_endpoints set status = 'enabled' where id = ${endpoint.id}`.execute(db());
      await waitFor('the cache to forget the endpoints', () => cache().cachedEndpoints(t.credentials.merchant_id) === undefined, 10_000);
      await warm();
      const event = await authorise();
      assert.equal(event.dispatched, 0);
      await dispatcher.fanOut('test');
      assert.deepEqual(await event.deliveries(), [{ target: endpoint.id }]);
    });

    it('answers several merchants\' endpoints at once, the cached from memory, and keeps the ones it read', async () => {
      await warm();
      const mine = cache().cachedEndpoints(t.credentials.merchant_id)!;
      const found = await cache().endpointsOf([t.credentials.merchant_id, 'mer_nobody1', 'mer_nobody2']);
      assert.equal(found.get(t.credentials.merchant_id), mine, 'a cached merchant comes from memory');
      assert.deepEqual([found.get('mer_nobody1'), found.get('mer_nobody2')], [[], []]);
      assert.equal(cache().cachedEndpoints('mer_nobody1'), found.get('mer_nobody1'), 'a merchant read is kept');
    });

    it('fans out an event the channel e-mails the merchant about', async () => {
      const deleted = await db().selectFrom('webhook_endpoints').select('id').where('merchant_id', '=', t.credentials.merchant_id).where('deleted_at', 'is', null).execute();
      for (const { id } of deleted) assert.equal((await t.request({ method: 'DELETE', url: `/webhook-endpoints/${id}` })).statusCode, 200);
      await warm();
      assert.equal((await authorise()).dispatched, 1);

      await sql`update channels set notify_emails = ${JSON.stringify(['ops@merchant.example'])}, notify_events = ${JSON.stringify(['payment.created'])} where merchant_id = ${t.credentials.merchant_id}`.execute(db());
      await waitFor('the cache to forget the channel', () => cache().cachedEndpoints(t.credentials.merchant_id) === undefined, 10_000);
      await warm();
      const event = await authorise();
      assert.equal(event.dispatched, 0);
      await dispatcher.fanOut('test');
      assert.deepEqual(await event.deliveries(), [{ target: 'notification:ops@merchant.example' }]);
    });

    it('counts the 72-hour retry window from when a delivery is queued, not from when its event was written', async () => {
      const endpoint = await registerEndpoint(t, 'http://127.0.0.1:9/hooks/late', { events: ['payment.created'] });
      try {
        const event = await authorise();
        assert.equal(event.dispatched, 0);
        // The gateway's own backlog or outage does not spend the merchant's retries.
        t.clock.advance(80 * 3_600_000);
        const queuedAt = t.clock.now();
        await dispatcher.fanOut('test');
        const delivery = await db().selectFrom('deliveries').select(['next_attempt_at', 'retry_until']).where('event_id', '=', event.id).where('target', '=', endpoint.id).executeTakeFirstOrThrow();
        assert.equal(Number(delivery.next_attempt_at), queuedAt);
        assert.equal(Number(delivery.retry_until), queuedAt + 72 * 3_600_000);
      } finally {
        await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.id}` });
      }
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`the outbox bell after requests (${dialect})`, () => {
    it('rings after a request only when an event that needs the fan-out was written', async () => {
      const t = await startTestGateway({ dialect });
      try {
        let rings = 0;
        t.gateway.services.outbox.subscribe(() => rings++);
        await warmCache(t);
        const authorise = async () => {
          assert.equal((await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody() })).statusCode, 201);
          // The bell rings once the answer is written (setImmediate after onSend).
          await new Promise((r) => setImmediate(r));
        };

        await authorise();
        assert.equal(rings, 0, 'nobody takes payment.created: nothing for a pass to find');
        await registerEndpoint(t, 'http://127.0.0.1:9/hooks', { events: ['payment.created'] });
        const before = rings;
        await authorise();
        assert.ok(rings > before, 'the event needs the fan-out: the request rings');
      } finally {
        await t.close();
      }
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`events of a mode no endpoint takes skip the fan-out (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(() => t.close());

    it("writes a sandbox payment's event as dispatched when only a live key's endpoint takes its type (decision 0032)", async () => {
      const liveKey = (await t.gateway.services.merchants.createSecretKey(t.credentials.merchant_id, 'production', 'live')).secret_key;
      await registerEndpoint(t, 'http://127.0.0.1:9/hooks', { events: ['payment.created'] }, { 'x-secret-key': liveKey });
      await warmCache(t);
      const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody() });
      assert.equal(res.statusCode, 201, res.body);
      const event = await t.gateway.services.ctx.database.db.selectFrom('events').select('dispatched').where('payment_id', '=', (res.json() as { id: string }).id).executeTakeFirstOrThrow();
      assert.equal(event.dispatched, 1);
    });
  });
}

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, postAuthorise } from '../support/http.js';
import { runCli } from '../support/process.js';
import { LIVE_CHANNEL, OPERATOR_TOKEN, approveMerchant } from '../compliance/fixtures.js';
import { json, pageToken, payByCard } from '../stored-cards/support.js';

/**
 * Sandbox and live kept apart by the secret key (decision 0028): a sandbox key acts on sandbox
 * channels and their payments only, a live key on live ones; keys made before modes act on both.
 */
for (const dialect of DIALECTS) {
  describe(`secret keys with a mode (${dialect})`, () => {
    let t: TestGateway;
    let sandboxKey: string;
    let liveKey: string;
    let legacyKey: string;
    let sandboxPayment: string;
    let livePayment: string;

    const as = (key: string, method: 'GET' | 'POST' | 'DELETE', url: string, payload?: unknown): Promise<LightMyRequestResponse> =>
      t.request({ method, url, headers: { 'x-secret-key': key }, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });
    const authorise = async (key: string, channel: string) => postAuthorise(t, await exampleBody({ channel, capture: 'manual' }), { 'x-secret-key': key });
    const finished = async (res: LightMyRequestResponse): Promise<string> => {
      assert.equal(res.statusCode, 201, res.body);
      const created = json(res);
      await t.gateway.services.checkout.complete(pageToken(created.redirect_url as string));
      return created.id as string;
    };

    before(async () => {
      t = await startTestGateway({ dialect, env: { OPERATOR_TOKEN } });
      const m = t.gateway.services.merchants;
      const merchantId = t.credentials.merchant_id;
      await m.createChannel(merchantId, { reference: LIVE_CHANNEL, name: 'Live Shop', mode: 'live', currencies: ['USD', 'EUR'], returnUrls: ['https://shop.example/return'], notifyEmails: [] });
      await approveMerchant(t);
      sandboxKey = t.credentials.secret_key;
      liveKey = (await m.createSecretKey(merchantId, 'production', 'live')).secret_key;
      const legacy = await m.createSecretKey(merchantId, 'from before modes');
      // As migration 023 leaves a key made before it.
      await t.gateway.services.ctx.database.db.updateTable('secret_keys').set({ mode: null }).where('id', '=', legacy.id).execute();
      legacyKey = legacy.secret_key;
      sandboxPayment = await finished(await authorise(sandboxKey, 'sandbox'));
      livePayment = await finished(await authorise(liveKey, LIVE_CHANNEL));
    });
    after(() => t?.close());

    it('gives the sandbox a sandbox key, and new keys their mode in their text', async () => {
      assert.match(sandboxKey, /^sk_test_[0-9a-f]{32}$/);
      assert.match(liveKey, /^sk_live_[0-9a-f]{32}$/);
      const keys = await t.gateway.services.merchants.listSecretKeys(t.credentials.merchant_id);
      assert.deepEqual(
        keys.map((k) => [k.label, k.mode, k.hint.replace(/….*/, '…')]),
        [
          ['sandbox', 'sandbox', 'sk_test_…'],
          ['production', 'live', 'sk_live_…'],
          ['from before modes', 'both (legacy)', 'sk_…'],
        ],
      );
      const notices = await t.gateway.services.merchants.settingsOutOfRule();
      assert.equal(notices.filter((n) => n.includes('made before key modes')).length, 1, notices.join('\n'));
    });

    it('refuses a payment on a channel of the other mode, naming the channel, and makes nothing', async () => {
      const before = await t.gateway.services.ctx.database.db.selectFrom('payments').select('id').execute();
      const sandboxOnLive = assertProblem(await authorise(sandboxKey, LIVE_CHANNEL), 403, 'key_mode_mismatch', '/channel');
      assert.match(sandboxOnLive.detail, /live channel.*sandbox secret key.*sk_live_/);
      const liveOnSandbox = assertProblem(await authorise(liveKey, 'sandbox'), 403, 'key_mode_mismatch', '/channel');
      assert.match(liveOnSandbox.detail, /sandbox channel.*live secret key.*sk_test_/);
      const after = await t.gateway.services.ctx.database.db.selectFrom('payments').select('id').execute();
      assert.equal(after.length, before.length);
    });

    it('lets a key made before modes act on both, as it always did', async () => {
      assert.equal((await authorise(legacyKey, 'sandbox')).statusCode, 201);
      assert.equal((await authorise(legacyKey, LIVE_CHANNEL)).statusCode, 201);
      assert.equal((await as(legacyKey, 'GET', `/payment/${livePayment}`)).statusCode, 200);
      assert.equal((await as(legacyKey, 'GET', `/payment/${sandboxPayment}`)).statusCode, 200);
    });

    it("answers a payment of the other mode as a missing one, for reads and for every money move", async () => {
      for (const [key, other] of [
        [sandboxKey, livePayment],
        [liveKey, sandboxPayment],
      ] as const) {
        assertProblem(await as(key, 'GET', `/payment/${other}`), 404, 'payment_not_found', '/params/id');
        assertProblem(await as(key, 'GET', `/payment/${other}/refunds`), 404, 'payment_not_found');
        assertProblem(await as(key, 'POST', `/payment/${other}/capture`, {}), 404, 'payment_not_found');
        assertProblem(await as(key, 'POST', `/payment/${other}/void`, {}), 404, 'payment_not_found');
        assertProblem(await as(key, 'POST', `/payment/${other}/refund`, { amount: 1 }), 404, 'payment_not_found');
      }
      const live = await as(liveKey, 'GET', `/payment/${livePayment}`);
      assert.equal(json(live).status, 'authorised', 'the sandbox key moved nothing');
      assert.equal((await as(liveKey, 'POST', `/payment/${livePayment}/capture`, {})).statusCode, 200);
      assert.equal((await as(sandboxKey, 'POST', `/payment/${sandboxPayment}/void`, {})).statusCode, 200);
      // A refund, read back by its own id, is its payment's mode's too.
      const refund = await as(liveKey, 'POST', `/payment/${livePayment}/refund`, { amount: 100 });
      assert.equal(refund.statusCode, 201, refund.body);
      const refundUrl = String(refund.headers.location);
      assert.equal((await as(liveKey, 'GET', refundUrl)).statusCode, 200);
      assert.equal((await as(legacyKey, 'GET', refundUrl)).statusCode, 200);
      assertProblem(await as(sandboxKey, 'GET', refundUrl), 404, 'refund_not_found', '/params/id');
    });

    it("lists only the key's mode's payments and events", async () => {
      const ids = async (key: string, url: string) => (json(await as(key, 'GET', url)).data as Array<{ id: string; payment_id?: string; data?: { object?: { id?: string } } }>);
      const sandboxPayments = (await ids(sandboxKey, '/payments?limit=100')).map((p) => p.id);
      const livePayments = (await ids(liveKey, '/payments?limit=100')).map((p) => p.id);
      const all = (await ids(legacyKey, '/payments?limit=100')).map((p) => p.id);
      assert.ok(sandboxPayments.includes(sandboxPayment) && !sandboxPayments.includes(livePayment), sandboxPayments.join());
      assert.ok(livePayments.includes(livePayment) && !livePayments.includes(sandboxPayment), livePayments.join());
      assert.equal(all.length, sandboxPayments.length + livePayments.length);
      assert.deepEqual((await ids(sandboxKey, `/payments?channel=${LIVE_CHANNEL}`)).length, 0);

      const eventsOf = async (key: string, payment: string) => (await ids(key, `/events?payment=${payment}`)).map((e) => e.id);
      assert.deepEqual(await eventsOf(sandboxKey, livePayment), []);
      assert.deepEqual(await eventsOf(liveKey, sandboxPayment), []);
      const liveEvents = await eventsOf(liveKey, livePayment);
      assert.ok(liveEvents.length > 0);
      assert.ok((await eventsOf(sandboxKey, sandboxPayment)).length > 0);
      assertProblem(await as(sandboxKey, 'GET', `/events/${liveEvents[0]}`), 404, 'event_not_found');
      assertProblem(await as(sandboxKey, 'POST', `/events/${liveEvents[0]}/redeliver`, {}), 404, 'event_not_found');
      assert.equal((await as(liveKey, 'GET', `/events/${liveEvents[0]}`)).statusCode, 200);
    });

    it('marks payments, in every answer and event, with livemode', async () => {
      assert.equal(json(await as(liveKey, 'GET', `/payment/${livePayment}`)).livemode, true);
      assert.equal(json(await as(sandboxKey, 'GET', `/payment/${sandboxPayment}`)).livemode, false);
      const listed = json(await as(legacyKey, 'GET', '/payments?limit=100')).data as Array<{ id: string; livemode: boolean }>;
      assert.equal(listed.find((p) => p.id === livePayment)?.livemode, true);
      assert.equal(listed.find((p) => p.id === sandboxPayment)?.livemode, false);
      const created = json(await authorise(liveKey, LIVE_CHANNEL));
      assert.equal(created.livemode, true);
      for (const [key, payment, livemode] of [
        [liveKey, livePayment, true],
        [sandboxKey, sandboxPayment, false],
      ] as const) {
        const events = json(await as(key, 'GET', `/events?payment=${payment}`)).data as Array<{ type: string; data: { object: { livemode?: boolean } } }>;
        assert.ok(events.length > 1);
        // A refund's object (refund.*) carries its payment's.
        for (const e of events) assert.equal(e.data.object.livemode, livemode, e.type);
      }
    });

    it("marks refunds with their payment's livemode, in the 201, the payment's list and by id", async () => {
      for (const [key, channel, livemode] of [
        [liveKey, LIVE_CHANNEL, true],
        [sandboxKey, 'sandbox', false],
      ] as const) {
        const payment = await finished(await authorise(key, channel));
        assert.equal((await as(key, 'POST', `/payment/${payment}/capture`, {})).statusCode, 200);
        const made = await as(key, 'POST', `/payment/${payment}/refund`, { amount: 100 });
        assert.equal(made.statusCode, 201, made.body);
        assert.equal(json(made).livemode, livemode);
        assert.equal(json(await as(key, 'GET', String(made.headers.location))).livemode, livemode);
        assert.equal(json(await as(legacyKey, 'GET', String(made.headers.location))).livemode, livemode);
        const listed = json(await as(key, 'GET', `/payment/${payment}/refunds`)).data as Array<{ livemode: boolean }>;
        assert.deepEqual(listed.map((r) => r.livemode), [livemode]);
      }
    });

    it('marks every event with livemode at its top, also one recorded before events had it', async () => {
      for (const [key, payment, livemode] of [
        [liveKey, livePayment, true],
        [sandboxKey, sandboxPayment, false],
      ] as const) {
        const events = json(await as(key, 'GET', `/events?payment=${payment}`)).data as Array<{ id: string; livemode?: boolean }>;
        assert.ok(events.length > 0);
        for (const e of events) {
          assert.equal(e.livemode, livemode, e.id);
          assert.equal(json(await as(key, 'GET', `/events/${e.id}`)).livemode, livemode, e.id);
        }
      }
      // Stored whole and without livemode anywhere, as events were before payments had it.
      const payment = await finished(await authorise(liveKey, LIVE_CHANNEL));
      const [event] = json(await as(liveKey, 'GET', `/events?payment=${payment}`)).data as Array<{ id: string }>;
      const { deliveries: _deliveries, livemode: _livemode, ...old } = json(await as(liveKey, 'GET', `/events/${event!.id}`));
      delete (old.data as { object: Record<string, unknown> }).object.livemode;
      // As text, as events were stored before SQLite packed them.
      await t.gateway.services.ctx.database.db.updateTable('events').set({ body: JSON.stringify(old), body_slim: 0 }).where('id', '=', event!.id).execute();
      const read = json(await as(liveKey, 'GET', `/events/${event!.id}`));
      assert.equal(read.livemode, true);
      assert.equal(read.data.object.livemode, undefined, 'the payment inside stays as it was recorded');
      assert.equal((json(await as(liveKey, 'GET', `/events?payment=${payment}`)).data as Array<{ id: string; livemode: boolean }>).find((e) => e.id === event!.id)?.livemode, true);
    });

    it('shows and deletes a stored card only to keys of the mode that stored it', async () => {
      const live = await payByCard(t, { key: liveKey, channel: LIVE_CHANNEL, customer: 'cust-modes' });
      const token = live.payment_method.token as string;
      assertProblem(await as(sandboxKey, 'GET', `/payment-methods/${token}`), 404, 'payment_method_not_found');
      assertProblem(await as(sandboxKey, 'DELETE', `/payment-methods/${token}`), 404, 'payment_method_not_found');
      assert.deepEqual(json(await as(sandboxKey, 'GET', '/customers/cust-modes/payment-methods')).data, []);
      const listed = json(await as(liveKey, 'GET', '/customers/cust-modes/payment-methods')).data as Array<{ id: string }>;
      assert.deepEqual(listed.map((pm) => pm.id), [token]);
      assert.equal(json(await as(liveKey, 'GET', `/payment-methods/${token}`)).livemode, true);
      const test = await payByCard(t, { key: sandboxKey, channel: 'sandbox', customer: 'cust-modes', number: '5555555555554444' });
      const shown = json(await as(legacyKey, 'GET', '/customers/cust-modes/payment-methods')).data as Array<{ id: string; livemode: boolean }>;
      assert.deepEqual(shown.map((pm) => [pm.id, pm.livemode]).sort(), [[token, true], [test.payment_method.token, false]].sort());
      assert.equal(json(await as(sandboxKey, 'DELETE', `/payment-methods/${test.payment_method.token}`)).livemode, false);
      assert.equal((await as(liveKey, 'GET', `/payment-methods/${token}`)).statusCode, 200);
    });

    it("keeps a sandbox key's Idempotency-Keys apart from the live key's", async () => {
      const sent = async (key: string, channel: string) =>
        postAuthorise(t, await exampleBody({ channel, reference: `same-key-${channel}` }), { 'x-secret-key': key, 'idempotency-key': 'order-shared-1' });
      const test = await sent(sandboxKey, 'sandbox');
      const live = await sent(liveKey, LIVE_CHANNEL);
      assert.equal(test.statusCode, 201, test.body);
      assert.equal(live.statusCode, 201, live.body);
      assert.equal(live.headers['idempotent-replayed'], undefined);
      assert.notEqual(json(live).id, json(test).id);
      const again = await sent(liveKey, LIVE_CHANNEL);
      assert.equal(again.headers['idempotent-replayed'], 'true');
      assert.equal(json(again).id, json(live).id, 'the live key still replays its own');
    });

    it('is made by key create --mode, sandbox unless live is asked for', async () => {
      const env: Record<string, string> = { DATA_DIR: t.dataDir, LOG_LEVEL: 'silent' };
      if (t.config.databaseUrl) env.DATABASE_URL = t.config.databaseUrl;
      const created = async (...args: string[]) => {
        const r = await runCli(['key', 'create', '--merchant', t.credentials.merchant_id, ...args, '--json'], env);
        assert.equal(r.code, 0, r.stderr);
        return JSON.parse(r.stdout) as { secret_key: string; mode: string };
      };
      const live = await created('--mode', 'live');
      assert.equal(live.mode, 'live');
      assert.match(live.secret_key, /^sk_live_/);
      const unsaid = await created();
      assert.equal(unsaid.mode, 'sandbox');
      assert.match(unsaid.secret_key, /^sk_test_/);
      const bad = await runCli(['key', 'create', '--merchant', t.credentials.merchant_id, '--mode', 'both'], env);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, /--mode must be sandbox or live/);
      assertProblem(await authorise(unsaid.secret_key, LIVE_CHANNEL), 403, 'key_mode_mismatch');
    });
  });
}

for (const dialect of DIALECTS) {
  describe(`the rate limit of keys with a mode (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect, env: { RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '2' } });
    });
    after(() => t?.close());

    it("is the mode's: a sandbox key over it leaves the live key its own share", async () => {
      const liveKey = (await t.gateway.services.merchants.createSecretKey(t.credentials.merchant_id, 'production', 'live')).secret_key;
      const list = (key: string) => t.request({ method: 'GET', url: '/payments', headers: { 'x-secret-key': key } });
      const sandbox = await Promise.all([1, 2, 3, 4].map(() => list(t.credentials.secret_key)));
      assert.ok(sandbox.some((r) => r.statusCode === 429), sandbox.map((r) => r.statusCode).join());
      const live = await list(liveKey);
      assert.equal(live.statusCode, 200, live.body);
    });
  });
}

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, postAuthorise } from '../support/http.js';
import { LIVE_CHANNEL, OPERATOR_TOKEN, approveMerchant } from '../compliance/fixtures.js';
import { json, pageToken } from '../stored-cards/support.js';
import { Receiver, waitFor } from './support.js';
import { MAX_ENDPOINTS_PER_MERCHANT } from '../../src/app/webhook-endpoints.js';

/**
 * Webhook endpoints have their registering key's mode (decision 0032): a sandbox key's endpoint
 * takes sandbox payments' events only, a live key's live ones, and one registered by a key made
 * before modes takes both, as it always did.
 */
for (const dialect of DIALECTS) {
  describe(`webhook endpoints of a key mode (${dialect})`, () => {
    let t: TestGateway;
    const keys = { sandbox: '', live: '', legacy: '' };
    const endpoints = { sandbox: '', live: '', legacy: '' };
    const receivers: Record<keyof typeof keys, Receiver> = { sandbox: new Receiver(), live: new Receiver(), legacy: new Receiver() };

    const as = (key: string, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: unknown): Promise<LightMyRequestResponse> =>
      t.request({ method, url, headers: { 'x-secret-key': key }, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });
    const register = async (key: string, receiver: Receiver, extra: Record<string, unknown> = {}) => {
      const res = await as(key, 'POST', '/webhook-endpoints', { url: receiver.url, events: ['*'], ...extra });
      assert.equal(res.statusCode, 201, res.body);
      receiver.secrets = [json(res).secret as string];
      return json(res);
    };
    const pay = async (key: string, channel: string): Promise<string> => {
      const res = await postAuthorise(t, await exampleBody({ channel }), { 'x-secret-key': key });
      assert.equal(res.statusCode, 201, res.body);
      await t.gateway.services.checkout.complete(pageToken(json(res).redirect_url as string));
      t.gateway.services.outbox.notify();
      return json(res).id as string;
    };
    /** Which endpoints each of the payment's events was queued for, read with the key that sees both modes. */
    const targetsOf = async (payment: string): Promise<Set<string>> => {
      const events = json(await as(keys.legacy, 'GET', `/events?payment=${payment}`)).data as Array<{ id: string }>;
      assert.ok(events.length > 0);
      const out = new Set<string>();
      for (const e of events) for (const d of json(await as(keys.legacy, 'GET', `/events/${e.id}`)).deliveries as Array<{ endpoint_id: string | null }>) if (d.endpoint_id) out.add(d.endpoint_id);
      return out;
    };

    before(async () => {
      t = await startTestGateway({ dialect, workers: true, env: { OPERATOR_TOKEN, DISPATCH_POLL_MS: '50' } });
      for (const r of Object.values(receivers)) await r.start();
      const m = t.gateway.services.merchants;
      const merchantId = t.credentials.merchant_id;
      await m.createChannel(merchantId, { reference: LIVE_CHANNEL, name: 'Live Shop', mode: 'live', currencies: ['USD', 'EUR'], returnUrls: ['https://shop.example/return'], notifyEmails: [] });
      keys.sandbox = t.credentials.secret_key;
      keys.live = (await m.createSecretKey(merchantId, 'production', 'live')).secret_key;
      const legacy = await m.createSecretKey(merchantId, 'from before modes');
      // As migration 023 leaves a key made before it.
      await t.gateway.services.ctx.database.db.updateTable('secret_keys').set({ mode: null }).where('id', '=', legacy.id).execute();
      keys.legacy = legacy.secret_key;
      for (const mode of ['sandbox', 'live', 'legacy'] as const) endpoints[mode] = (await register(keys[mode], receivers[mode])).id as string;
      // After the endpoints: its compliance.approved rides the live channel.
      await approveMerchant(t);
    });
    after(async () => {
      await t?.close();
      for (const r of Object.values(receivers)) await r.stop();
    });

    it("delivers a payment's events only to endpoints of its mode, and to those of keys made before modes", async () => {
      const sandboxPayment = await pay(keys.sandbox, 'sandbox');
      const livePayment = await pay(keys.live, LIVE_CHANNEL);
      await waitFor('both payments at the endpoint of a key made before modes', () => receivers.legacy.forPayment(sandboxPayment).length > 0 && receivers.legacy.forPayment(livePayment).length > 0);
      await waitFor("each mode's payment at its mode's endpoint", () => receivers.sandbox.forPayment(sandboxPayment).length > 0 && receivers.live.forPayment(livePayment).length > 0);
      assert.deepEqual([...(await targetsOf(livePayment))].sort(), [endpoints.live, endpoints.legacy].sort());
      assert.deepEqual([...(await targetsOf(sandboxPayment))].sort(), [endpoints.sandbox, endpoints.legacy].sort());
      assert.deepEqual(receivers.sandbox.forPayment(livePayment), []);
      assert.deepEqual(receivers.live.forPayment(sandboxPayment), []);
      // The envelope says the mode too, on every callback.
      for (const [payment, livemode] of [
        [livePayment, true],
        [sandboxPayment, false],
      ] as const) {
        for (const r of receivers.legacy.forPayment(payment)) assert.equal((r.payload as { livemode?: boolean }).livemode, livemode, r.type);
      }
    });

    it('sends compliance events, which are the merchant\'s, to endpoints of both modes', async () => {
      const approved = (r: Receiver) => r.received.filter((m) => m.type === 'compliance.approved');
      await waitFor('compliance.approved at every endpoint', () => Object.values(receivers).every((r) => approved(r).length > 0));
      assert.deepEqual(new Set(Object.values(receivers).map((r) => approved(r)[0]!.id)).size, 1, 'one event, at each endpoint');
      assert.equal((approved(receivers.sandbox)[0]!.payload as { livemode?: boolean }).livemode, true, 'it rides the live channel');
    });

    it('lets a sandbox key read and redeliver the compliance events its endpoints receive, showing only its own deliveries', async () => {
      const approved = () => receivers.sandbox.received.filter((m) => m.type === 'compliance.approved');
      await waitFor('compliance.approved at the sandbox endpoint', () => approved().length > 0);
      const id = approved()[0]!.id;
      const listed = json(await as(keys.sandbox, 'GET', '/events?type=compliance.approved')).data as Array<{ id: string }>;
      assert.deepEqual(listed.map((e) => e.id), [id]);
      const read = await as(keys.sandbox, 'GET', `/events/${id}`);
      assert.equal(read.statusCode, 200, read.body);
      assert.equal(json(read).livemode, true);
      // Its deliveries to live endpoints, and to the one that takes both, name where live callbacks go.
      const shown = (json(read).deliveries as Array<{ endpoint_id: string | null; url: string | null }>).map((d) => [d.endpoint_id, d.url]);
      assert.deepEqual(shown, [[endpoints.sandbox, receivers.sandbox.url]]);
      assert.ok(!read.body.includes(receivers.live.url) && !read.body.includes(receivers.legacy.url));
      const again = await as(keys.sandbox, 'POST', `/events/${id}/redeliver`, { endpoint_id: endpoints.sandbox });
      assert.equal(again.statusCode, 202, again.body);
      await waitFor('the redelivery at the sandbox endpoint', () => approved().length > 1);
      const all = await as(keys.sandbox, 'POST', `/events/${id}/redeliver`, {});
      assert.equal(all.statusCode, 202, all.body);
      assert.deepEqual((json(all).deliveries as Array<{ endpoint_id: string }>).map((d) => d.endpoint_id), [endpoints.sandbox]);
      // The live key sees the deliveries to its endpoints and to the one that takes both, not the sandbox one.
      const live = (json(await as(keys.live, 'GET', `/events/${id}`)).deliveries as Array<{ endpoint_id: string | null }>).map((d) => d.endpoint_id);
      assert.deepEqual(live.sort(), [endpoints.live, endpoints.legacy].sort());
    });

    it("lists, reads and changes only the endpoints the key's mode reaches", async () => {
      const listed = async (key: string) => (json(await as(key, 'GET', '/webhook-endpoints')).data as Array<{ id: string; livemode: boolean | null }>).map((e) => [e.id, e.livemode]);
      assert.deepEqual(await listed(keys.sandbox), [[endpoints.sandbox, false]]);
      assert.deepEqual((await listed(keys.live)).sort(), [[endpoints.live, true], [endpoints.legacy, null]].sort());
      assert.equal((await listed(keys.legacy)).length, 3);
      for (const [key, other] of [
        [keys.sandbox, endpoints.live],
        [keys.sandbox, endpoints.legacy],
        [keys.live, endpoints.sandbox],
      ] as const) {
        assertProblem(await as(key, 'GET', `/webhook-endpoints/${other}`), 404, 'webhook_endpoint_not_found', '/params/id');
        assertProblem(await as(key, 'PATCH', `/webhook-endpoints/${other}`, { url: 'http://127.0.0.1:9/stolen' }), 404, 'webhook_endpoint_not_found');
        assertProblem(await as(key, 'POST', `/webhook-endpoints/${other}/rotate-secret`, {}), 404, 'webhook_endpoint_not_found');
        assertProblem(await as(key, 'DELETE', `/webhook-endpoints/${other}`), 404, 'webhook_endpoint_not_found');
      }
      const still = json(await as(keys.legacy, 'GET', `/webhook-endpoints/${endpoints.live}`));
      assert.equal(still.url, receivers.live.url, 'the sandbox key changed nothing');
      assert.equal(still.status, 'enabled');
      assert.equal(json(await as(keys.live, 'GET', `/webhook-endpoints/${endpoints.legacy}`)).livemode, null);
    });

    it("refuses a channel filter of the other mode than the endpoint's", async () => {
      const refused = assertProblem(await as(keys.sandbox, 'POST', '/webhook-endpoints', { url: receivers.sandbox.url, events: ['*'], channel: LIVE_CHANNEL }), 403, 'key_mode_mismatch', '/channel');
      assert.match(refused.detail, /live channel.*takes sandbox events only.*sk_live_/);
      assertProblem(await as(keys.live, 'PATCH', `/webhook-endpoints/${endpoints.live}`, { channel: 'sandbox' }), 403, 'key_mode_mismatch', '/channel');
      assertProblem(await as(keys.legacy, 'PATCH', `/webhook-endpoints/${endpoints.sandbox}`, { channel: LIVE_CHANNEL }), 403, 'key_mode_mismatch', '/channel');
      // An endpoint from before modes takes both, but a live key acts on live channels only (decision 0028).
      const byKey = assertProblem(await as(keys.live, 'PATCH', `/webhook-endpoints/${endpoints.legacy}`, { channel: 'sandbox' }), 403, 'key_mode_mismatch', '/channel');
      assert.match(byKey.detail, /sandbox channel.*live secret key.*sk_test_/);
      assert.equal(json(await as(keys.legacy, 'GET', `/webhook-endpoints/${endpoints.legacy}`)).channel, null, 'the filter was not set');
    });

    it("redelivers an event only to endpoints of its mode the key reaches", async () => {
      const livePayment = await pay(keys.live, LIVE_CHANNEL);
      const [event] = json(await as(keys.live, 'GET', `/events?payment=${livePayment}`)).data as Array<{ id: string }>;
      assertProblem(await as(keys.legacy, 'POST', `/events/${event!.id}/redeliver`, { endpoint_id: endpoints.sandbox }), 409, 'webhook_endpoint_mode_mismatch', '/endpoint_id');
      const all = await as(keys.live, 'POST', `/events/${event!.id}/redeliver`, {});
      assert.equal(all.statusCode, 202, all.body);
      assert.deepEqual((json(all).deliveries as Array<{ endpoint_id: string }>).map((d) => d.endpoint_id).sort(), [endpoints.live, endpoints.legacy].sort());
      const sandboxPayment = await pay(keys.sandbox, 'sandbox');
      const [own] = json(await as(keys.sandbox, 'GET', `/events?payment=${sandboxPayment}`)).data as Array<{ id: string }>;
      assertProblem(await as(keys.sandbox, 'POST', `/events/${own!.id}/redeliver`, { endpoint_id: endpoints.legacy }), 404, 'webhook_endpoint_not_found', '/endpoint_id');
      assert.equal((await as(keys.sandbox, 'PATCH', `/webhook-endpoints/${endpoints.sandbox}`, { status: 'disabled' })).statusCode, 200);
      const none = assertProblem(await as(keys.sandbox, 'POST', `/events/${own!.id}/redeliver`, {}), 409, 'no_subscribed_endpoint');
      assert.match(none.detail, /takes sandbox events/);
      assert.equal((await as(keys.sandbox, 'PATCH', `/webhook-endpoints/${endpoints.sandbox}`, { status: 'enabled' })).statusCode, 200);
    });

    it('says which modes fill the endpoint limit, and with which key to make room', async () => {
      const extra: string[] = [];
      for (let i = 3; i < MAX_ENDPOINTS_PER_MERCHANT; i++) {
        extra.push(json(await as(keys.sandbox, 'POST', '/webhook-endpoints', { url: `http://127.0.0.1:9/staging-${i}`, events: ['*'] })).id as string);
      }
      // The live key lists two endpoints and is refused a third: the refusal says the sandbox key's fill the rest.
      assert.equal((json(await as(keys.live, 'GET', '/webhook-endpoints')).data as unknown[]).length, 2);
      const full = assertProblem(await as(keys.live, 'POST', '/webhook-endpoints', { url: receivers.live.url, events: ['*'] }), 409, 'too_many_endpoints');
      assert.match(full.detail, /14 sandbox \(sandbox key, sk_test_…\), 1 live and 1 taking both \(live key, sk_live_…\)/);
      assert.match(full.detail, /delete one with a key that reaches it/);
      for (const id of extra) assert.equal((await as(keys.sandbox, 'DELETE', `/webhook-endpoints/${id}`)).statusCode, 200);
    });
  });
}

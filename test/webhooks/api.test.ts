import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { MAX_ENDPOINTS_PER_MERCHANT } from '../../src/app/webhook-endpoints.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { paidPayment, registerEndpoint } from './support.js';

async function otherMerchantKey(t: TestGateway): Promise<string> {
  const m = t.gateway.services.merchants;
  const merchant = await m.createMerchant('Other merchant');
  await m.createChannel(merchant.id, { reference: `other-${randomBytes(3).toString('hex')}`, name: 'Other shop', mode: 'sandbox', currencies: ['USD'], returnUrls: ['/sandbox/return'], notifyEmails: [] });
  return (await m.createSecretKey(merchant.id)).secret_key;
}

for (const dialect of DIALECTS) {
  describe(`webhook endpoints API (${dialect})`, () => {
    let t: TestGateway;
    let otherKey: string;
    before(async () => {
      t = await startTestGateway({ dialect });
      otherKey = await otherMerchantKey(t);
    });
    after(() => t.close());

    it('creates, lists, reads, updates and deletes an endpoint; the secret is shown once', async () => {
      const created = await registerEndpoint(t, 'http://127.0.0.1:9/hooks', { events: ['payment.captured', 'payment.authorised', 'payment.captured'], description: 'orders', channel: 'sandbox' });
      assert.match(created.id, /^we_[0-9a-f]{32}$/);
      assert.match(created.secret, /^whsec_/);
      const got = (await t.request({ method: 'GET', url: `/webhook-endpoints/${created.id}` })).json() as Record<string, unknown>;
      assert.deepEqual(got.events, ['payment.authorised', 'payment.captured']);
      assert.equal(got.channel, 'sandbox');
      assert.equal(got.status, 'enabled');
      assert.equal(got.secret, undefined);
      assert.ok(!JSON.stringify((await t.request({ method: 'GET', url: '/webhook-endpoints' })).json()).includes(created.secret), 'the list never shows a secret');

      const patched = await t.request({ method: 'PATCH', url: `/webhook-endpoints/${created.id}`, payload: { events: ['*'], channel: null, status: 'disabled' } });
      assert.equal(patched.statusCode, 200, patched.body);
      assert.deepEqual(patched.json().events, ['*']);
      assert.equal(patched.json().channel, null);
      assert.equal(patched.json().status, 'disabled');
      assert.equal(patched.json().disabled_reason, 'disabled by the merchant');

      const deleted = await t.request({ method: 'DELETE', url: `/webhook-endpoints/${created.id}` });
      assert.deepEqual(deleted.json(), { id: created.id, object: 'webhook_endpoint', deleted: true });
      assert.equal((await t.request({ method: 'GET', url: `/webhook-endpoints/${created.id}` })).statusCode, 404);
      const list = (await t.request({ method: 'GET', url: '/webhook-endpoints' })).json() as { data: Array<{ id: string }>; has_more: boolean };
      assert.ok(!list.data.some((e) => e.id === created.id));
      // The envelope of every list: a client pages them all with one loop.
      assert.equal(list.has_more, false);
    });

    it('audits who registered, changed, re-keyed and deleted an endpoint, with the key and the URL\'s origin only', async () => {
      const db = t.gateway.services.ctx.database.db;
      const merchant = t.credentials.merchant_id;
      const created = await registerEndpoint(t, 'http://127.0.0.1:9/hooks/tok3n?auth=s3cret', { events: ['payment.captured'] });
      assert.equal((await t.request({ method: 'PATCH', url: `/webhook-endpoints/${created.id}`, payload: { url: 'http://127.0.0.2:9/moved/s3cret', status: 'disabled' } })).statusCode, 200);
      assert.equal((await t.request({ method: 'POST', url: `/webhook-endpoints/${created.id}/rotate-secret`, payload: { overlap_hours: 0 } })).statusCode, 200);
      assert.equal((await t.request({ method: 'DELETE', url: `/webhook-endpoints/${created.id}` })).statusCode, 200);
      const rows = await db.selectFrom('audit_log').selectAll().where('target', '=', created.id).orderBy('id').execute();
      assert.deepEqual(
        rows.map((r) => r.action),
        ['webhook_endpoint.create', 'webhook_endpoint.update', 'webhook_endpoint.secret.rotate', 'webhook_endpoint.delete'],
      );
      const keys = await db.selectFrom('secret_keys').select('id').where('merchant_id', '=', merchant).where('revoked_at', 'is', null).execute();
      for (const r of rows) {
        assert.ok(keys.some((k) => r.actor === `merchant:${merchant}/${k.id}`), r.actor);
        assert.equal(r.source, 'ip:127.0.0.1');
        assert.equal(r.merchant_id, merchant);
        assert.equal(r.outcome, 'success');
        assert.ok(!(r.detail ?? '').includes('s3cret') && !(r.detail ?? '').includes(created.secret), `no URL path, query or secret in ${r.detail}`);
      }
      assert.deepEqual(JSON.parse(rows[0]!.detail!), { url: 'http://127.0.0.1:9', events: ['payment.captured'], channel: null, mode: 'sandbox' });
      assert.deepEqual(JSON.parse(rows[1]!.detail!), { changed: ['status', 'url'], url: 'http://127.0.0.2:9', status: 'disabled' });
      assert.deepEqual(JSON.parse(rows[2]!.detail!), { overlap_hours: 0 });
    });

    it('writes no audit row for a change that was refused, and one for an idempotent retry\'s first answer only', async () => {
      const db = t.gateway.services.ctx.database.db;
      const before = (await db.selectFrom('audit_log').select('id').where('action', 'like', 'webhook_endpoint.%').execute()).length;
      assert.equal((await t.request({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'ftp://example.com/', events: ['*'] } })).statusCode, 400);
      const headers = { 'idempotency-key': `audit-${randomBytes(4).toString('hex')}` };
      const first = await registerEndpoint(t, 'http://127.0.0.1:9/once', {}, headers);
      const again = await registerEndpoint(t, 'http://127.0.0.1:9/once', {}, headers);
      assert.equal(again.id, first.id);
      const after = await db.selectFrom('audit_log').select('target').where('action', 'like', 'webhook_endpoint.%').execute();
      assert.equal(after.length, before + 1);
      assert.ok(after.some((r) => r.target === first.id));
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${first.id}` });
    });

    it('answers 400 naming the field for bad input, as problem+json', async () => {
      const cases: Array<[Record<string, unknown>, string, string]> = [
        [{ url: 'http://127.0.0.1/x', events: ['payment.nope'] }, 'invalid_events', '/events/0'],
        [{ url: 'http://127.0.0.1/x', events: [] }, 'invalid_length', '/events'],
        [{ url: 'not a url', events: ['*'] }, 'invalid_url', '/url'],
        [{ url: 'ftp://example.com/', events: ['*'] }, 'url_scheme_not_allowed', '/url'],
        // Stripped or dropped by the URL parser, another URL would have been stored.
        [{ url: ' http://127.0.0.1/x', events: ['*'] }, 'invalid_url', '/url'],
        [{ url: 'http://127.0.0.1/ho\nok', events: ['*'] }, 'invalid_url', '/url'],
        [{ url: 'http://127.0.\t0.1/x', events: ['*'] }, 'invalid_url', '/url'],
        [{ url: 'http://127.0.0.1/x', events: ['*'], extra: 1 }, 'unknown_field', '/extra'],
        [{ url: `http://127.0.0.1/${'x'.repeat(2048)}`, events: ['*'] }, 'too_long', '/url'],
      ];
      for (const [payload, code, param] of cases) {
        const res = await t.request({ method: 'POST', url: '/webhook-endpoints', payload });
        assert.equal(res.statusCode, 400, `${JSON.stringify(payload)}: ${res.body}`);
        assert.match(res.headers['content-type'] as string, /application\/problem\+json/);
        const body = res.json() as { code: string; param: string };
        assert.equal(body.param, param, JSON.stringify(body));
        if (code !== 'unknown_field') assert.equal(body.code, code);
      }
      // As docs/webhooks.md says: an empty list is invalid_length, its detail in plain English.
      const empty = await t.request({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'http://127.0.0.1/x', events: [] } });
      assert.equal(empty.json().detail, 'events must have at least 1 item');
      const many = await t.request({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'http://127.0.0.1/x', events: Array(33).fill('*') } });
      assert.deepEqual([many.json().code, many.json().detail], ['invalid_length', 'events must have at most 32 items']);
      const unknownChannel = await t.request({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'http://127.0.0.1/x', events: ['*'], channel: 'nope' } });
      assert.equal(unknownChannel.statusCode, 404);
      assert.equal(unknownChannel.json().param, '/channel');
      // An empty channel names none, as on update: it is not taken for null (every channel's events).
      const listed = async () => (await t.request({ method: 'GET', url: '/webhook-endpoints' })).json().data.length as number;
      const before = await listed();
      const emptyChannel = await t.request({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'http://127.0.0.1/x', events: ['*'], channel: '' } });
      assert.equal(emptyChannel.statusCode, 404, emptyChannel.body);
      assert.deepEqual([emptyChannel.json().code, emptyChannel.json().param], ['channel_not_found', '/channel']);
      assert.equal(await listed(), before, 'an endpoint was registered for every channel');
      const badOverlap = await t.request({ method: 'POST', url: '/webhook-endpoints/we_00000000000000000000000000000000/rotate-secret', payload: { overlap_hours: 1000 } });
      assert.equal(badOverlap.statusCode, 400);
    });

    it('keeps a rotation\'s promise: a retried rotation replays its secret, a second one waits for the overlap or ends it explicitly', async () => {
      const created = await registerEndpoint(t, 'http://127.0.0.1:9/rotations');
      const rotate = (payload: Record<string, unknown>, key?: string) =>
        t.request({ method: 'POST', url: `/webhook-endpoints/${created.id}/rotate-secret`, payload, headers: key ? { 'idempotency-key': key } : {} });
      const first = await rotate({ overlap_hours: 24 }, 'rotation-1');
      assert.equal(first.statusCode, 200, first.body);
      const retried = await rotate({ overlap_hours: 24 }, 'rotation-1');
      assert.equal(retried.statusCode, 200, retried.body);
      assert.equal(retried.headers['idempotent-replayed'], 'true');
      assert.equal(retried.json().secret, first.json().secret);

      // The first secret was promised until previous_secret_expires_at: another rotation would end it at once.
      const second = await rotate({ overlap_hours: 24 });
      assert.equal(second.statusCode, 409, second.body);
      assert.equal(second.json().code, 'rotation_in_progress');
      assert.ok(second.json().detail.includes(first.json().previous_secret_expires_at), second.json().detail);
      // It passes by itself: Retry-After says when, as idempotency_key_in_use does.
      const overlapEnds = Date.parse(first.json().previous_secret_expires_at as string);
      assert.equal(second.headers['retry-after'], String(Math.ceil((overlapEnds - t.clock.now()) / 1000)));
      t.clock.advance(60_500);
      assert.equal((await rotate({ overlap_hours: 24 })).headers['retry-after'], String(Math.ceil((overlapEnds - t.clock.now()) / 1000)));
      const shown = (await t.request({ method: 'GET', url: `/webhook-endpoints/${created.id}` })).json();
      assert.equal(shown.previous_secret_expires_at, first.json().previous_secret_expires_at);
      const ended = await rotate({ overlap_hours: 0 });
      assert.equal(ended.statusCode, 200, ended.body);
      assert.equal(ended.json().previous_secret_expires_at, null);
      assert.notEqual(ended.json().secret, first.json().secret);

      const payload = { url: 'http://127.0.0.1:9/once', events: ['*'] };
      const [a, b] = [
        await t.request({ method: 'POST', url: '/webhook-endpoints', payload, headers: { 'idempotency-key': 'endpoint-1' } }),
        await t.request({ method: 'POST', url: '/webhook-endpoints', payload, headers: { 'idempotency-key': 'endpoint-1' } }),
      ];
      assert.equal(a.statusCode, 201, a.body);
      assert.equal(b.statusCode, 201, b.body);
      assert.equal(b.headers['idempotent-replayed'], 'true');
      assert.deepEqual([b.json().id, b.json().secret], [a.json().id, a.json().secret]);
      assert.deepEqual([a.headers.location, b.headers.location], [`/webhook-endpoints/${a.json().id}`, `/webhook-endpoints/${a.json().id}`]);
      // Later tests count on the merchant having no endpoint.
      for (const id of [created.id, a.json().id]) assert.equal((await t.request({ method: 'DELETE', url: `/webhook-endpoints/${id}` })).statusCode, 200);
    });

    it('reports an over-long description or channel as too_long naming the field, on create and update', async () => {
      const created = await registerEndpoint(t, 'http://127.0.0.1:9/long');
      const requests: Array<[string, string, Record<string, unknown>, string, number]> = [
        ['POST', '/webhook-endpoints', { url: 'http://127.0.0.1/x', events: ['*'], description: 'd'.repeat(201) }, '/description', 200],
        ['PATCH', `/webhook-endpoints/${created.id}`, { description: 'd'.repeat(201) }, '/description', 200],
        ['POST', '/webhook-endpoints', { url: 'http://127.0.0.1/x', events: ['*'], channel: 'c'.repeat(65) }, '/channel', 64],
        ['PATCH', `/webhook-endpoints/${created.id}`, { channel: 'c'.repeat(65) }, '/channel', 64],
      ];
      for (const [method, url, payload, param, limit] of requests) {
        const res = await t.request({ method: method as 'POST' | 'PATCH', url, payload });
        assert.equal(res.statusCode, 400, `${method} ${param}: ${res.body}`);
        const body = res.json() as { code: string; param: string; detail: string };
        assert.deepEqual([body.code, body.param], ['too_long', param], res.body);
        assert.match(body.detail, new RegExp(`^${param.slice(1)} must be at most ${limit} characters`), res.body);
      }
      for (const [method, url, payload, param] of [
        ['POST', '/webhook-endpoints', { url: 'http://127.0.0.1/x', events: ['*'], description: 'card 4242424242424242' }, '/description'],
        ['POST', '/webhook-endpoints', { url: 'http://127.0.0.1/x?card=4242424242424242', events: ['*'] }, '/url'],
        // Percent-encoded, or spaced with "+", the URL still reads as the number.
        ['POST', '/webhook-endpoints', { url: 'http://127.0.0.1/%34%32%34%32%34%32%34%32%34%32%34%32%34%32%34%32', events: ['*'] }, '/url'],
        ['POST', '/webhook-endpoints', { url: 'http://127.0.0.1/x?card=4242+4242+4242+4242', events: ['*'] }, '/url'],
        ['PATCH', `/webhook-endpoints/${created.id}`, { url: 'http://127.0.0.1/x?card=5555%205555%205555%204444' }, '/url'],
        ['PATCH', `/webhook-endpoints/${created.id}`, { url: 'http://127.0.0.1/x/%EF%BC%94242424242424242' }, '/url'],
        ['PATCH', `/webhook-endpoints/${created.id}`, { description: '5555 5555 5555 4444' }, '/description'],
        ['POST', '/webhook-endpoints', { url: 'http://127.0.0.1/x', events: ['*'], channel: '4242424242424242' }, '/channel'],
        ['POST', '/webhook-endpoints', { url: 'http://127.0.0.1/x', events: ['4242424242424242'] }, '/events/0'],
      ] as const) {
        const res = await t.request({ method, url, payload });
        assert.equal(res.statusCode, 400, `${method} ${param}: ${res.body}`);
        assert.deepEqual([res.json().code, res.json().param], ['card_number_in_text', param], res.body);
        assert.ok(!/4242424242|5555 5555|4242\+4242|%34%32%34%32|5555%205555/.test(res.body), res.body);
      }
      const wrongType = await t.request({ method: 'PATCH', url: `/webhook-endpoints/${created.id}`, payload: { description: 5 } });
      assert.equal(wrongType.statusCode, 400, wrongType.body);
      assert.deepEqual([wrongType.json().code, wrongType.json().param], ['invalid_type', '/description'], wrongType.body);
      assert.match(wrongType.json().detail, /description must be a string or null/);
      const cleared = await t.request({ method: 'PATCH', url: `/webhook-endpoints/${created.id}`, payload: { description: null } });
      assert.equal(cleared.statusCode, 200, cleared.body);
      assert.equal(cleared.json().description, null);
      // Later tests count on the merchant having no endpoint.
      assert.equal((await t.request({ method: 'DELETE', url: `/webhook-endpoints/${created.id}` })).statusCode, 200);
    });

    it('holds the endpoint limit when creates arrive all at once', async () => {
      const key = await otherMerchantKey(t);
      const answers = await Promise.all(
        Array.from({ length: 30 }, (_, i) => t.request({ method: 'POST', url: '/webhook-endpoints', headers: { 'x-secret-key': key }, payload: { url: `http://127.0.0.1:9/race-${i}`, events: ['*'] } })),
      );
      const outcomes = answers.map((r) => (r.statusCode === 201 ? '201' : `${r.statusCode} ${r.json<{ code: string }>().code}`));
      assert.equal(outcomes.filter((o) => o === '201').length, MAX_ENDPOINTS_PER_MERCHANT, outcomes.join(', '));
      assert.deepEqual(new Set(outcomes.filter((o) => o !== '201')), new Set(['409 too_many_endpoints']));
      const listed = (await t.request({ method: 'GET', url: '/webhook-endpoints', headers: { 'x-secret-key': key } })).json() as { data: unknown[] };
      assert.equal(listed.data.length, MAX_ENDPOINTS_PER_MERCHANT);
    });

    it('counts the url limit on the url as stored, with non-ASCII characters percent-encoded', async () => {
      // "é" is stored as %C3%A9, six characters for one: 17 + 6 × 338 = 2045 fits, 2051 does not.
      const fits = `http://127.0.0.1/${'é'.repeat(338)}`;
      const over = `http://127.0.0.1/${'é'.repeat(339)}`;
      const asOther = { 'x-secret-key': await otherMerchantKey(t) };
      const created = await registerEndpoint(t, fits, {}, asOther);
      assert.equal(created.url.length, 2045);
      for (const [method, url] of [
        ['POST', '/webhook-endpoints'],
        ['PATCH', `/webhook-endpoints/${created.id}`],
      ] as const) {
        const res = await t.request({ method, url, headers: asOther, payload: { url: over, ...(method === 'POST' ? { events: ['*'] } : {}) } });
        assert.equal(res.statusCode, 400, method);
        assert.deepEqual([res.json().code, res.json().param], ['too_long', '/url'], res.body);
      }
      assert.equal((await t.request({ method: 'GET', url: `/webhook-endpoints/${created.id}`, headers: asOther })).json().url, created.url);
    });

    it("reports another merchant's endpoint and event as missing", async () => {
      const mine = await registerEndpoint(t, 'http://127.0.0.1:9/hooks');
      const asOther = { 'x-secret-key': otherKey };
      for (const [method, url] of [
        ['GET', `/webhook-endpoints/${mine.id}`],
        ['PATCH', `/webhook-endpoints/${mine.id}`],
        ['DELETE', `/webhook-endpoints/${mine.id}`],
        ['POST', `/webhook-endpoints/${mine.id}/rotate-secret`],
      ] as const) {
        const res = await t.request({ method, url, headers: asOther, ...(method === 'PATCH' ? { payload: { description: 'x' } } : {}) });
        assert.equal(res.statusCode, 404, `${method} ${url}: ${res.body}`);
        assert.equal(res.json().code, 'webhook_endpoint_not_found');
      }
      assert.equal(((await t.request({ method: 'GET', url: '/webhook-endpoints', headers: asOther })).json() as { data: unknown[] }).data.length, 0);

      const paymentId = await paidPayment(t);
      const events = (await t.request({ method: 'GET', url: `/events?payment=${paymentId}` })).json() as { data: Array<{ id: string }> };
      const eventId = events.data[0]!.id;
      assert.equal((await t.request({ method: 'GET', url: `/events/${eventId}`, headers: asOther })).statusCode, 404);
      assert.equal((await t.request({ method: 'POST', url: `/events/${eventId}/redeliver`, headers: asOther })).statusCode, 404);
      assert.equal(((await t.request({ method: 'GET', url: `/events?payment=${paymentId}`, headers: asOther })).json() as { data: unknown[] }).data.length, 0);
      assert.equal((await t.request({ method: 'GET', url: '/events', headers: { 'x-secret-key': 'sk_nope' } })).statusCode, 401);
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${mine.id}` });
    });

    it('pages through events newest first and filters by type and payment', async () => {
      const payments = [await paidPayment(t, { reference: 'page-1' }), await paidPayment(t, { reference: 'page-2' })];
      const all: string[] = [];
      let cursor: string | undefined;
      for (;;) {
        const res = await t.request({ method: 'GET', url: `/events?limit=2${cursor ? `&starting_after=${cursor}` : ''}` });
        assert.equal(res.statusCode, 200, res.body);
        const page = res.json() as { object: string; data: Array<{ id: string }>; has_more: boolean; next_starting_after: string | null };
        assert.equal(page.object, 'list');
        all.push(...page.data.map((e) => e.id));
        // The cursor GET /payments gives too, so one paging loop serves both lists.
        assert.equal(page.next_starting_after, page.has_more ? page.data.at(-1)!.id : null);
        if (!page.has_more) break;
        cursor = page.next_starting_after!;
      }
      assert.deepEqual(all, [...all].sort().reverse(), 'newest first');
      assert.equal(new Set(all).size, all.length, 'no event twice');
      const back = (await t.request({ method: 'GET', url: `/events?limit=2&ending_before=${all[3]}` })).json() as { data: Array<{ id: string }>; next_starting_after: string | null };
      assert.deepEqual(back.data.map((e) => e.id), all.slice(1, 3));
      // Older events follow a page read backwards: at least the one ending_before named.
      assert.equal(back.next_starting_after, all[2]);

      const captured = (await t.request({ method: 'GET', url: `/events?type=payment.captured&payment=${payments[1]}` })).json() as { data: Array<{ type: string; data: { object: { id: string } } }> };
      assert.equal(captured.data.length, 1);
      assert.equal(captured.data[0]!.type, 'payment.captured');
      assert.equal(captured.data[0]!.data.object.id, payments[1]);
      const two = (await t.request({ method: 'GET', url: `/events?type=payment.created,payment.captured&payment=${payments[0]}` })).json() as { data: Array<{ type: string }> };
      assert.deepEqual(two.data.map((e) => e.type).sort(), ['payment.captured', 'payment.created']);

      const refused: Array<[string, string, string]> = [
        ['limit=0', '/querystring/limit', 'out_of_range'],
        ['limit=101', '/querystring/limit', 'out_of_range'],
        ['starting_after=nope', '/querystring/starting_after', 'invalid_cursor'],
        ['ending_before=pay_0', '/querystring/ending_before', 'invalid_cursor'],
        ['type=payment.nope', '/querystring/type', 'invalid_event_type'],
        ['type=,', '/querystring/type', 'invalid_event_type'],
        [`starting_after=${all[0]}&ending_before=${all[1]}`, '/querystring/ending_before', 'invalid_cursor'],
      ];
      for (const [bad, param, code] of refused) {
        const res = await t.request({ method: 'GET', url: `/events?${bad}` });
        assert.equal(res.statusCode, 400, `${bad}: ${res.body}`);
        // The same pointers and errors[] as GET /payments and every schema error give.
        const body = res.json<{ param: string; code: string; errors?: Array<{ param: string; code: string }> }>();
        assert.deepEqual([body.param, body.code], [param, code], bad);
        assert.deepEqual(body.errors?.map((e) => [e.param, e.code]), [[param, code]], bad);
      }
      // Every parameter at fault is named at once, as GET /payments names them.
      const both = (await t.request({ method: 'GET', url: '/events?starting_after=nope&ending_before=nada' })).json<{ errors: Array<{ param: string; code: string }> }>();
      assert.deepEqual(
        both.errors.map((e) => [e.param, e.code]),
        [['/querystring/starting_after', 'invalid_cursor'], ['/querystring/ending_before', 'invalid_cursor'], ['/querystring/ending_before', 'invalid_cursor']],
      );
    });

    it('shows an event with its deliveries, and refuses a redeliver with no endpoint', async () => {
      const paymentId = await paidPayment(t);
      const [event] = ((await t.request({ method: 'GET', url: `/events?payment=${paymentId}&type=payment.created` })).json() as { data: Array<{ id: string }> }).data;
      const got = (await t.request({ method: 'GET', url: `/events/${event!.id}` })).json() as { id: string; type: string; sequence: number; deliveries: unknown[]; data: { object: { id: string } } };
      assert.equal(got.id, event!.id);
      assert.equal(got.type, 'payment.created');
      assert.equal(got.sequence, 1);
      assert.equal(got.data.object.id, paymentId);
      assert.ok(Array.isArray(got.deliveries));
      const none = await t.request({ method: 'POST', url: `/events/${event!.id}/redeliver` });
      assert.equal(none.statusCode, 409);
      assert.equal(none.json().code, 'no_subscribed_endpoint');
      assert.equal((await t.request({ method: 'GET', url: '/events/evt_00000000000000000000000000000000' })).statusCode, 404);
    });

    it('audits a redelivery with the key that asked, the event and the endpoints it went to; a refused one writes nothing', async () => {
      const db = t.gateway.services.ctx.database.db;
      const merchant = t.credentials.merchant_id;
      const paymentId = await paidPayment(t);
      const [event] = ((await t.request({ method: 'GET', url: `/events?payment=${paymentId}&type=payment.created` })).json() as { data: Array<{ id: string }> }).data;
      const audited = () => db.selectFrom('audit_log').selectAll().where('target', '=', event!.id).orderBy('id').execute();
      assert.equal((await t.request({ method: 'POST', url: `/events/${event!.id}/redeliver` })).statusCode, 409);
      assert.deepEqual(await audited(), [], 'a refused redelivery changed nothing');

      const endpoint = await registerEndpoint(t, 'http://127.0.0.1:9/hooks/tok3n', { events: ['payment.created'] });
      try {
        assert.equal((await t.request({ method: 'POST', url: `/events/${event!.id}/redeliver`, payload: { endpoint_id: endpoint.id } })).statusCode, 202);
        assert.equal((await t.request({ method: 'POST', url: `/events/${event!.id}/redeliver` })).statusCode, 202);
        const rows = await audited();
        assert.deepEqual(rows.map((r) => r.action), ['event.redeliver', 'event.redeliver']);
        const keys = await db.selectFrom('secret_keys').select('id').where('merchant_id', '=', merchant).where('revoked_at', 'is', null).execute();
        for (const r of rows) {
          assert.ok(keys.some((k) => r.actor === `merchant:${merchant}/${k.id}`), r.actor);
          assert.equal(r.source, 'ip:127.0.0.1');
          assert.equal(r.merchant_id, merchant);
          assert.equal(r.outcome, 'success');
          assert.deepEqual(JSON.parse(r.detail!), { type: 'payment.created', payment: paymentId, endpoints: [endpoint.id] });
        }
      } finally {
        await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.id}` });
      }
    });

    it('refuses private targets when private callbacks are not allowed', async () => {
      const strict = await startTestGateway({ dialect, env: { WEBHOOK_ALLOW_PRIVATE: 'false' } });
      try {
        for (const url of ['http://127.0.0.1/x', 'http://[::1]/x', 'http://169.254.169.254/x', 'http://10.0.0.1/x', 'http://2130706433/x', 'http://0x7f000001/x', 'http://0177.0.0.1/x', 'http://localhost/x']) {
          const res = await strict.request({ method: 'POST', url: '/webhook-endpoints', payload: { url, events: ['*'] } });
          assert.equal(res.statusCode, 400, `${url}: ${res.body}`);
          assert.equal(res.json().code, 'url_address_not_allowed', url);
          assert.equal(res.json().param, '/url');
        }
      } finally {
        await strict.close();
      }
    });
  });
}

// Live mode requires PostgreSQL (DATABASE_URL), so this runs with the postgres dialect only.
if (DIALECTS.includes('postgres')) describe('webhook endpoints in live mode (postgres)', () => {
  it('refuses http and every private target', async () => {
    const live = await startTestGateway({
      dialect: 'postgres',
      env: { GATEWAY_MODE: 'live', ACQUIRER: 'sandbox', PUBLIC_URL: 'https://pay.example.com', VAULT_KEK: `live1:${randomBytes(32).toString('base64')}`, HMAC_KEY: randomBytes(32).toString('base64') },
    });
    try {
      const scheme = await live.request({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'http://example.com/x', events: ['*'] } });
      assert.equal(scheme.statusCode, 400);
      assert.equal(scheme.json().code, 'url_scheme_not_allowed');
      // Live mode is HTTPS only: browsers are told so on every answer.
      assert.equal(scheme.headers['strict-transport-security'], 'max-age=31536000');
      for (const url of ['https://127.0.0.1/x', 'https://[::1]/x', 'https://169.254.169.254/x', 'https://10.0.0.1/x', 'https://2130706433/x', 'https://0x7f000001/x', 'https://0177.0.0.1/x', 'https://localhost/x', 'https://[::ffff:10.0.0.1]/x', 'https://[2001:2::1]/x', 'https://[3fff::1]/x', 'https://[2001:20::1]/x', 'https://[2001:10::1]/x', 'https://[5f00::1]/x', 'https://[100::1]/x']) {
        const res = await live.request({ method: 'POST', url: '/webhook-endpoints', payload: { url, events: ['*'] } });
        assert.equal(res.statusCode, 400, `${url}: ${res.body}`);
        assert.equal(res.json().code, 'url_address_not_allowed', url);
      }
      const unspecified = await live.request({ method: 'POST', url: '/webhook-endpoints', payload: { url: 'https://[::]/x', events: ['*'] } });
      assert.equal(unspecified.json().detail, 'url: :: is an unspecified address; callbacks only go to public internet addresses');
      assert.equal(((await live.request({ method: 'GET', url: '/webhook-endpoints' })).json() as { data: unknown[] }).data.length, 0);
    } finally {
      await live.close();
    }
  });
});

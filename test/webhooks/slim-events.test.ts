import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { paidPayment } from './support.js';
import { unpackJson } from '../../src/adapters/storage/packed-json.js';

type Json = Record<string, unknown>;

for (const dialect of DIALECTS) {
  describe(`payment events stored slim, read whole (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(() => t.close());

    it('stores no copy of the customer, addresses or metadata in events, and gives them back when read', async () => {
      const id = await paidPayment(t, { reference: 'slim-1', metadata: { order: 'A-17' } });
      const stored = await t.gateway.services.ctx.database.db.selectFrom('events').select(['type', 'body', 'body_slim']).where('payment_id', '=', id).orderBy('sequence').execute();
      assert.deepEqual(stored.map((e) => e.type), ['payment.created', 'payment.authorised', 'payment.captured']);
      for (const e of stored) {
        assert.equal(e.body_slim, 1);
        const text = unpackJson(e.body);
        assert.ok(!text.includes('customer@example.com') && !text.includes('123 Main St') && !text.includes('A-17'), text);
        // SQLite keeps event bodies packed (about a sixth of the JSON); PostgreSQL keeps JSON text.
        if (dialect === 'sqlite') {
          assert.ok(e.body instanceof Uint8Array, 'the SQLite body is not packed');
          assert.ok(e.body.length * 4 < text.length, `packed ${e.body.length} bytes for ${text.length} of JSON`);
        } else assert.equal(typeof e.body, 'string');
      }

      const listed = await t.request({ method: 'GET', url: `/events?payment=${id}` });
      assert.equal(listed.statusCode, 200, listed.body);
      const events = (listed.json() as { data: Array<{ type: string; data: { object: Json } }> }).data;
      const payment = (await t.request({ method: 'GET', url: `/payment/${id}` })).json() as Json;
      for (const event of events) {
        const object = event.data.object;
        // The fields fixed at creation come back exactly as the payment shows them, in place.
        for (const field of ['customer', 'billing_details', 'shipping_details', 'metadata', 'payment_data', 'return_url', 'capture_delay']) {
          assert.deepEqual(object[field], payment[field], `${event.type}: ${field}`);
        }
        assert.deepEqual(Object.keys(object), Object.keys(payment), `${event.type}: key order`);
        assert.equal(object.redirect_url, null, 'events never carry the page URL');
      }
      // Each event keeps the state of its own moment, not the payment's current one.
      const bySequence = [...events].sort((a, b) => Number(a.data.object.sequence) - Number(b.data.object.sequence));
      assert.deepEqual(bySequence.map((e) => e.data.object.status), ['requires_action', 'authorised', 'captured']);
      assert.equal(payment.status, 'captured');
    });

    it('reads an event the same, byte for byte, every time', async () => {
      const id = await paidPayment(t, { reference: 'slim-2' });
      const first = await t.request({ method: 'GET', url: `/events?payment=${id}` });
      const second = await t.request({ method: 'GET', url: `/events?payment=${id}` });
      assert.equal(first.body, second.body);
      const eventId = (first.json() as { data: Array<{ id: string }> }).data[0]!.id;
      const one = (await t.request({ method: 'GET', url: `/events/${eventId}` })).json() as Json;
      const { deliveries: _deliveries, ...withoutDeliveries } = one;
      assert.deepEqual(withoutDeliveries, (first.json() as { data: Json[] }).data[0]);
    });
  });
}

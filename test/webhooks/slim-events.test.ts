import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { paidPayment } from './support.js';
import { unpackJson } from '../../src/adapters/storage/packed-json.js';
import { BODY_FORM, EVENT_READ_COLUMNS, eventBody } from '../../src/app/events.js';

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
      const stored = await t.gateway.services.ctx.database.db.selectFrom('events').select(['id', 'type', 'body', 'body_slim']).where('payment_id', '=', id).orderBy('sequence').execute();
      assert.deepEqual(stored.map((e) => e.type), ['payment.created', 'payment.authorised', 'payment.captured']);
      for (const e of stored) {
        assert.equal(e.body_slim, BODY_FORM.object);
        const text = unpackJson(e.body);
        assert.ok(!text.includes('customer@example.com') && !text.includes('123 Main St') && !text.includes('A-17'), text);
        // Only the payment object is stored: the envelope and both ids come from the row's columns.
        assert.ok(!text.includes(id) && !text.includes(e.id) && !text.includes('"data"') && !text.includes(e.type), text);
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

    it('reads events stored whole or in the earlier slim form as they were written', async () => {
      const id = await paidPayment(t, { reference: 'slim-3', metadata: { order: 'B-2' } });
      const rows = await t.gateway.services.ctx.database.db.selectFrom('events').leftJoin('payments', 'payments.id', 'events.payment_id').leftJoin('channels', 'channels.id', 'events.channel_id').select(EVENT_READ_COLUMNS).where('events.payment_id', '=', id).execute();
      assert.equal(rows.length, 3);
      for (const row of rows) {
        const whole = eventBody(row);
        assert.equal(eventBody({ ...row, body: whole, body_slim: BODY_FORM.whole }), whole);
        // The slim form: the whole event, with the payment's fixed fields as null placeholders.
        const slim = JSON.parse(whole) as { data: { object: Json } };
        for (const field of ['customer', 'billing_details', 'shipping_details', 'metadata', 'payment_data', 'return_url', 'capture_delay']) slim.data.object[field] = null;
        assert.equal(eventBody({ ...row, body: JSON.stringify(slim), body_slim: BODY_FORM.slim }), whole);
        assert.equal(((JSON.parse(whole) as { data: { object: { metadata: Json } } }).data.object.metadata).order, 'B-2');
      }
    });
  });
}

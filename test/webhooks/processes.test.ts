import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createGateway, type Gateway } from '../../src/server.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { paidPayment, Receiver, registerEndpoint, waitFor } from './support.js';

// Several gateway processes on one PostgreSQL database fan out and deliver side by side
// (SQLite has one process per file).
if (DIALECTS.includes('postgres')) {
  describe('two dispatching processes on one database (postgres)', () => {
    let t: TestGateway;
    let receiver: Receiver;
    const processes: Gateway[] = [];

    before(async () => {
      t = await startTestGateway({ dialect: 'postgres', workers: false });
      receiver = await new Receiver().start();
    });
    after(async () => {
      await Promise.all(processes.map((g) => g.close()));
      await receiver.stop();
      await t.close();
    });

    it('fans every event out once and delivers it once, whichever process claims it', async () => {
      const endpoint = await registerEndpoint(t, receiver.url);
      receiver.secrets = [endpoint.secret];
      // Written with no dispatcher running, so both processes start on the same backlog.
      const payments: string[] = [];
      for (let i = 0; i < 40; i++) payments.push(await paidPayment(t, { reference: `two-${i}` }));
      const events = await t.gateway.services.ctx.database.db.selectFrom('events').select('id').where('payment_id', 'in', payments).execute();
      assert.equal(events.length, payments.length * 3);

      const config = { ...t.config, workersEnabled: true, dispatchPollMs: 20 };
      processes.push(await createGateway(config, pino({ level: 'silent' }), { clock: t.clock }), await createGateway(config, pino({ level: 'silent' }), { clock: t.clock }));

      await waitFor('every event at the receiver', () => events.every((e) => receiver.ids().has(e.id)));
      const db = t.gateway.services.ctx.database.db;
      await waitFor('every delivery recorded', async () => (await db.selectFrom('deliveries').select('id').where('endpoint_id', '=', endpoint.id).where('status', '=', 'succeeded').execute()).length === events.length);
      const deliveries = await db.selectFrom('deliveries').select(['event_id', 'attempts']).where('endpoint_id', '=', endpoint.id).execute();
      assert.equal(deliveries.length, events.length, 'one delivery per event');
      assert.equal(new Set(deliveries.map((d) => d.event_id)).size, events.length);
      assert.ok(deliveries.every((d) => d.attempts === 1), 'each sent once');
      assert.deepEqual([...receiver.ids().values()].filter((n) => n !== 1), [], 'no event arrived twice');
      assert.equal(receiver.invalid.length, 0);
      const undispatched = await db.selectFrom('events').select('id').where('dispatched', '=', 0).execute();
      assert.deepEqual(undispatched, []);
    });
  });
}

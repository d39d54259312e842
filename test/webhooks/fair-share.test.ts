import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { LEASE_DEPTH } from '../../src/workers/dispatcher.js';
import { paidPayment, Receiver, registerEndpoint, waitFor } from './support.js';

/** A quarter of DISPATCH_CONCURRENCY: the sending slots one endpoint may hold. */
const CONCURRENCY = 8;
const PER_ENDPOINT = CONCURRENCY / 4;

for (const dialect of DIALECTS) {
  describe(`sending slots and leases per endpoint (${dialect})`, () => {
    let t: TestGateway;
    let stuck: Receiver;
    let healthy: Receiver;

    before(async () => {
      t = await startTestGateway({ dialect, workers: true, env: { DISPATCH_POLL_MS: '50', WEBHOOK_TIMEOUT_MS: '60000', DISPATCH_CONCURRENCY: String(CONCURRENCY) } });
      stuck = await new Receiver().start();
      healthy = await new Receiver().start();
    });
    after(async () => {
      await stuck.stop();
      await healthy.stop();
      await t.close();
    });

    async function leasedTo(endpointId: string): Promise<{ leased: number; waiting: number }> {
      const rows = await t.gateway.services.ctx.database.db
        .selectFrom('deliveries')
        .select(['lease_token'])
        .where('endpoint_id', '=', endpointId)
        .where('status', '=', 'pending')
        .execute();
      const leased = rows.filter((r) => r.lease_token !== null).length;
      return { leased, waiting: rows.length - leased };
    }

    it('gives a hanging endpoint a quarter of the sending slots and of the leases, and delivers the rest elsewhere', async () => {
      stuck.mode = 'hang';
      const a = await registerEndpoint(t, stuck.url);
      const b = await registerEndpoint(t, healthy.url);
      healthy.secrets = [b.secret];
      const payments: string[] = [];
      // Three events a payment: more than the hanging endpoint may lease.
      for (let i = 0; i < 6; i++) payments.push(await paidPayment(t, { reference: `share-${i}` }));
      const events = payments.length * 3;
      assert.ok(events > LEASE_DEPTH * PER_ENDPOINT);

      await waitFor('every event at the healthy endpoint', () => payments.every((p) => healthy.forPayment(p).length === 3));
      await waitFor('the hanging endpoint to hold its share', async () => stuck.hangingCount === PER_ENDPOINT && (await leasedTo(a.id)).leased === LEASE_DEPTH * PER_ENDPOINT);
      // Another poll or two must not lease it more.
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(stuck.hangingCount, PER_ENDPOINT, 'requests in flight to the hanging endpoint');
      assert.deepEqual(await leasedTo(a.id), { leased: LEASE_DEPTH * PER_ENDPOINT, waiting: events - LEASE_DEPTH * PER_ENDPOINT });
      assert.deepEqual(await leasedTo(b.id), { leased: 0, waiting: 0 });
      assert.equal(healthy.invalid.length, 0);
    });
  });
}

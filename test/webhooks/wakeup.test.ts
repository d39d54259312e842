import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DIALECTS, exampleBody, startTestGateway } from '../support/gateway.js';
import { authoriseAndHangUp } from '../support/hang-up.js';
import { Receiver, registerEndpoint, waitFor } from './support.js';

for (const dialect of DIALECTS) {
  describe(`dispatcher wake-up (${dialect})`, () => {
    it('sends a callback for an API request at once, without waiting for the poll', async () => {
      // A poll interval longer than the wait below: only the wake-up after the request can deliver in time.
      const t = await startTestGateway({ dialect, workers: true, env: { DISPATCH_POLL_MS: '60000' } });
      const r = await new Receiver().start();
      try {
        const endpoint = await registerEndpoint(t, r.url, { events: ['payment.created'] });
        r.secrets = [endpoint.secret];
        const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody() });
        assert.equal(res.statusCode, 201);
        const paymentId = (res.json() as { id: string }).id;
        await waitFor('payment.created at the receiver', () => r.forPayment(paymentId).length === 1, 30_000);
        assert.equal(r.received[0]!.type, 'payment.created');
      } finally {
        await r.stop();
        await t.close();
      }
    });

    it('sends bursts that arrive while earlier callbacks hold every slot and lease, without waiting for the poll', async () => {
      // One sending slot, so four leases: most of the second burst is left unleased by its
      // fan-out, and no request comes after it to ring; only the result commits' refills
      // can lease it before the 60 s poll.
      const t = await startTestGateway({ dialect, workers: true, env: { DISPATCH_POLL_MS: '60000', DISPATCH_CONCURRENCY: '1' } });
      const r = await new Receiver().start();
      try {
        const endpoint = await registerEndpoint(t, r.url, { events: ['payment.created'] });
        r.secrets = [endpoint.secret];
        const burst = async (n: number) => {
          const body = await exampleBody();
          const answers = await Promise.all(Array.from({ length: n }, () => t.request({ method: 'POST', url: '/payment/authorise', payload: body })));
          for (const res of answers) assert.equal(res.statusCode, 201, res.body);
        };
        r.mode = 'hang';
        await burst(6);
        await waitFor('the first callback to hang at the receiver', () => r.hangingCount === 1);
        await burst(10);
        r.mode = 'ok';
        r.answerHanging(200, 'ok');
        // The first attempt was answered by answerHanging, outside the receiver's count.
        await waitFor('every other callback at the receiver', () => r.received.length === 15, 10_000);
        const db = t.gateway.services.ctx.database.db;
        await waitFor('every result recorded', async () => (await db.selectFrom('deliveries').select('id').where('status', '!=', 'succeeded').execute()).length === 0, 5_000);
        assert.equal((await db.selectFrom('deliveries').select('id').execute()).length, 16);
      } finally {
        await r.stop();
        await t.close();
      }
    });

    it('sends the callback at once when the merchant hung up before the answer', async () => {
      // A client that times out (or a load tool stopping) closes its connection while the
      // payment is being written: the payment and its event are committed all the same, and
      // their callback must not wait for the poll.
      const t = await startTestGateway({ dialect, workers: true, env: { DISPATCH_POLL_MS: '60000' } });
      const r = await new Receiver().start();
      try {
        const endpoint = await registerEndpoint(t, r.url, { events: ['payment.created'] });
        r.secrets = [endpoint.secret];
        await authoriseAndHangUp(t);
        await waitFor('payment.created at the receiver', () => r.received.length === 1, 5_000);
        assert.equal(r.received[0]!.type, 'payment.created');
      } finally {
        await r.stop();
        await t.close();
      }
    });
  });
}

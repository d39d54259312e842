import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DIALECTS, exampleBody, startTestGateway } from '../support/gateway.js';
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
  });
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DIALECTS, exampleBody, startTestGateway } from '../support/gateway.js';
import { Receiver, registerEndpoint, waitFor } from './support.js';

for (const dialect of DIALECTS) {
  describe(`the dispatcher stopping (${dialect})`, () => {
    it('stops while payments keep coming: every commit waking it does not keep it running', async () => {
      const t = await startTestGateway({ dialect, workers: true, env: { DISPATCH_POLL_MS: '50' } });
      const r = await new Receiver().start();
      try {
        await registerEndpoint(t, r.url);
        let traffic = true;
        const body = await exampleBody();
        const client = async () => {
          while (traffic) assert.equal((await t.request({ method: 'POST', url: '/payment/authorise', payload: body })).statusCode, 201);
        };
        const payments = Promise.all(Array.from({ length: 8 }, client));
        await waitFor('callbacks under load', () => r.requests > 30);
        const stopped = t.gateway.workers!.loops.dispatcher!.stop().then(() => 'stopped');
        const outcome = await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, 15_000, 'still running with payments coming'))]);
        traffic = false;
        await payments;
        assert.equal(outcome, 'stopped');
      } finally {
        await t.close();
        await r.stop();
      }
    });

    it('hands back the callbacks it leased and had not started, keeping only those under way', async () => {
      // Two requests at once to one endpoint (a quarter of 8), up to four times that leased.
      const t = await startTestGateway({ dialect, workers: true, env: { DISPATCH_POLL_MS: '50', DISPATCH_CONCURRENCY: '8' } });
      const r = await new Receiver().start();
      r.mode = 'hang';
      try {
        await registerEndpoint(t, r.url);
        for (let i = 0; i < 12; i++) assert.equal((await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody() })).statusCode, 201);
        const db = t.gateway.services.ctx.database.db;
        const leased = () => db.selectFrom('deliveries').select('id').where('status', '=', 'pending').where('lease_token', 'is not', null).execute();
        await waitFor('two callbacks hanging and more leased behind them', async () => r.hangingCount === 2 && (await leased()).length > 2);
        await t.gateway.workers!.loops.dispatcher!.stop();
        assert.equal((await leased()).length, 2, 'only the two requests under way keep their leases');
      } finally {
        r.answerHanging(200);
        await t.close();
        await r.stop();
      }
    });
  });
}

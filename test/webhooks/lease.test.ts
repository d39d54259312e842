import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createGateway, type Gateway } from '../../src/server.js';
import { Dispatcher, type DispatcherLoop } from '../../src/workers/dispatcher.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { Receiver, registerEndpoint, waitFor } from './support.js';

const HOUR = 3_600_000;

/**
 * A dispatching process with one sending slot, held by a callback to a hanging endpoint,
 * and a victim endpoint whose two callbacks are leased and wait behind it; the hand-moved
 * clock then jumps past their leases, as a long wait behind slow sends would.
 */
async function leasesRunOutWhileWaiting(t: TestGateway) {
  const db = t.gateway.services.ctx.database.db;
  const blocker = await new Receiver().start();
  const victim = await new Receiver().start();
  blocker.mode = 'hang';
  await registerEndpoint(t, blocker.url, { events: ['payment.created'] });
  const v = await registerEndpoint(t, victim.url, { events: ['payment.authorised', 'payment.captured'] });
  victim.secrets = [v.secret];
  const authorise = async (reference: string) => {
    const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ reference }) });
    assert.equal(res.statusCode, 201, res.body);
    const payment = res.json() as { id: string; redirect_url: string };
    return { id: payment.id, complete: () => t.gateway.services.checkout.complete(new URL(payment.redirect_url).pathname.split('/').pop()!) };
  };
  // payment.created goes to the blocker alone and takes the slot; then the victim's two events queue.
  const payment = await authorise('lease-1');
  await waitFor('the blocking request', () => blocker.hangingCount === 1);
  await payment.complete();
  const victimLeases = async () => (await db.selectFrom('deliveries').select('lease_token').where('endpoint_id', '=', v.id).where('status', '=', 'pending').execute()).map((r) => r.lease_token);
  await waitFor('both victim callbacks leased behind the blocked slot', async () => {
    const tokens = await victimLeases();
    return tokens.length === 2 && tokens.every((x) => x !== null);
  });
  assert.equal(victim.requests, 0);
  t.clock.advance(HOUR);
  return { blocker, victim, victimId: v.id, paymentId: payment.id, victimLeases, authorise };
}

for (const dialect of DIALECTS) {
  describe(`a lease that runs out while its delivery waits for a slot, one process (${dialect})`, () => {
    let t: TestGateway;
    const receivers: Receiver[] = [];

    before(async () => {
      t = await startTestGateway({ dialect, workers: true, env: { DISPATCH_CONCURRENCY: '1', DISPATCH_POLL_MS: '20', WEBHOOK_TIMEOUT_MS: '60000' } });
    });
    after(async () => {
      await Promise.all(receivers.map((r) => r.stop()));
      await t.close();
    });

    it('is not leased again by its own process, and is sent once when its turn comes', async () => {
      const db = t.gateway.services.ctx.database.db;
      const s = await leasesRunOutWhileWaiting(t);
      receivers.push(s.blocker, s.victim);
      const before = await s.victimLeases();
      // The deliveries are due and unleased as far as the database can tell; the process still holds them.
      await (t.gateway.workers!.loops.dispatcher as DispatcherLoop).dispatcher.pass();
      assert.deepEqual(await s.victimLeases(), before, 'still under the lease they were queued with');

      s.blocker.answerHanging(500);
      await waitFor('both victim callbacks', () => s.victim.forPayment(s.paymentId).length === 2);
      await waitFor('both recorded', async () => (await db.selectFrom('deliveries').select('id').where('endpoint_id', '=', s.victimId).where('status', '=', 'succeeded').execute()).length === 2);
      assert.deepEqual([...s.victim.ids().values()], [1, 1]);
    });
  });
}

// Several gateway processes share a PostgreSQL database (SQLite has one process per file).
if (DIALECTS.includes('postgres')) {
  describe('a lease that runs out while its delivery waits for a slot, two processes (postgres)', () => {
    let t: TestGateway;
    const processes: Gateway[] = [];
    const receivers: Receiver[] = [];

    before(async () => {
      t = await startTestGateway({ dialect: 'postgres', workers: false, env: { WEBHOOK_TIMEOUT_MS: '60000' } });
    });
    after(async () => {
      await Promise.all(processes.map((g) => g.close()));
      await Promise.all(receivers.map((r) => r.stop()));
      await t.close();
    });

    it('is not sent by the process that lost it to another process', async () => {
      const log = pino({ level: 'silent' });
      processes.push(await createGateway({ ...t.config, workersEnabled: true, dispatchPollMs: 20, dispatchConcurrency: 1 }, log, { clock: t.clock }));
      const db = t.gateway.services.ctx.database.db;
      const s = await leasesRunOutWhileWaiting(t);
      receivers.push(s.blocker, s.victim);

      // Another process finds them due and delivers them.
      const other = await createGateway({ ...t.config, workersEnabled: false }, log, { clock: t.clock });
      processes.push(other);
      const dispatcher = new Dispatcher(other.services);
      await dispatcher.pass();
      await waitFor('the other process to deliver both', async () => (await db.selectFrom('deliveries').select('id').where('endpoint_id', '=', s.victimId).where('status', '=', 'succeeded').execute()).length === 2);
      await dispatcher.stop();
      assert.deepEqual([...s.victim.ids().values()], [1, 1]);

      // The slot frees: the first process gets to the deliveries it queued. A later payment
      // to the victim queues behind them, so once it arrives they have had their turn.
      s.blocker.mode = 'fail';
      s.blocker.answerHanging(500);
      const marker = await s.authorise('lease-marker');
      await marker.complete();
      await waitFor('the later payment at the victim', () => s.victim.forPayment(marker.id).length === 2);
      assert.deepEqual(
        [...s.victim.ids()].filter(([, n]) => n !== 1),
        [],
        'every callback arrived once',
      );
    });
  });
}

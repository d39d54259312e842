import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createGateway } from '../../src/server.js';
import { Dispatcher } from '../../src/workers/dispatcher.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { MailSink } from '../support/smtp-sink.js';
import { paidPayment, waitFor } from '../webhooks/support.js';

/** Four times the default SMTP timeouts (10 s + 10 s + 30 s) plus 5 s: an e-mail's lease when SMTP_URL sets none. */
const DEFAULT_MAIL_LEASE_MS = 4 * 50_000 + 5_000;

for (const dialect of DIALECTS) {
  describe(`e-mail leases under SMTP_URL's timeouts (${dialect})`, () => {
    let t: TestGateway;
    let sink: MailSink;
    before(async () => {
      sink = await new MailSink().start();
      // Ten minutes of socket inactivity allowed: one attempt may outlast the default lease.
      t = await startTestGateway({ dialect, workers: true, env: { SMTP_URL: `smtp://127.0.0.1:${sink.port}?socketTimeout=600000`, DISPATCH_POLL_MS: '50' } });
      await t.gateway.services.merchants.updateChannel('sandbox', { notifyEmails: ['merchant@sandbox.test'], notifyEvents: ['payment.captured'], customerReceipts: false });
    });
    after(async () => {
      sink.release();
      await t.close();
      await sink.stop();
    });

    it('keeps a slow send leased for as long as the configured timeouts allow it to take', async () => {
      sink.hold = true;
      await paidPayment(t, { reference: 'slow-mail' });
      await waitFor('the message to reach the slow server', () => sink.holding === 1);
      t.clock.advance(DEFAULT_MAIL_LEASE_MS + 1_000);

      const db = t.gateway.services.ctx.database.db;
      const claimable = await db.selectFrom('deliveries').select('id').where('kind', '=', 'email').where('status', '=', 'pending').where('locked_until', '<=', t.clock.now()).execute();
      assert.deepEqual(claimable, [], 'no other worker may take the e-mail while it is still being sent');
      if (dialect === 'postgres') {
        const other = await createGateway({ ...t.config, workersEnabled: false }, pino({ level: 'silent' }), { clock: t.clock });
        const dispatcher = new Dispatcher(other.services);
        try {
          assert.equal(await dispatcher.pass(), 0, 'another process finds nothing to send');
        } finally {
          await dispatcher.stop();
          await other.close();
        }
      }

      sink.release();
      await waitFor('the e-mail to be recorded', async () => (await db.selectFrom('deliveries').select('status').where('kind', '=', 'email').execute()).every((d) => d.status === 'succeeded'));
      assert.equal(sink.to('merchant@sandbox.test').length, 1);
    });
  });
}

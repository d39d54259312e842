import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { DIALECTS, exampleBody, startTestGateway } from '../support/gateway.js';
import { Receiver, registerEndpoint, waitFor } from './support.js';

interface Line {
  level: number;
  msg: string;
  delivery_id?: string;
  endpoint_id?: string;
  status_code?: number | null;
  attempt?: number;
  merchant_id?: string;
  payment_id?: string | null;
  event_type?: string;
  endpoint?: string;
}

for (const dialect of DIALECTS) {
  describe(`failed callbacks in the operator's log (${dialect})`, () => {
    it('logs each failed attempt at warn and a delivery given up on at error, without the endpoint URL', async () => {
      const lines: Line[] = [];
      const raw: string[] = [];
      const log = pino({ level: 'warn' }, { write: (text: string) => (raw.push(text), lines.push(JSON.parse(text) as Line)) });
      const t = await startTestGateway({ dialect, workers: true, log, env: { DISPATCH_POLL_MS: '50' } });
      const failing = await new Receiver().start();
      failing.mode = 'fail';
      const gone = await new Receiver().start();
      gone.mode = 'gone';
      try {
        const retried = await registerEndpoint(t, `${failing.url}?token=merchant-secret`, { events: ['payment.created'] });
        const dropped = await registerEndpoint(t, gone.url, { events: ['payment.created'] });
        const payment = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody() });
        assert.equal(payment.statusCode, 201);
        const failed = () => lines.filter((l) => l.endpoint_id === retried.id && l.level === 40 && /callback attempt failed/.test(l.msg));
        const givenUp = () => lines.filter((l) => l.endpoint_id === dropped.id && l.level === 50 && /gave up on a callback/.test(l.msg));
        await waitFor('both outcomes in the log', () => failed().length > 0 && givenUp().length > 0);
        assert.deepEqual([failed()[0]!.status_code, failed()[0]!.attempt], [500, 1]);
        assert.equal(givenUp()[0]!.status_code, 410);
        // Whose callback, about what, and where to (the origin only): what the operator tells the merchant.
        const { merchant_id, payment_id, event_type, endpoint } = failed()[0]!;
        assert.deepEqual({ merchant_id, payment_id, event_type, endpoint }, { merchant_id: t.credentials.merchant_id, payment_id: payment.json().id, event_type: 'payment.created', endpoint: new URL(failing.url).origin });
        assert.ok(!raw.join('').includes('merchant-secret'), 'an endpoint URL reached the log');
      } finally {
        await t.close();
        await failing.stop();
        await gone.stop();
      }
    });
  });
}

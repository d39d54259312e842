import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SandboxAcquirer } from '../../src/adapters/acquirers/sandbox/sandbox-acquirer.js';
import { meteredAcquirer } from '../../src/app/metered-acquirer.js';
import { Metrics } from '../../src/app/metrics.js';

describe('an acquirer that gives no answer', () => {
  it('counts as threw, timed, and the error reaches the caller as it was', async () => {
    const metrics = new Metrics();
    const down = Object.assign(new SandboxAcquirer(), {
      capture: async () => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        throw new Error('connect ECONNREFUSED');
      },
    });
    const acquirer = meteredAcquirer(down, metrics);
    const req = { paymentId: 'pay_x', amount: 100, currency: 'USD', networkReference: null, cardBin: '424242', cardLast4: '4242' };
    await assert.rejects(acquirer.capture(req), /ECONNREFUSED/);
    const text = metrics.render([]);
    metrics.close();
    assert.match(text, /^tzero_acquirer_requests_total\{operation="capture",outcome="threw"\} 1$/m);
    const sum = Number(/^tzero_acquirer_request_duration_seconds_sum\{operation="capture"\} (\S+)$/m.exec(text)?.[1]);
    assert.ok(sum >= 0.015, `timed: ${sum}`);
  });
});

import type { Acquirer } from '../ports/acquirer.js';
import type { AcquirerOperation, Metrics } from './metrics.js';

/**
 * The connector, with each call to the acquirer counted by its outcome and timed for the
 * operator's metrics: an acquirer that starts failing, stops answering or slows down is seen
 * there before merchants report it. A call that throws (no answer: a timeout, a refused
 * connection) counts as `threw`. Counting is in memory: nothing is added to authorise's writes.
 */
export function meteredAcquirer(inner: Acquirer, metrics: Metrics): Acquirer {
  async function timed<R extends { outcome: string }>(operation: AcquirerOperation, call: () => Promise<R>): Promise<R> {
    const began = performance.now();
    try {
      const result = await call();
      metrics.countAcquirerRequest(operation, result.outcome, (performance.now() - began) / 1000);
      return result;
    } catch (error) {
      metrics.countAcquirerRequest(operation, 'threw', (performance.now() - began) / 1000);
      throw error;
    }
  }
  return {
    name: inner.name,
    authenticationFlow: (card) => inner.authenticationFlow(card),
    verifyChallenge: (card, answer) => inner.verifyChallenge(card, answer),
    authorise: (req) => timed('authorise', () => inner.authorise(req)),
    capture: (req) => timed('capture', () => inner.capture(req)),
    void: (req) => timed('void', () => inner.void(req)),
    refund: (req) => timed('refund', () => inner.refund(req)),
  };
}

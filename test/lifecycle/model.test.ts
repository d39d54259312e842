import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { canTransition, isRefundable, PAYMENT_STATUSES } from '../../src/domain/payment-state.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { authorisedPayment, getPayment, post } from './helpers.js';

type Op = { op: 'capture' | 'void' | 'refund'; amount: number | null };

interface Model {
  status: string;
  captured: number;
  refunded: number;
}

const AUTHORISED = 1000;

/** What the API must answer, from the rules in docs/lifecycle.md. */
function expect(m: Model, { op, amount }: Op): { http: number; code?: string } {
  if (op === 'capture') {
    if (m.status !== 'authorised') return { http: 409, code: 'payment_not_capturable' };
    const a = amount ?? AUTHORISED;
    if (a > AUTHORISED) return { http: 409, code: 'amount_exceeds_capturable' };
    m.captured = a;
    m.status = a === AUTHORISED ? 'captured' : 'partially_captured';
    return { http: 200 };
  }
  if (op === 'void') {
    if (m.status !== 'authorised') return { http: 409, code: 'payment_not_voidable' };
    m.status = 'voided';
    return { http: 200 };
  }
  if (!['captured', 'partially_captured', 'partially_refunded'].includes(m.status)) return { http: 409, code: 'payment_not_refundable' };
  const left = m.captured - m.refunded;
  const a = amount ?? left;
  if (left <= 0 || a > left) return { http: 409, code: 'amount_exceeds_refundable' };
  m.refunded += a;
  m.status = m.refunded >= m.captured ? 'refunded' : 'partially_refunded';
  return { http: 201 };
}

const ops = fc.array(
  fc.record({ op: fc.constantFrom<Op['op']>('capture', 'void', 'refund', 'refund'), amount: fc.option(fc.integer({ min: 1, max: 1200 }), { nil: null }) }),
  { minLength: 1, maxLength: 8 },
);

describe('payment state machine', () => {
  it('has no way out of a final status, and claims lead only to their own outcomes', () => {
    for (const from of PAYMENT_STATUSES) {
      for (const to of PAYMENT_STATUSES) {
        if (['refunded', 'voided', 'expired', 'declined', 'failed', 'cancelled'].includes(from)) assert.equal(canTransition(from, to), false, `${from} -> ${to}`);
      }
    }
    assert.equal(canTransition('authorised', 'capturing'), true);
    assert.equal(canTransition('capturing', 'voiding'), false);
    assert.equal(canTransition('voiding', 'capturing'), false);
    assert.equal(canTransition('partially_captured', 'capturing'), false);
    assert.equal(isRefundable('authorised'), false);
    assert.equal(isRefundable('partially_captured'), true);
  });
});

for (const dialect of DIALECTS) {
  describe(`any sequence of captures, voids and refunds follows the rules (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(async () => {
      await t.close();
    });

    it('matches the model: same answers, same balances, never a 5xx', async () => {
      await fc.assert(
        fc.asyncProperty(ops, async (sequence) => {
          const p = await authorisedPayment(t, { amount: AUTHORISED });
          const model: Model = { status: 'authorised', captured: 0, refunded: 0 };
          for (const step of sequence) {
            const want = expect(model, step);
            const body = step.op === 'void' || step.amount === null ? {} : { amount: step.amount };
            const res = await post(t, `/payment/${p.id}/${step.op}`, body);
            assert.equal(res.statusCode, want.http, `${step.op} ${step.amount}: ${res.body}`);
            if (want.code) assert.equal(res.json().code, want.code);
          }
          const final = await getPayment(t, p.id);
          assert.equal(final.status, model.status);
          assert.equal(final.amount_captured, model.captured);
          assert.equal(final.amount_refunded, model.refunded);
        }),
        { numRuns: 25 },
      );
    });
  });
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CheckoutView } from '../../src/app/checkout.js';
import { openPage } from '../../src/http/pages/checkout-page.js';

const view = (over: Partial<CheckoutView>, state: 'open' | 'processing' = 'open'): CheckoutView =>
  ({
    payment: { id: 'pay_1', amount: 100, currency: 'USD', reference: 'order-1', card_brand: 'visa', card_last4: '3220', card_exp_month: 12, card_exp_year: 2031, status: 'requires_action' },
    details: {},
    session: { state, challenge_attempts: 0 },
    channelName: 'Shop',
    channelReference: 'shop',
    sandbox: true,
    flow: 'challenge',
    attemptsLeft: 3,
    ...over,
  }) as unknown as CheckoutView;

describe('the hosted page', () => {
  it("tells the sandbox's challenge code on sandbox channels only", () => {
    assert.match(openPage(view({}), 'tok', 'csrf', 'nonce', 0), /the code is <strong>1234<\/strong>/);
    const live = openPage(view({ sandbox: false }), 'tok', 'csrf', 'nonce', 0);
    assert.doesNotMatch(live, /1234|Sandbox|otp-hint/);
    assert.match(openPage(view({ sandbox: false }), 'tok', 'csrf', 'nonce', 0, 'wrong_code'), /aria-describedby="otp-error" aria-invalid="true"/);
  });

  it('never refreshes a payment being processed by itself: the customer looks again with Check now, which goes on to the merchant', () => {
    const processing = openPage(view({}, 'processing'), 'tok', 'csrf', 'nonce', 0);
    assert.doesNotMatch(processing, /http-equiv="refresh"/);
    assert.match(processing, /href="\/pay\/tok\?return=1">Check now</);
    assert.doesNotMatch(processing, /12\/2031|Expires/);
  });
});

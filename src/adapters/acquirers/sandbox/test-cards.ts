/**
 * The sandbox's deterministic cards. Published at GET /sandbox/test-cards and in the
 * README, so this table is the single source for both.
 */
export type SandboxBehaviour =
  | { kind: 'approve' }
  | { kind: 'decline'; code: string; message: string; retryable: boolean }
  | { kind: 'error' }
  | { kind: 'capture_fails' }
  | { kind: 'refund_fails' }
  | { kind: 'cit_requires_authentication' }
  | { kind: 'mit_declines' }
  | { kind: 'mit_requires_authentication' };

export interface TestCard {
  number: string;
  brand: string;
  flow: 'frictionless' | 'challenge';
  behaviour: SandboxBehaviour;
  description: string;
}

export const SANDBOX_CHALLENGE_CODE = '1234';

const decline = (code: string, message: string, retryable: boolean): SandboxBehaviour => ({ kind: 'decline', code, message, retryable });

export const TEST_CARDS: readonly TestCard[] = [
  { number: '4242424242424242', brand: 'visa', flow: 'frictionless', behaviour: { kind: 'approve' }, description: 'Approved, frictionless' },
  { number: '5555555555554444', brand: 'mastercard', flow: 'frictionless', behaviour: { kind: 'approve' }, description: 'Approved, frictionless (Mastercard)' },
  { number: '2223003122003222', brand: 'mastercard', flow: 'frictionless', behaviour: { kind: 'approve' }, description: 'Approved, frictionless (Mastercard 2-series)' },
  { number: '378282246310005', brand: 'amex', flow: 'frictionless', behaviour: { kind: 'approve' }, description: 'Approved, frictionless (Amex, 4-digit CVC)' },
  { number: '4000000000003220', brand: 'visa', flow: 'challenge', behaviour: { kind: 'approve' }, description: '3-D Secure challenge; approved when the code is right' },
  { number: '4000008400001629', brand: 'visa', flow: 'challenge', behaviour: decline('do_not_honor', 'The issuer declined the payment after authentication.', false), description: '3-D Secure challenge, then declined (do_not_honor, retry_advice: do_not_retry)' },
  { number: '4000000000000002', brand: 'visa', flow: 'frictionless', behaviour: decline('do_not_honor', 'The issuer declined the payment.', false), description: 'Declined: do_not_honor, retry_advice: do_not_retry' },
  { number: '4000000000009995', brand: 'visa', flow: 'frictionless', behaviour: decline('insufficient_funds', 'The card has insufficient funds.', true), description: 'Declined: insufficient_funds, retry_advice: retry_later' },
  { number: '4000000000000069', brand: 'visa', flow: 'frictionless', behaviour: decline('expired_card', 'The card has expired.', false), description: 'Declined: expired_card, retry_advice: retry_with_new_details' },
  { number: '4000000000000127', brand: 'visa', flow: 'frictionless', behaviour: decline('incorrect_cvc', 'The CVC is incorrect.', true), description: 'Declined: incorrect_cvc, retry_advice: retry_with_new_details' },
  { number: '4000000000003063', brand: 'visa', flow: 'frictionless', behaviour: { kind: 'cit_requires_authentication' }, description: 'Declined: authentication_required, retry_advice: retry_with_new_details (the issuer wants the challenge the frictionless flow skipped)' },
  { number: '4000000000000119', brand: 'visa', flow: 'frictionless', behaviour: { kind: 'error' }, description: 'Acquirer processing error (status failed)' },
  { number: '4000000000000259', brand: 'visa', flow: 'frictionless', behaviour: { kind: 'capture_fails' }, description: 'Authorised; every capture is refused (capture: 422 capture_failed, decline_code: capture_refused; a delayed or immediate automatic capture leaves the payment authorised and emits payment.capture_failed). The authorisation stays voidable' },
  { number: '4000000000005126', brand: 'visa', flow: 'frictionless', behaviour: { kind: 'refund_fails' }, description: 'Authorised and captured normally; every refund fails (the refund is created, 201, with status: failed, failure_code: refund_failed; refund.failed is emitted; nothing is refunded)' },
  { number: '4000000000000341', brand: 'visa', flow: 'frictionless', behaviour: { kind: 'mit_declines' }, description: 'Customer-initiated payments approve; later merchant-initiated ones decline (do_not_honor, retry_advice: do_not_retry)' },
  { number: '4000002760003184', brand: 'visa', flow: 'frictionless', behaviour: { kind: 'mit_requires_authentication' }, description: 'Merchant-initiated payments are stepped up by the issuer: requires_action with a redirect_url where the customer answers a challenge (code 1234)' },
];

const byNumber = new Map(TEST_CARDS.map((c) => [c.number, c]));

export function findTestCard(pan: string): TestCard | undefined {
  return byNumber.get(pan);
}

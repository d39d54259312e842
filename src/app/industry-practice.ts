import { DomainError } from '../domain/errors.js';
import { formatAmount } from '../domain/money.js';
import type { PaymentData } from '../domain/payment-data.js';
import type { PaymentsTable } from '../adapters/storage/schema.js';
import type { PaymentDetails } from './payment-resource.js';

const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * How long after the payment it names an industry-practice MIT may follow it
 * (docs/payment-data.md, "Industry-practice MITs"). A resubmission recovers a debt the
 * issuer declined for want of funds, and schemes count and bar stale retries; a delayed
 * charge (minibar, damage) must reach the card within Visa's 90 days of the stay or rental,
 * counted here from the approval, the only date of it the gateway knows.
 */
export const INDUSTRY_USAGE_MAX_AGE_DAYS = { resubmission: 14, delayed_charge: 90 } as const;

/** States in which the named transaction is over: released or wholly given back. */
const CLOSED_STATUSES: readonly string[] = ['voiding', 'voided', 'refunded'];

/**
 * The rules an industry-practice MIT (resubmission, delayed charge, reauthorisation,
 * no-show) owes the one payment it carries on: its state and its age. Each refusal is
 * a 422 on `previous_payment_id`, before anything is written or sent to the acquirer.
 */
/**
 * When the transaction a chain of one industry practice carries on began: a resubmission of a
 * resubmission still retries the first decline, a delayed charge after a delayed charge still
 * follows the one stay. Kept in each such payment's details (industry_practice_since), so a
 * chain cannot restart its clock by naming its own last link.
 */
function chainStart(usage: 'resubmission' | 'delayed_charge', prevDetails: PaymentDetails, own: number): number {
  return prevDetails.payment_data.industry_usage === usage ? (prevDetails.industry_practice_since ?? own) : own;
}

/**
 * Checks an industry-practice MIT against the payment it names; returns, for a resubmission or
 * delayed charge, when the chain it continues began (kept in the new payment's details).
 */
export function checkIndustryPractice(data: PaymentData, prev: PaymentsTable, prevDetails: PaymentDetails, payment: PaymentsTable, now: number): number | undefined {
  const previousId = prev.id;
  const refuse = (code: string, message: string) => new DomainError(422, code, message, '/payment_data/previous_payment_id');
  const usage = data.industry_usage;

  if (usage === 'resubmission') {
    if (prev.status !== 'declined') throw refuse('resubmission_requires_declined_payment', `industry_usage "resubmission" retries a declined payment, and payment ${previousId} is "${prev.status}"`);
    // Schemes charge for, and may bar, retries of a decline the issuer will never turn into an approval.
    if (prevDetails.retry_advice === 'do_not_retry') {
      throw refuse('resubmission_not_retryable', `payment ${previousId} was declined with ${prev.decline_code} and retry_advice "do_not_retry": the issuer will not approve it again, so it cannot be resubmitted`);
    }
    // The issuer asked for something only the customer can give (a 3-D Secure challenge, the
    // right CVC, a current card): the same request without them is no retry, and after a
    // failed or skipped authentication it would take the money the issuer would not.
    if (prevDetails.retry_advice === 'retry_with_new_details') {
      throw refuse('resubmission_needs_new_details', `payment ${previousId} was declined with ${prev.decline_code} and retry_advice "retry_with_new_details": the issuer wants what only the customer can give, so ask them in a customer-initiated payment instead of resubmitting it`);
    }
    if (payment.amount > prev.amount) {
      throw new DomainError(422, 'resubmission_amount_exceeds_declined', `a resubmission asks again for what payment ${previousId} was declined, ${formatAmount(prev.amount, prev.currency)}, and no more`, '/amount');
    }
    const since = chainStart('resubmission', prevDetails, prev.created_at);
    tooLate(refuse, 'resubmission', previousId, 'the first decline it retries', since, now);
    return since;
  }
  if (prev.authorised_at === null) {
    throw refuse('initial_payment_not_authorised', `payment ${previousId} was never approved (status "${prev.status}"), so it set up no agreement to charge under`);
  }
  // A no-show follows a reservation's guarantee, often a verification the merchant voided at
  // once: the guarantee still stands, so its state is not checked.
  if (usage !== 'delayed_charge' && usage !== 'reauthorisation') return undefined;
  if (CLOSED_STATUSES.includes(prev.status)) {
    const what = usage === 'delayed_charge' ? 'delayed charge' : 'reauthorisation';
    throw refuse('industry_usage_payment_closed', `payment ${previousId} is "${prev.status}": the sale it was for was released or wholly refunded, so no ${what} can follow it; charge under an agreement (a "-subsequent" payment_sub_type) or ask the customer`);
  }
  if (usage === 'delayed_charge') {
    if (prev.captured_amount === 0) {
      throw refuse('delayed_charge_requires_captured_payment', `a delayed charge adds to a payment that was charged, and payment ${previousId} is "${prev.status}" with nothing captured: capture it, or reauthorise it with industry_usage "reauthorisation"`);
    }
    const since = chainStart('delayed_charge', prevDetails, prev.authorised_at);
    tooLate(refuse, 'delayed_charge', previousId, 'the approval it follows', since, now);
    return since;
  }
  return undefined;
}

function tooLate(refuse: (code: string, message: string) => DomainError, usage: keyof typeof INDUSTRY_USAGE_MAX_AGE_DAYS, previousId: string, since: string, at: number, now: number): void {
  const days = INDUSTRY_USAGE_MAX_AGE_DAYS[usage];
  if (now - at <= days * DAY_MS) return;
  throw refuse('industry_usage_too_late', `industry_usage "${usage}" may follow a payment within ${days} days of ${since}, and payment ${previousId} is older (${new Date(at).toISOString()}); ask the customer in a customer-initiated payment`);
}

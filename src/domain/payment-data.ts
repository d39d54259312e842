import type { FieldError } from './errors.js';

/**
 * Card-scheme credential-on-file framework (Visa/Mastercard stored-credential rules):
 * an agreement is set up by a customer-initiated "initial" payment and only then used
 * by merchant-initiated "subsequent" ones. Each rule has a stable name, returned as the
 * error code so an integrator can look it up in docs/payment-data.md.
 */
export type PaymentType = 'cit' | 'mit';
export type PaymentSubType =
  | 'one-off'
  | 'recurring-initial'
  | 'recurring-subsequent'
  | 'instalment-initial'
  | 'instalment-subsequent'
  | 'unscheduled-initial'
  | 'unscheduled-subsequent';
export type IndustryUsage = 'none' | 'delayed_charge' | 'no_show' | 'reauthorisation' | 'resubmission';

/** The kind of agreement a sub type belongs to; initial and subsequent must share it. */
export type AgreementKind = 'recurring' | 'instalment' | 'unscheduled';

export interface PaymentData {
  payment_type: PaymentType;
  payment_sub_type: PaymentSubType;
  credential_on_file: boolean;
  industry_usage: IndustryUsage;
  previous_network_reference?: string;
  previous_payment_id?: string;
  /** instalment-initial only: how many payments the plan has, this one included (EMV 3DS purchaseInstalData). */
  instalments?: number;
}

export interface PaymentDataInput {
  payment_type?: PaymentType | undefined;
  payment_sub_type?: PaymentSubType | undefined;
  credential_on_file?: boolean | undefined;
  industry_usage?: IndustryUsage | undefined;
  previous_network_reference?: string | undefined;
  previous_payment_id?: string | undefined;
  instalments?: number | undefined;
}

/** What the payment method contributes to the rules: a stored token is a credential on file by nature. */
export interface MethodFacts {
  kind: 'card' | 'token';
  cvcPresent: boolean;
  customerReference: string | undefined;
}

export function isInitial(sub: PaymentSubType): boolean {
  return sub.endsWith('-initial');
}

export function isSubsequent(sub: PaymentSubType): boolean {
  return sub.endsWith('-subsequent');
}

export function agreementKind(sub: PaymentSubType): AgreementKind | null {
  if (sub === 'one-off') return null;
  return sub.slice(0, sub.indexOf('-')) as AgreementKind;
}

function rule(errors: FieldError[], pointer: string, code: string, message: string): void {
  errors.push({ pointer, code, message });
}

/**
 * Fill defaults and check the rules between fields. Defaults: a one-off customer-initiated
 * payment; a customer-initiated payment that stores the card sets up an unscheduled
 * agreement (so later merchant-initiated "unscheduled-subsequent" payments may use it);
 * a merchant-initiated one is an unscheduled subsequent use of a stored credential, or a
 * "one-off" when it carries an industry_usage.
 */
export function normalisePaymentData(
  input: PaymentDataInput | undefined,
  storeForFutureUse: boolean,
  method: MethodFacts = { kind: 'card', cvcPresent: true, customerReference: undefined },
): { value: PaymentData; errors: FieldError[] } {
  const type = input?.payment_type ?? 'cit';
  const industryUsage = input?.industry_usage ?? 'none';
  // Industry-practice MITs (no-show, delayed charge…) follow one earlier payment, not an agreement.
  const defaultSub: PaymentSubType = type === 'mit' ? (industryUsage === 'none' ? 'unscheduled-subsequent' : 'one-off') : storeForFutureUse ? 'unscheduled-initial' : 'one-off';
  const sub = input?.payment_sub_type ?? defaultSub;
  const value: PaymentData = {
    payment_type: type,
    payment_sub_type: sub,
    credential_on_file: input?.credential_on_file ?? (storeForFutureUse || method.kind === 'token' || (type === 'mit' && industryUsage === 'none')),
    industry_usage: industryUsage,
  };
  if (input?.previous_network_reference) value.previous_network_reference = input.previous_network_reference;
  if (input?.previous_payment_id) value.previous_payment_id = input.previous_payment_id;
  if (input?.instalments !== undefined) value.instalments = input.instalments;

  const errors: FieldError[] = [];

  if (type === 'cit' && isSubsequent(sub)) {
    rule(errors, '/payment_data/payment_sub_type', 'subsequent_requires_mit', `payment_sub_type "${sub}" is a merchant-initiated use of a stored credential: set payment_type to "mit"`);
  }
  // Schemes and 3-D Secure (purchaseInstalData) want the plan's length when it is agreed, and
  // the gateway counts its payments against it: an instalment MIT beyond it is refused.
  if (sub === 'instalment-initial' && value.instalments === undefined) {
    rule(errors, '/payment_data/instalments', 'instalments_required', 'payment_sub_type "instalment-initial" agrees a plan of a known number of payments: send instalments, the number of payments in the plan, this one included');
  }
  if (sub !== 'instalment-initial' && value.instalments !== undefined) {
    rule(errors, '/payment_data/instalments', 'instalments_not_allowed', `instalments is the length of the plan an "instalment-initial" payment agrees, and this payment is "${sub}": leave it out (a later instalment's plan is the one its previous_payment_id belongs to)`);
  }
  if (type === 'mit' && isInitial(sub)) {
    rule(errors, '/payment_data/payment_sub_type', 'initial_requires_cit', `payment_sub_type "${sub}" sets up an agreement, which needs the customer present: set payment_type to "cit", or use "${sub.replace('-initial', '-subsequent')}" for a merchant-initiated payment`);
  }
  if (type === 'mit' && sub === 'one-off' && industryUsage === 'none') {
    rule(errors, '/payment_data/payment_sub_type', 'mit_requires_agreement', 'a merchant-initiated payment must be a "-subsequent" payment_sub_type or carry an industry_usage; "one-off" has no agreement');
  }
  if (isInitial(sub) && !value.credential_on_file) {
    rule(errors, '/payment_data/credential_on_file', 'initial_requires_credential_on_file', `payment_sub_type "${sub}" sets up an agreement: credential_on_file must be true`);
  }
  if (type === 'mit' && isSubsequent(sub) && !value.credential_on_file) {
    rule(errors, '/payment_data/credential_on_file', 'mit_requires_credential_on_file', `payment_sub_type "${sub}" uses a stored credential: credential_on_file must be true`);
  }
  if (storeForFutureUse && !value.credential_on_file) {
    rule(errors, '/payment_data/credential_on_file', 'store_requires_credential_on_file', 'store_for_future_use stores the card as a credential on file: credential_on_file cannot be false');
  }
  if (method.kind === 'token' && !value.credential_on_file) {
    rule(errors, '/payment_data/credential_on_file', 'token_requires_credential_on_file', 'a stored card token is a credential on file: credential_on_file cannot be false');
  }
  if (type === 'cit' && industryUsage !== 'none') {
    rule(errors, '/payment_data/industry_usage', 'industry_usage_requires_mit', `industry_usage "${industryUsage}" is for merchant-initiated payments only`);
  }
  if (type === 'mit' && !value.previous_payment_id && !value.previous_network_reference) {
    rule(errors, '/payment_data/previous_payment_id', 'mit_requires_initial_reference', 'a merchant-initiated payment must reference the customer-initiated payment that set up the agreement: give previous_payment_id or previous_network_reference');
  }
  if (storeForFutureUse && type === 'mit') {
    rule(errors, '/payment_method/store_for_future_use', 'store_requires_cit', 'store_for_future_use needs the customer present: only customer-initiated payments can store a card');
  }
  if (storeForFutureUse && !method.customerReference) {
    rule(errors, '/customer/reference', 'store_requires_customer_reference', 'store_for_future_use keeps the card under your customer reference: send customer.reference');
  }
  if (type === 'mit' && method.cvcPresent) {
    rule(errors, '/payment_method/cvc', 'mit_cvc_not_allowed', 'a merchant-initiated payment carries no CVC: the CVC may never be stored, so leave it out');
  }
  return { value, errors };
}

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

export interface PaymentData {
  payment_type: PaymentType;
  payment_sub_type: PaymentSubType;
  credential_on_file: boolean;
  industry_usage: IndustryUsage;
  previous_network_reference?: string;
  previous_payment_id?: string;
}

export interface PaymentDataInput {
  payment_type?: PaymentType | undefined;
  payment_sub_type?: PaymentSubType | undefined;
  credential_on_file?: boolean | undefined;
  industry_usage?: IndustryUsage | undefined;
  previous_network_reference?: string | undefined;
  previous_payment_id?: string | undefined;
}

export function isInitial(sub: PaymentSubType): boolean {
  return sub.endsWith('-initial');
}

export function isSubsequent(sub: PaymentSubType): boolean {
  return sub.endsWith('-subsequent');
}

/** Fill defaults (a one-off customer-initiated payment) and check the rules between fields. */
export function normalisePaymentData(input: PaymentDataInput | undefined, storeForFutureUse: boolean): { value: PaymentData; errors: FieldError[] } {
  const type = input?.payment_type ?? 'cit';
  const sub = input?.payment_sub_type ?? (type === 'mit' ? 'unscheduled-subsequent' : 'one-off');
  const value: PaymentData = {
    payment_type: type,
    payment_sub_type: sub,
    credential_on_file: input?.credential_on_file ?? (storeForFutureUse || type === 'mit'),
    industry_usage: input?.industry_usage ?? 'none',
  };
  if (input?.previous_network_reference) value.previous_network_reference = input.previous_network_reference;
  if (input?.previous_payment_id) value.previous_payment_id = input.previous_payment_id;

  const errors: FieldError[] = [];
  const rule = (pointer: string, code: string, message: string) => errors.push({ pointer: `/payment_data${pointer}`, code, message });

  if (type === 'cit' && isSubsequent(sub)) {
    rule('/payment_sub_type', 'subsequent_requires_mit', `payment_sub_type "${sub}" is a merchant-initiated use of a stored credential: set payment_type to "mit"`);
  }
  if (type === 'mit' && (isInitial(sub) || sub === 'one-off') && value.industry_usage === 'none') {
    rule('/payment_sub_type', 'mit_requires_agreement', `a merchant-initiated payment must be a "-subsequent" payment_sub_type or carry an industry_usage; "${sub}" starts or has no agreement`);
  }
  if (isInitial(sub) && !value.credential_on_file) {
    rule('/credential_on_file', 'initial_requires_credential_on_file', `payment_sub_type "${sub}" sets up an agreement: credential_on_file must be true`);
  }
  if (type === 'mit' && !value.credential_on_file && value.industry_usage === 'none') {
    rule('/credential_on_file', 'mit_requires_credential_on_file', 'a merchant-initiated payment uses a stored credential: credential_on_file must be true');
  }
  if (type === 'cit' && value.industry_usage !== 'none') {
    rule('/industry_usage', 'industry_usage_requires_mit', `industry_usage "${value.industry_usage}" is for merchant-initiated payments only`);
  }
  if (type === 'mit' && !value.previous_payment_id && !value.previous_network_reference) {
    rule('/previous_payment_id', 'mit_requires_initial_reference', 'a merchant-initiated payment must reference its initial customer-initiated payment: give previous_payment_id or previous_network_reference');
  }
  if (storeForFutureUse && type === 'mit') {
    errors.push({ pointer: '/payment_method/store_for_future_use', code: 'store_requires_cit', message: 'store_for_future_use needs the customer present: only customer-initiated payments can store a card' });
  }
  return { value, errors };
}

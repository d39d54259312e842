import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { normalisePaymentData, type MethodFacts, type PaymentDataInput } from '../../src/domain/payment-data.js';

const card: MethodFacts = { kind: 'card', cvcPresent: true, customerReference: 'c1' };
const token: MethodFacts = { kind: 'token', cvcPresent: false, customerReference: 'c1' };
const mitCard: MethodFacts = { kind: 'card', cvcPresent: false, customerReference: undefined };

function codes(input: PaymentDataInput | undefined, store = false, method: MethodFacts = card): string[] {
  return normalisePaymentData(input, store, method).errors.map((e) => e.code);
}

describe('payment_data rules', () => {
  it('defaults a plain payment to a one-off CIT without a stored credential', () => {
    const { value, errors } = normalisePaymentData(undefined, false, card);
    assert.deepEqual(errors, []);
    assert.deepEqual(value, { payment_type: 'cit', payment_sub_type: 'one-off', credential_on_file: false, industry_usage: 'none' });
  });

  it('defaults a storing CIT to an unscheduled agreement and a token to a credential on file', () => {
    assert.equal(normalisePaymentData(undefined, true, card).value.payment_sub_type, 'unscheduled-initial');
    assert.equal(normalisePaymentData(undefined, true, card).value.credential_on_file, true);
    assert.equal(normalisePaymentData(undefined, false, token).value.credential_on_file, true);
    assert.equal(normalisePaymentData(undefined, false, token).value.payment_sub_type, 'one-off');
  });

  it('defaults an MIT to an unscheduled subsequent payment, or a one-off with an industry_usage', () => {
    assert.equal(normalisePaymentData({ payment_type: 'mit', previous_payment_id: 'pay_x' }, false, token).value.payment_sub_type, 'unscheduled-subsequent');
    const noShow = normalisePaymentData({ payment_type: 'mit', industry_usage: 'no_show', previous_payment_id: 'pay_x' }, false, mitCard);
    assert.deepEqual(noShow.errors, []);
    assert.equal(noShow.value.payment_sub_type, 'one-off');
    assert.equal(noShow.value.credential_on_file, false);
  });

  it('accepts the spec example (recurring-initial CIT) as it is', () => {
    assert.deepEqual(
      codes({ payment_type: 'cit', payment_sub_type: 'recurring-initial', credential_on_file: true, industry_usage: 'none', previous_network_reference: 'scheme_txn_id', previous_payment_id: 'internal_payment_id' }, true),
      [],
    );
  });

  const cases: Array<[string, PaymentDataInput | undefined, boolean, MethodFacts, string, string]> = [
    ['subsequent CIT', { payment_type: 'cit', payment_sub_type: 'recurring-subsequent' }, false, card, 'subsequent_requires_mit', '/payment_data/payment_sub_type'],
    ['initial MIT', { payment_type: 'mit', payment_sub_type: 'instalment-initial', previous_payment_id: 'p' }, false, token, 'initial_requires_cit', '/payment_data/payment_sub_type'],
    ['one-off MIT without industry usage', { payment_type: 'mit', payment_sub_type: 'one-off', previous_payment_id: 'p' }, false, token, 'mit_requires_agreement', '/payment_data/payment_sub_type'],
    ['initial without credential on file', { payment_sub_type: 'recurring-initial', credential_on_file: false }, false, card, 'initial_requires_credential_on_file', '/payment_data/credential_on_file'],
    ['subsequent MIT without credential on file', { payment_type: 'mit', credential_on_file: false, previous_payment_id: 'p' }, false, mitCard, 'mit_requires_credential_on_file', '/payment_data/credential_on_file'],
    ['storing without credential on file', { credential_on_file: false }, true, card, 'store_requires_credential_on_file', '/payment_data/credential_on_file'],
    ['token without credential on file', { credential_on_file: false }, false, token, 'token_requires_credential_on_file', '/payment_data/credential_on_file'],
    ['industry usage on a CIT', { industry_usage: 'no_show' }, false, card, 'industry_usage_requires_mit', '/payment_data/industry_usage'],
    ['MIT without a reference', { payment_type: 'mit' }, false, token, 'mit_requires_initial_reference', '/payment_data/previous_payment_id'],
    ['storing on an MIT', { payment_type: 'mit', previous_payment_id: 'p' }, true, { ...mitCard, customerReference: 'c1' }, 'store_requires_cit', '/payment_method/store_for_future_use'],
    ['storing without a customer', undefined, true, { ...card, customerReference: undefined }, 'store_requires_customer_reference', '/customer/reference'],
    ['CVC on an MIT', { payment_type: 'mit', previous_payment_id: 'p' }, false, { ...token, cvcPresent: true }, 'mit_cvc_not_allowed', '/payment_method/cvc'],
  ];
  for (const [name, input, store, method, code, pointer] of cases) {
    it(`refuses ${name} with ${code}`, () => {
      const found = normalisePaymentData(input, store, method).errors.find((e) => e.code === code);
      assert.ok(found, `expected ${code}, got ${codes(input, store, method).join(', ') || 'no error'}`);
      assert.equal(found.pointer, pointer);
      assert.ok(found.message.length > 20);
    });
  }
});

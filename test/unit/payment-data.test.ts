import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { agreementKind, isInitial, isSubsequent, normalisePaymentData, type MethodFacts, type PaymentDataInput } from '../../src/domain/payment-data.js';
import { INDUSTRY_USAGES, PAYMENT_SUB_TYPES } from '../../src/http/schemas/payment-request.js';

const CARD: MethodFacts = { kind: 'card', cvcPresent: true, customerReference: 'cus_1' };
const STORED: MethodFacts = { kind: 'token', cvcPresent: false, customerReference: 'cus_1' };
const MIT_REF = { previous_network_reference: '123456789012345' };

const codes = (input: PaymentDataInput | undefined, store = false, method: MethodFacts = CARD) =>
  normalisePaymentData(input, store, method).errors.map((e) => `${e.code}@${e.pointer}`).sort();

describe('payment_data defaults', () => {
  it('is a one-off customer-initiated payment when absent', () => {
    const { value, errors } = normalisePaymentData(undefined, false, CARD);
    assert.deepEqual(errors, []);
    assert.deepEqual(value, { payment_type: 'cit', payment_sub_type: 'one-off', credential_on_file: false, industry_usage: 'none' });
  });

  it('sets up an unscheduled agreement with a credential on file when the card is stored', () => {
    const { value, errors } = normalisePaymentData({}, true, CARD);
    assert.deepEqual(errors, []);
    assert.equal(value.payment_sub_type, 'unscheduled-initial');
    assert.equal(value.credential_on_file, true);
  });

  it('makes a bare mit an unscheduled subsequent use of a stored credential', () => {
    const { value, errors } = normalisePaymentData({ payment_type: 'mit', ...MIT_REF }, false, STORED);
    assert.deepEqual(errors, []);
    assert.equal(value.payment_sub_type, 'unscheduled-subsequent');
    assert.equal(value.credential_on_file, true);
    assert.equal(value.previous_network_reference, MIT_REF.previous_network_reference);
  });

  it("accepts the spec's example as sent", () => {
    const example = {
      payment_type: 'cit',
      payment_sub_type: 'recurring-initial',
      credential_on_file: true,
      industry_usage: 'none',
      previous_network_reference: 'scheme_txn_id',
      previous_payment_id: 'internal_payment_id',
    } as const;
    const { value, errors } = normalisePaymentData(example, true, CARD);
    assert.deepEqual(errors, []);
    assert.deepEqual(value, example);
  });
});

describe('payment_data rules, each with its own code and pointer', () => {
  const cases: Array<[string, PaymentDataInput, boolean, MethodFacts, string[]]> = [
    ['a subsequent sub type is merchant-initiated', { payment_sub_type: 'recurring-subsequent', credential_on_file: true }, false, CARD, ['subsequent_requires_mit@/payment_data/payment_sub_type']],
    ['an initial sub type needs the customer', { payment_type: 'mit', payment_sub_type: 'instalment-initial', instalments: 6, ...MIT_REF }, false, STORED, ['initial_requires_cit@/payment_data/payment_sub_type']],
    ['an instalment plan says how long it is', { payment_sub_type: 'instalment-initial' }, true, CARD, ['instalments_required@/payment_data/instalments']],
    ['only an instalment plan has a length', { payment_type: 'mit', payment_sub_type: 'instalment-subsequent', instalments: 6, ...MIT_REF }, false, STORED, ['instalments_not_allowed@/payment_data/instalments']],
    ['a one-off mit needs an agreement or an industry usage', { payment_type: 'mit', payment_sub_type: 'one-off', ...MIT_REF }, false, STORED, ['mit_requires_agreement@/payment_data/payment_sub_type']],
    ['an initial sub type stores the credential', { payment_sub_type: 'recurring-initial', credential_on_file: false }, false, CARD, ['initial_requires_credential_on_file@/payment_data/credential_on_file']],
    [
      'a subsequent mit uses a stored credential',
      { payment_type: 'mit', payment_sub_type: 'recurring-subsequent', credential_on_file: false, ...MIT_REF },
      false,
      { ...CARD, cvcPresent: false },
      ['mit_requires_credential_on_file@/payment_data/credential_on_file'],
    ],
    ['storing the card is a credential on file', { credential_on_file: false }, true, CARD, ['initial_requires_credential_on_file@/payment_data/credential_on_file', 'store_requires_credential_on_file@/payment_data/credential_on_file']],
    ['a token is a credential on file', { credential_on_file: false }, false, STORED, ['token_requires_credential_on_file@/payment_data/credential_on_file']],
    ['industry usage is for mit only', { industry_usage: 'no_show' }, false, CARD, ['industry_usage_requires_mit@/payment_data/industry_usage']],
    ['a mit names its initial payment', { payment_type: 'mit', payment_sub_type: 'recurring-subsequent' }, false, STORED, ['mit_requires_initial_reference@/payment_data/previous_payment_id']],
    ['only a cit stores a card', { payment_type: 'mit', ...MIT_REF }, true, STORED, ['store_requires_cit@/payment_method/store_for_future_use']],
    ['a stored card belongs to a customer reference', {}, true, { ...CARD, customerReference: undefined }, ['store_requires_customer_reference@/customer/reference']],
    ['a mit carries no CVC', { payment_type: 'mit', ...MIT_REF }, false, { ...STORED, cvcPresent: true }, ['mit_cvc_not_allowed@/payment_method/cvc']],
  ];
  for (const [name, input, store, method, expected] of cases) {
    it(name, () => assert.deepEqual(codes(input, store, method), expected.sort()));
  }

  it('takes an industry-usage mit (no show, delayed charge) without an agreement', () => {
    const { value, errors } = normalisePaymentData({ payment_type: 'mit', industry_usage: 'no_show', previous_payment_id: 'pay_1' }, false, STORED);
    assert.deepEqual(errors, []);
    assert.equal(value.payment_sub_type, 'one-off');
  });
});

describe('payment_data helpers', () => {
  it('classifies sub types', () => {
    assert.equal(agreementKind('one-off'), null);
    assert.equal(agreementKind('recurring-initial'), 'recurring');
    assert.equal(agreementKind('instalment-subsequent'), 'instalment');
    assert.equal(agreementKind('unscheduled-initial'), 'unscheduled');
    for (const sub of PAYMENT_SUB_TYPES) assert.ok(sub === 'one-off' || isInitial(sub) !== isSubsequent(sub));
  });
});

describe('payment_data property', () => {
  const input = fc.record(
    {
      payment_type: fc.constantFrom('cit' as const, 'mit' as const),
      payment_sub_type: fc.constantFrom(...PAYMENT_SUB_TYPES),
      credential_on_file: fc.boolean(),
      industry_usage: fc.constantFrom(...INDUSTRY_USAGES),
      previous_network_reference: fc.string({ minLength: 1, maxLength: 20 }),
      previous_payment_id: fc.string({ minLength: 1, maxLength: 20 }),
    },
    { requiredKeys: [] },
  );
  const method = fc.record({ kind: fc.constantFrom('card' as const, 'token' as const), cvcPresent: fc.boolean(), customerReference: fc.option(fc.string({ minLength: 1 }), { nil: undefined }) });

  it('always fills every field, keeps what was sent, and names each broken rule by pointer', () => {
    fc.assert(
      fc.property(input, fc.boolean(), method, (raw, store, facts) => {
        const { value, errors } = normalisePaymentData(raw, store, facts);
        assert.ok(value.payment_type && value.payment_sub_type && value.industry_usage && typeof value.credential_on_file === 'boolean');
        for (const key of ['payment_type', 'payment_sub_type', 'credential_on_file', 'industry_usage'] as const) {
          if (raw[key] !== undefined) assert.equal(value[key], raw[key]);
        }
        for (const e of errors) {
          assert.match(e.pointer, /^\/(payment_data|payment_method|customer)\//);
          assert.match(e.code, /^[a-z_]+$/);
          assert.ok(e.message.length > 20);
        }
        // A valid outcome never breaks the scheme rules it is checked against.
        if (errors.length === 0) {
          if (value.payment_type === 'cit') assert.ok(!isSubsequent(value.payment_sub_type) && value.industry_usage === 'none');
          if (isInitial(value.payment_sub_type)) assert.equal(value.credential_on_file, true);
          if (value.payment_type === 'mit') assert.ok(value.previous_payment_id || value.previous_network_reference);
        }
      }),
      { numRuns: 500 },
    );
  });
});

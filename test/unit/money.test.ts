import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MAX_AMOUNT_MINOR, currencyExponent, formatAmount, isCurrency, validateAmount } from '../../src/domain/money.js';

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const ALL_CODES = [...LETTERS].flatMap((a) => [...LETTERS].flatMap((b) => [...LETTERS].map((c) => a + b + c)));
const CURRENCIES = ALL_CODES.filter(isCurrency);

/** Reads `formatAmount` output back into minor units, independently of the formatter. */
function parseFormatted(s: string): { currency: string; minor: number } {
  const match = /^([A-Z]{3}) (\d{1,3}(?:,\d{3})*)(?:\.(\d+))?$/.exec(s);
  assert.ok(match, `unexpected format ${s}`);
  const [, currency = '', whole = '', fraction = ''] = match;
  assert.equal(fraction.length, currencyExponent(currency));
  return { currency, minor: Number(whole.replaceAll(',', '') + fraction) };
}

describe('currency table', () => {
  it('has the exponents ISO 4217 gives', () => {
    const expected: Record<string, number> = {
      JPY: 0, KRW: 0, ISK: 0, CLP: 0, VND: 0, XOF: 0, XAF: 0, XPF: 0, UYI: 0,
      USD: 2, EUR: 2, GBP: 2, CHF: 2, CNY: 2, INR: 2, IDR: 2, HUF: 2, COP: 2,
      BHD: 3, KWD: 3, JOD: 3, OMR: 3, TND: 3, IQD: 3, LYD: 3,
      CLF: 4, UYW: 4,
    };
    for (const [code, exponent] of Object.entries(expected)) assert.equal(currencyExponent(code), exponent, code);
  });

  it('covers the active list and leaves out withdrawn and non-monetary codes', () => {
    assert.ok(CURRENCIES.length >= 155, `only ${CURRENCIES.length} codes`);
    for (const code of ['XCG', 'ZWG', 'SLE', 'VES', 'VED', 'MRU', 'STN', 'BYN']) assert.ok(isCurrency(code), code);
    for (const code of ['HRK', 'CUC', 'ZWL', 'VEF', 'MRO', 'XAU', 'XDR', 'XTS', 'XXX']) {
      assert.equal(isCurrency(code), false, code);
    }
  });

  it('refuses new payments in codes withdrawn since launch, and still shows those taken in them', () => {
    // Bulgaria adopted the euro on 1 January 2026; the old leone was withdrawn at the end of 2023.
    for (const code of ['BGN', 'SLL']) {
      assert.equal(isCurrency(code), false, code);
      assert.deepEqual(validateAmount(1050, code).map((e) => e.code), ['invalid_currency']);
      assert.equal(formatAmount(123456, code), `${code} 1,234.56`);
    }
  });

  it('is case-sensitive and immune to prototype keys', () => {
    assert.equal(isCurrency('usd'), false);
    assert.equal(currencyExponent('constructor'), undefined);
    assert.equal(currencyExponent('__proto__'), undefined);
  });
});

describe('formatAmount', () => {
  it('places the decimal point by the exponent and groups thousands', () => {
    assert.equal(formatAmount(1050, 'USD'), 'USD 10.50');
    assert.equal(formatAmount(5, 'USD'), 'USD 0.05');
    assert.equal(formatAmount(100, 'JPY'), 'JPY 100');
    assert.equal(formatAmount(1234, 'KWD'), 'KWD 1.234');
    assert.equal(formatAmount(1, 'CLF'), 'CLF 0.0001');
    assert.equal(formatAmount(MAX_AMOUNT_MINOR, 'EUR'), 'EUR 9,999,999,999.99');
    assert.equal(formatAmount(-1050, 'USD'), 'USD -10.50');
    assert.equal(formatAmount(-123456789, 'USD'), 'USD -1,234,567.89');
    assert.equal(formatAmount(100000, 'USD'), 'USD 1,000.00');
    assert.equal(formatAmount(99999, 'USD'), 'USD 999.99');
    assert.equal(formatAmount(1050, 'JPY'), 'JPY 1,050');
    assert.equal(formatAmount(1234567, 'KWD'), 'KWD 1,234.567');
  });

  it('throws for an unknown currency or a fractional amount', () => {
    assert.throws(() => formatAmount(100, 'usd'), RangeError);
    assert.throws(() => formatAmount(10.5, 'USD'), RangeError);
  });
});

describe('validateAmount', () => {
  it('accepts a positive integer up to the maximum', () => {
    assert.deepEqual(validateAmount(1, 'USD'), []);
    assert.deepEqual(validateAmount(MAX_AMOUNT_MINOR, 'KWD'), []);
  });

  it('explains minor units in the currency given', () => {
    for (const bad of [0, -1, 10.5, MAX_AMOUNT_MINOR + 1, '1050', null, Number.NaN, Infinity]) {
      const errors = validateAmount(bad, 'USD');
      assert.equal(errors.length, 1, String(bad));
      assert.equal(errors[0]?.pointer, '/amount');
      assert.equal(errors[0]?.code, 'invalid_amount');
      assert.match(errors[0]?.message ?? '', /amount is in minor units: 1050 means 10\.50 USD/);
    }
    assert.match(validateAmount(0.5, 'JPY')[0]?.message ?? '', /1050 means 1050 JPY/);
    assert.match(validateAmount(0.5, 'BHD')[0]?.message ?? '', /1050 means 1\.050 BHD/);
  });

  it('refuses an unknown or lower-case currency, suggesting the fix', () => {
    const [lower] = validateAmount(100, 'usd');
    assert.equal(lower?.pointer, '/currency');
    assert.equal(lower?.code, 'invalid_currency');
    assert.match(lower?.message ?? '', /Did you mean USD\?/);
    const [unknown] = validateAmount(100, 'ABC');
    assert.equal(unknown?.code, 'invalid_currency');
    assert.doesNotMatch(unknown?.message ?? '', /Did you mean/);
  });

  it('reports both fields when both are wrong', () => {
    assert.deepEqual(
      validateAmount(-5, 'XYZ').map((e) => e.pointer),
      ['/currency', '/amount'],
    );
  });
});

describe('properties', () => {
  const currency = fc.constantFrom(...CURRENCIES);
  const amount = fc.integer({ min: 1, max: MAX_AMOUNT_MINOR });

  it('formatAmount parses back to the same minor units', () => {
    fc.assert(
      fc.property(currency, amount, (c, a) => {
        assert.deepEqual(validateAmount(a, c), []);
        assert.deepEqual(parseFormatted(formatAmount(a, c)), { currency: c, minor: a });
      }),
    );
  });

  it('validateAmount never throws', () => {
    fc.assert(
      fc.property(fc.anything(), fc.string(), (a, c) => {
        assert.ok(Array.isArray(validateAmount(a, c)));
      }),
    );
  });
});

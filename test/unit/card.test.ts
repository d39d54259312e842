import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { bin, cardExpired, cvcLength, detectBrand, last4, luhnValid, validateCard } from '../../src/domain/card.js';

const NOW = new Date('2026-03-15T12:00:00Z');

const TEST_PANS = [
  ['4242424242424242', 'visa'],
  ['4000000000003220', 'visa'],
  ['5555555555554444', 'mastercard'],
  ['2223003122003222', 'mastercard'],
  ['378282246310005', 'amex'],
  ['6011111111111117', 'discover'],
  ['3566002020360505', 'jcb'],
  ['36227206271667', 'diners'],
  ['6200000000000005', 'unionpay'],
] as const;

function card(number: string, overrides: Partial<{ expiry_month: number; expiry_year: number; cvc: string }> = {}) {
  return { number, expiry_month: 12, expiry_year: 2030, ...overrides };
}

/** The digit that makes `body + digit` pass Luhn. */
function checkDigit(body: string): string {
  for (let d = 0; d <= 9; d++) if (luhnValid(body + d)) return String(d);
  throw new Error('unreachable: one of ten digits always completes the sum');
}

describe('known test PANs', () => {
  for (const [pan, brand] of TEST_PANS) {
    it(`${pan} is ${brand} and valid`, () => {
      assert.equal(detectBrand(pan), brand);
      assert.equal(luhnValid(pan), true);
      assert.deepEqual(validateCard(card(pan, { cvc: '1'.repeat(cvcLength(brand)) }), NOW), []);
    });
  }
});

describe('detectBrand', () => {
  it('tells Discover co-brands from UnionPay inside 62', () => {
    assert.equal(detectBrand('6221260000000000'), 'discover');
    assert.equal(detectBrand('6229250000000000'), 'discover');
    assert.equal(detectBrand('6221250000000000'), 'unionpay');
    assert.equal(detectBrand('6229260000000000'), 'unionpay');
  });

  it('uses the edges of the numeric ranges', () => {
    assert.equal(detectBrand('2221000000000000'), 'mastercard');
    assert.equal(detectBrand('2720990000000000'), 'mastercard');
    assert.equal(detectBrand('2220990000000000'), null);
    assert.equal(detectBrand('2721000000000000'), null);
    assert.equal(detectBrand('5100000000000000'), 'mastercard');
    assert.equal(detectBrand('5600000000000000'), null);
    assert.equal(detectBrand('3528000000000000'), 'jcb');
    assert.equal(detectBrand('3589000000000000'), 'jcb');
    assert.equal(detectBrand('3527000000000000'), null);
    assert.equal(detectBrand('30500000000000'), 'diners');
    assert.equal(detectBrand('30600000000000'), null);
    assert.equal(detectBrand('38000000000000'), 'diners');
    assert.equal(detectBrand('6440000000000000'), 'discover');
    assert.equal(detectBrand('6430000000000000'), null);
    assert.equal(detectBrand('6500000000000000'), 'discover');
  });

  it('returns null for non-digits and the empty string', () => {
    assert.equal(detectBrand(''), null);
    assert.equal(detectBrand('4242 4242 4242 4242'), null);
  });
});

describe('validateCard', () => {
  const codes = (errors: { pointer: string; code: string }[]) => errors.map((e) => `${e.pointer} ${e.code}`);

  it('refuses non-digits', () => {
    const [e] = validateCard(card('4242-4242-4242-4242'), NOW);
    assert.equal(e?.code, 'invalid_number');
    assert.match(e?.message ?? '', /only the digits/);
  });

  it('names the lengths of the brand', () => {
    const [e] = validateCard(card('42424242424242'), NOW);
    assert.equal(e?.code, 'invalid_number');
    assert.match(e?.message ?? '', /14 digits; visa card numbers have 13, 16, 19 digits/);
  });

  it('reports a failed Luhn check', () => {
    const [e] = validateCard(card('4242424242424241'), NOW);
    assert.equal(e?.code, 'invalid_number');
    assert.match(e?.message ?? '', /Luhn/);
  });

  it('refuses an unknown IIN', () => {
    assert.deepEqual(codes(validateCard(card('9999999999999995'), NOW)), ['/number unsupported_brand']);
  });

  it('checks month and year ranges', () => {
    assert.deepEqual(codes(validateCard(card('4242424242424242', { expiry_month: 0 }), NOW)), [
      '/expiry_month invalid_expiry_month',
    ]);
    assert.deepEqual(codes(validateCard(card('4242424242424242', { expiry_month: 13 }), NOW)), [
      '/expiry_month invalid_expiry_month',
    ]);
    assert.deepEqual(codes(validateCard(card('4242424242424242', { expiry_month: 1.5 }), NOW)), [
      '/expiry_month invalid_expiry_month',
    ]);
    assert.deepEqual(codes(validateCard(card('4242424242424242', { expiry_year: 30 }), NOW)), [
      '/expiry_year invalid_expiry_year',
    ]);
    assert.deepEqual(codes(validateCard(card('4242424242424242', { expiry_year: 2077 }), NOW)), []);
    assert.deepEqual(codes(validateCard(card('4242424242424242', { expiry_year: NOW.getUTCFullYear() + 76 }), NOW)), [
      '/expiry_year invalid_expiry_year',
    ]);
    assert.deepEqual(validateCard(card('4242424242424242', { expiry_year: 2076 }), NOW), []);
  });

  it('keeps a card valid until its expiry month has ended everywhere, the cardholder in UTC-12 included', () => {
    const december = card('4242424242424242', { expiry_month: 12, expiry_year: 2026 });
    assert.deepEqual(validateCard(december, new Date('2026-12-31T23:59:59.999Z')), []);
    // 31 December, 19:00 in New York and 14:00 in Honolulu: the card's issuer there still takes it.
    assert.deepEqual(validateCard(december, new Date('2027-01-01T00:00:00Z')), []);
    assert.deepEqual(validateCard(december, new Date('2027-01-01T11:59:59.999Z')), []);
    assert.deepEqual(codes(validateCard(december, new Date('2027-01-01T12:00:00Z'))), ['/expiry_year card_expired']);
    assert.equal(cardExpired(2, 2026, new Date('2026-03-01T05:00:00Z')), false);
    assert.equal(cardExpired(2, 2026, new Date('2026-03-01T12:00:00Z')), true);
  });

  it('points at the year when it is past, else at the month', () => {
    assert.deepEqual(codes(validateCard(card('4242424242424242', { expiry_year: 2025 }), NOW)), [
      '/expiry_year card_expired',
    ]);
    assert.deepEqual(codes(validateCard(card('4242424242424242', { expiry_month: 2, expiry_year: 2026 }), NOW)), [
      '/expiry_month card_expired',
    ]);
  });

  it('expects 4 cvc digits for Amex and 3 for others', () => {
    assert.deepEqual(validateCard(card('378282246310005', { cvc: '1234' }), NOW), []);
    const [amex] = validateCard(card('378282246310005', { cvc: '123' }), NOW);
    assert.equal(amex?.code, 'invalid_cvc');
    assert.match(amex?.message ?? '', /exactly 4 digits for amex/);
    const [visa] = validateCard(card('4242424242424242', { cvc: '1234' }), NOW);
    assert.match(visa?.message ?? '', /exactly 3 digits for visa/);
    assert.deepEqual(codes(validateCard(card('4242424242424242', { cvc: '12a' }), NOW)), ['/cvc invalid_cvc']);
  });

  it('accepts a 3 or 4 digit cvc when the brand is unknown', () => {
    assert.deepEqual(codes(validateCard(card('9999999999999995', { cvc: '1234' }), NOW)), [
      '/number unsupported_brand',
    ]);
    const errors = validateCard(card('abc', { cvc: '12' }), NOW);
    assert.match(errors.find((e) => e.code === 'invalid_cvc')?.message ?? '', /3 or 4 digits/);
  });

  it('does not check an absent cvc', () => {
    assert.deepEqual(validateCard(card('4242424242424242'), NOW), []);
  });

  it('reports every broken rule at once', () => {
    assert.deepEqual(codes(validateCard(card('x', { expiry_month: 0, expiry_year: 1, cvc: '' }), NOW)), [
      '/number invalid_number',
      '/expiry_month invalid_expiry_month',
      '/expiry_year invalid_expiry_year',
      '/cvc invalid_cvc',
    ]);
  });
});

describe('bin and last4', () => {
  it('slice the PAN', () => {
    assert.equal(bin('4242424242424242'), '424242');
    assert.equal(last4('378282246310005'), '0005');
  });

  it('leave at least five digits hidden, also of a card number under 15 digits', () => {
    // A 13-digit Visa's first 6 and last 4 leave 3 digits, which the Luhn check narrows to 100 numbers.
    assert.equal(bin('4929381234562'), '4929');
    assert.equal(bin('36227206271667'), '36227');
    assert.equal(bin('378282246310005'), '378282');
    for (let length = 13; length <= 19; length++) {
      const pan = '4'.padEnd(length, '1');
      assert.ok(length - bin(pan).length - last4(pan).length >= 5, `${length} digits: ${bin(pan)}…${last4(pan)}`);
    }
  });
});

describe('properties', () => {
  const visaBody = fc
    .constantFrom(12, 15, 18)
    .chain((n) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: n - 1, maxLength: n - 1 }))
    .map((rest) => '4' + rest);

  it('a Visa PAN with a computed check digit passes', () => {
    fc.assert(
      fc.property(visaBody, (body) => {
        const pan = body + checkDigit(body);
        assert.equal(detectBrand(pan), 'visa');
        assert.deepEqual(validateCard(card(pan, { cvc: '123' }), NOW), []);
      }),
    );
  });

  it('changing any single digit breaks Luhn', () => {
    const mutation = visaBody.chain((body) => {
      const pan = body + checkDigit(body);
      return fc.tuple(fc.constant(pan), fc.nat(pan.length - 1), fc.integer({ min: 1, max: 9 }));
    });
    fc.assert(
      fc.property(mutation, ([pan, i, delta]) => {
        const changed = String((Number(pan[i]) + delta) % 10);
        assert.equal(luhnValid(pan.slice(0, i) + changed + pan.slice(i + 1)), false);
      }),
    );
  });

  it('random strings never throw', () => {
    fc.assert(
      fc.property(fc.string(), fc.option(fc.string(), { nil: undefined }), fc.integer(), fc.integer(), (n, cvc, m, y) => {
        luhnValid(n);
        detectBrand(n);
        const errors = validateCard({ number: n, expiry_month: m, expiry_year: y, cvc }, NOW);
        assert.ok(Array.isArray(errors));
      }),
    );
  });
});

import type { FieldError } from './errors.js';

export type CardBrand = 'visa' | 'mastercard' | 'amex' | 'discover' | 'jcb' | 'diners' | 'unionpay';

const DIGITS = /^\d+$/;

/** Lengths each scheme issues PANs in; a PAN of another length cannot be routed. */
const PAN_LENGTHS: Record<CardBrand, readonly number[]> = {
  visa: [13, 16, 19],
  mastercard: [16],
  amex: [15],
  discover: [16, 17, 18, 19],
  jcb: [16, 17, 18, 19],
  diners: [14, 15, 16, 17, 18, 19],
  unionpay: [16, 17, 18, 19],
};

/** Beyond this horizon a year is a typo; wide enough for the spec's own example card (2077). */
const MAX_YEARS_AHEAD = 75;

export function luhnValid(pan: string): boolean {
  if (!DIGITS.test(pan)) return false;
  let sum = 0;
  for (let i = 0; i < pan.length; i++) {
    let d = pan.charCodeAt(pan.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

function prefixIn(pan: string, digits: number, low: number, high: number): boolean {
  if (pan.length < digits) return false;
  const p = Number(pan.slice(0, digits));
  return p >= low && p <= high;
}

/**
 * The scheme from the IIN prefix alone, so that a PAN of the wrong length can still be
 * reported as "wrong length for visa" rather than as an unknown brand.
 */
export function detectBrand(pan: string): CardBrand | null {
  if (!DIGITS.test(pan)) return null;
  if (pan.startsWith('4')) return 'visa';
  if (prefixIn(pan, 2, 51, 55) || prefixIn(pan, 4, 2221, 2720)) return 'mastercard';
  if (pan.startsWith('34') || pan.startsWith('37')) return 'amex';
  // Discover's 622126-622925 range is co-branded with UnionPay's 62 and is routed as Discover.
  if (
    pan.startsWith('6011') ||
    prefixIn(pan, 3, 644, 649) ||
    pan.startsWith('65') ||
    prefixIn(pan, 6, 622126, 622925)
  ) {
    return 'discover';
  }
  if (prefixIn(pan, 4, 3528, 3589)) return 'jcb';
  if (pan.startsWith('36') || prefixIn(pan, 3, 300, 305) || prefixIn(pan, 2, 38, 39)) return 'diners';
  if (pan.startsWith('62')) return 'unionpay';
  return null;
}

const BRAND_NAMES: Record<CardBrand, string> = {
  visa: 'Visa',
  mastercard: 'Mastercard',
  amex: 'American Express',
  discover: 'Discover',
  jcb: 'JCB',
  diners: 'Diners Club',
  unionpay: 'UnionPay',
};

/** Whether a string of digits is one a scheme could have issued: known prefix, its length, Luhn. */
export function isCardNumber(digits: string): boolean {
  const brand = detectBrand(digits);
  return brand !== null && PAN_LENGTHS[brand].includes(digits.length) && luhnValid(digits);
}

/** The scheme as people write it ("American Express"); a brand we do not know is shown as given. */
export function brandName(brand: string): string {
  return Object.hasOwn(BRAND_NAMES, brand) ? BRAND_NAMES[brand as CardBrand] : brand;
}

export function cvcLength(brand: CardBrand): 3 | 4 {
  return brand === 'amex' ? 4 : 3;
}

/**
 * A card is usable through the last day of its expiry month where its holder is, and its
 * issuer judges that, not us: the month ends twelve hours after UTC midnight in the
 * westernmost time zone (UTC-12). Refusing at UTC midnight turned away, every month, the
 * Americas' evening payments on cards their issuers still took.
 */
export function cardExpired(month: number, year: number, now: Date): boolean {
  return now.getTime() >= Date.UTC(year, month, 1, 12);
}

/**
 * The leading digits shown beside the last 4: the first 6 (PCI DSS's most), fewer for a card
 * number under 15 digits, so that at least 5 stay hidden as for American Express's 15: the
 * first 6 and last 4 of a 13-digit Visa leave 3 digits, which the Luhn check narrows to 100
 * numbers.
 */
export function bin(pan: string): string {
  return pan.slice(0, Math.min(6, pan.length - 9));
}

export function last4(pan: string): string {
  return pan.slice(-4);
}

function invalidNumber(message: string): FieldError[] {
  return [{ pointer: '/number', code: 'invalid_number', message }];
}

function numberErrors(pan: string): FieldError[] {
  if (!DIGITS.test(pan)) return invalidNumber('number must contain only the digits 0-9, without spaces or dashes.');
  const brand = detectBrand(pan);
  if (brand === null) {
    return [
      {
        pointer: '/number',
        code: 'unsupported_brand',
        message: 'number is not a Visa, Mastercard, American Express, Discover, JCB, Diners Club or UnionPay card.',
      },
    ];
  }
  const lengths = PAN_LENGTHS[brand];
  if (!lengths.includes(pan.length)) {
    return invalidNumber(`number has ${pan.length} digits; ${brand} card numbers have ${lengths.join(', ')} digits.`);
  }
  if (!luhnValid(pan)) return invalidNumber('number fails the Luhn check digit: it was probably mistyped.');
  return [];
}

function cvcErrors(cvc: string, brand: CardBrand | null): FieldError[] {
  const expected = brand === null ? [3, 4] : [cvcLength(brand)];
  if (DIGITS.test(cvc) && expected.includes(cvc.length)) return [];
  const what = brand === null ? '3 or 4 digits' : `exactly ${expected[0]} digits for ${brand} cards`;
  return [{ pointer: '/cvc', code: 'invalid_cvc', message: `cvc must be ${what}.` }];
}

export function validateCard(
  input: { number: string; expiry_month: number; expiry_year: number; cvc?: string },
  now: Date,
): FieldError[] {
  const errors = numberErrors(input.number);
  const { expiry_month: month, expiry_year: year } = input;
  const monthOk = Number.isInteger(month) && month >= 1 && month <= 12;
  if (!monthOk) {
    errors.push({
      pointer: '/expiry_month',
      code: 'invalid_expiry_month',
      message: 'expiry_month must be an integer from 1 (January) to 12 (December).',
    });
  }
  const latestYear = now.getUTCFullYear() + MAX_YEARS_AHEAD;
  const yearOk = Number.isInteger(year) && year >= 1000 && year <= latestYear;
  if (!yearOk) {
    errors.push({
      pointer: '/expiry_year',
      code: 'invalid_expiry_year',
      message: `expiry_year must be a four-digit year, such as 2030, no later than ${latestYear}.`,
    });
  }
  if (monthOk && yearOk && cardExpired(month, year, now)) {
    const mm = String(month).padStart(2, '0');
    errors.push({
      pointer: year < now.getUTCFullYear() ? '/expiry_year' : '/expiry_month',
      code: 'card_expired',
      message: `The card expired at the end of ${mm}/${year}.`,
    });
  }
  if (input.cvc !== undefined) errors.push(...cvcErrors(input.cvc, detectBrand(input.number)));
  return errors;
}

import type { FieldError } from './errors.js';

/**
 * ISO 4217 List One, minor-unit exponent per code. Codes whose minor unit is "N.A."
 * (precious metals, SDR, testing codes) are left out: they cannot be charged.
 * Withdrawn codes (HRK, CUC, ZWL, ANG, SLL, BGN, ...) are left out so a payment cannot be taken
 * in a currency the acquirer will no longer settle.
 */
const EXPONENTS: Readonly<Record<string, number>> = Object.freeze({
  AED: 2, AFN: 2, ALL: 2, AMD: 2, AOA: 2, ARS: 2, AUD: 2, AWG: 2, AZN: 2,
  BAM: 2, BBD: 2, BDT: 2, BHD: 3, BIF: 0, BMD: 2, BND: 2, BOB: 2, BOV: 2,
  BRL: 2, BSD: 2, BTN: 2, BWP: 2, BYN: 2, BZD: 2,
  CAD: 2, CDF: 2, CHE: 2, CHF: 2, CHW: 2, CLF: 4, CLP: 0, CNY: 2, COP: 2, COU: 2,
  CRC: 2, CUP: 2, CVE: 2, CZK: 2,
  DJF: 0, DKK: 2, DOP: 2, DZD: 2,
  EGP: 2, ERN: 2, ETB: 2, EUR: 2,
  FJD: 2, FKP: 2,
  GBP: 2, GEL: 2, GHS: 2, GIP: 2, GMD: 2, GNF: 0, GTQ: 2, GYD: 2,
  HKD: 2, HNL: 2, HTG: 2, HUF: 2,
  IDR: 2, ILS: 2, INR: 2, IQD: 3, IRR: 2, ISK: 0,
  JMD: 2, JOD: 3, JPY: 0,
  KES: 2, KGS: 2, KHR: 2, KMF: 0, KPW: 2, KRW: 0, KWD: 3, KYD: 2, KZT: 2,
  LAK: 2, LBP: 2, LKR: 2, LRD: 2, LSL: 2, LYD: 3,
  MAD: 2, MDL: 2, MGA: 2, MKD: 2, MMK: 2, MNT: 2, MOP: 2, MRU: 2, MUR: 2, MVR: 2,
  MWK: 2, MXN: 2, MXV: 2, MYR: 2, MZN: 2,
  NAD: 2, NGN: 2, NIO: 2, NOK: 2, NPR: 2, NZD: 2,
  OMR: 3,
  PAB: 2, PEN: 2, PGK: 2, PHP: 2, PKR: 2, PLN: 2, PYG: 0,
  QAR: 2,
  RON: 2, RSD: 2, RUB: 2, RWF: 0,
  SAR: 2, SBD: 2, SCR: 2, SDG: 2, SEK: 2, SGD: 2, SHP: 2, SLE: 2, SOS: 2,
  SRD: 2, SSP: 2, STN: 2, SVC: 2, SYP: 2, SZL: 2,
  THB: 2, TJS: 2, TMT: 2, TND: 3, TOP: 2, TRY: 2, TTD: 2, TWD: 2, TZS: 2,
  UAH: 2, UGX: 0, USD: 2, USN: 2, UYI: 0, UYU: 2, UYW: 4, UZS: 2,
  VED: 2, VES: 2, VND: 0, VUV: 0,
  WST: 2,
  XAF: 0, XCD: 2, XCG: 2, XOF: 0, XPF: 0,
  YER: 2,
  ZAR: 2, ZMW: 2, ZWG: 2,
});

/**
 * Codes withdrawn after payments could be taken in them: payments already taken are still
 * shown (pages, e-mails, messages) and refunded in them. BGN: Bulgaria has used the euro since
 * 1 January 2026 (ISO 4217 amendment 180). SLL: the old leone, replaced by SLE and withdrawn
 * at the end of 2023 (amendment 175).
 */
const WITHDRAWN_EXPONENTS: Readonly<Record<string, number>> = Object.freeze({ BGN: 2, SLL: 2 });

/**
 * What replaced codes withdrawn in recent years, named when one is asked for: a Bulgarian shop
 * charges in euros now. HRK (2023), ZWL (2024) and ANG (2025) were withdrawn before any payment
 * could be taken in them here.
 */
const SUCCESSORS: Readonly<Record<string, string>> = Object.freeze({ ANG: 'XCG', BGN: 'EUR', HRK: 'EUR', SLL: 'SLE', ZWL: 'ZWG' });

/**
 * The largest amount a 12-digit ISO 8583 amount field (DE 4) carries. Well below 2^53, so
 * amounts and their sums stay exact as JavaScript numbers.
 */
export const MAX_AMOUNT_MINOR = 999_999_999_999;

export function currencyExponent(code: string): number | undefined {
  return Object.hasOwn(EXPONENTS, code) ? EXPONENTS[code] : undefined;
}

export function isCurrency(code: string): boolean {
  return currencyExponent(code) !== undefined;
}

/**
 * Why `code` is not a currency a payment can be taken in, when a likely fix is known: the
 * same code in upper case, or the code that replaced a withdrawn one. Empty otherwise.
 */
export function currencyHint(code: string): string {
  const upper = code.toUpperCase();
  if (Object.hasOwn(SUCCESSORS, upper)) return ` ${upper} was withdrawn from ISO 4217; use ${SUCCESSORS[upper]}.`;
  return upper !== code && isCurrency(upper) ? ` Did you mean ${upper}?` : '';
}

/** `amount` minor units as a decimal in major units, e.g. 1050 at exponent 2 is `10.50`. */
function majorUnits(amount: number, exponent: number): string {
  const digits = String(Math.abs(amount)).padStart(exponent + 1, '0');
  const whole = digits.slice(0, digits.length - exponent);
  const fraction = digits.slice(digits.length - exponent);
  return (amount < 0 ? '-' : '') + (exponent === 0 ? whole : `${whole}.${fraction}`);
}

/** E.g. `USD 10.50`, `JPY 1,050`, `KWD 1.234`. Throws for an unvalidated amount or currency. */
export function formatAmount(amount: number, currency: string): string {
  const exponent = currencyExponent(currency) ?? (Object.hasOwn(WITHDRAWN_EXPONENTS, currency) ? WITHDRAWN_EXPONENTS[currency] : undefined);
  if (exponent === undefined) throw new RangeError(`Unknown currency ${JSON.stringify(currency)}`);
  if (!Number.isSafeInteger(amount)) throw new RangeError(`Amount ${amount} is not an integer number of minor units`);
  // Whole units grouped by thousands, as the pages and e-mails (in English) are read: USD 1,234,567.89.
  const [whole = '', fraction] = majorUnits(amount, exponent).split('.');
  return `${currency} ${whole.replace(/\B(?=(\d{3})+$)/g, ',')}${fraction === undefined ? '' : `.${fraction}`}`;
}

export function validateAmount(amount: unknown, currency: string): FieldError[] {
  const errors: FieldError[] = [];
  const exponent = currencyExponent(currency);
  if (exponent === undefined) {
    errors.push({
      pointer: '/currency',
      code: 'invalid_currency',
      message: `currency must be an active ISO 4217 code in upper case, such as USD or EUR.${currencyHint(currency)}`,
    });
  }
  const valid = typeof amount === 'number' && Number.isSafeInteger(amount) && amount > 0 && amount <= MAX_AMOUNT_MINOR;
  if (!valid) {
    const example = exponent === undefined ? { code: 'USD', exponent: 2 } : { code: currency, exponent };
    errors.push({
      pointer: '/amount',
      code: 'invalid_amount',
      message:
        `amount must be a positive integer no greater than ${MAX_AMOUNT_MINOR}. ` +
        `amount is in minor units: 1050 means ${majorUnits(1050, example.exponent)} ${example.code}.`,
    });
  }
  return errors;
}

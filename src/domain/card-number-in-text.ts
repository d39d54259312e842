import { isCardNumber } from './card.js';
import { type FieldError, ValidationFailed, escapePointer } from './errors.js';

/** Digits with at most one space or dash between neighbours, as people write card numbers. */
const DIGIT_RUN = /\d(?:[ -]?\d)*/g;
const SEPARATOR = /[ -]/;

/**
 * Whether a text holds a card number: a run of 13 to 19 digits (or consecutive groups of
 * a spaced run adding up to that) that a scheme could have issued. Longer unbroken runs
 * (timestamps, ids) and numbers failing the Luhn digit are not card numbers.
 */
export function holdsCardNumber(text: string): boolean {
  if (text.length < 13) return false;
  for (const [run] of text.matchAll(DIGIT_RUN)) {
    if (run.length < 13) continue;
    const groups = run.split(SEPARATOR);
    for (let first = 0; first < groups.length; first++) {
      let digits = '';
      for (let last = first; last < groups.length && digits.length < 19; last++) {
        digits += groups[last];
        if (digits.length >= 13 && digits.length <= 19 && isCardNumber(digits)) return true;
      }
    }
  }
  return false;
}

const MESSAGE =
  'looks like a card number: card numbers go in payment_method.number only, where they are encrypted; any other field is stored and shown as sent';

/**
 * Every field of a request that holds a card number, except the ones meant for one.
 * A key holding one is reported at its object, so the pointer does not quote it back.
 */
export function cardNumbersInText(value: unknown, skip: ReadonlySet<string>, pointer = ''): FieldError[] {
  if (skip.has(pointer)) return [];
  if (typeof value === 'string') return holdsCardNumber(value) ? [{ pointer, code: 'card_number_in_text', message: `${pointer.slice(1) || 'the body'} ${MESSAGE}` }] : [];
  if (value === null || typeof value !== 'object') return [];
  const errors: FieldError[] = [];
  for (const [key, child] of Object.entries(value)) {
    if (holdsCardNumber(key)) errors.push({ pointer, code: 'card_number_in_text', message: `a key of ${pointer.slice(1)} ${MESSAGE}` });
    else errors.push(...cardNumbersInText(child, skip, `${pointer}/${escapePointer(key)}`));
  }
  return errors;
}

/** For requests with a few free-text fields (a refund's reason, an endpoint's description). */
export function refuseCardNumbers(fields: Record<string, unknown>): void {
  const errors = cardNumbersInText(fields, NOTHING);
  if (errors.length) throw new ValidationFailed(errors);
}

const NOTHING: ReadonlySet<string> = new Set();

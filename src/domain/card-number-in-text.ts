import { isCardNumber } from './card.js';
import { type FieldError, ValidationFailed, escapePointer } from './errors.js';

/** Digits with at most one space or dash between neighbours, as people write card numbers. */
const DIGIT_RUN = /\d(?:[ -]?\d)*/g;
const SEPARATOR = /[ -]/;

function digitCount(text: string): number {
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
}

/**
 * Whether a text holds a card number: a run of 13 to 19 digits (or consecutive groups of
 * a spaced run adding up to that) that a scheme could have issued. Longer unbroken runs
 * (timestamps, ids) and numbers failing the Luhn digit are not card numbers.
 */
export function holdsCardNumber(text: string): boolean {
  // Nearly every text has fewer than 13 digits: counting them is cheaper than matching runs.
  if (text.length < 13 || digitCount(text) < 13) return false;
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

/** The fields meant for a card number, as nested keys: `{ payment_method: { number: true } }`. */
export interface CardNumberFields {
  readonly [key: string]: CardNumberFields | true;
}

const MESSAGE =
  'looks like a card number: card numbers go in payment_method.number only, where they are encrypted; any other field is stored and shown as sent';

/**
 * Looks through a request's values and keys. Without `errors` it stops at the first card
 * number and builds no pointers (the pass every request takes); with them it names every
 * field. A key is reported at its object, so the pointer does not quote it back.
 */
function walk(value: unknown, skip: CardNumberFields | undefined, pointer: string, errors?: FieldError[]): boolean {
  if (typeof value === 'string') {
    if (!holdsCardNumber(value)) return false;
    errors?.push({ pointer, code: 'card_number_in_text', message: `${pointer.slice(1)} ${MESSAGE}` });
    return true;
  }
  if (value === null || typeof value !== 'object') return false;
  let found = false;
  for (const key in value) {
    const next = skip?.[key];
    if (next === true) continue;
    if (holdsCardNumber(key)) {
      errors?.push({ pointer, code: 'card_number_in_text', message: `a key of ${pointer.slice(1)} ${MESSAGE}` });
      found = true;
    } else {
      found = walk((value as Record<string, unknown>)[key], next, errors ? `${pointer}/${escapePointer(key)}` : pointer, errors) || found;
    }
    if (found && !errors) return true;
  }
  return found;
}

/**
 * Every field of a request that holds a card number, except the ones meant for one. The
 * first pass only answers whether there is one (no pointers built): nearly every request
 * has none, and this runs on every authorisation.
 */
export function cardNumbersInText(value: unknown, skip: CardNumberFields = {}): FieldError[] {
  if (!walk(value, skip, '')) return [];
  const errors: FieldError[] = [];
  walk(value, skip, '', errors);
  return errors;
}

/** For requests with a few free-text fields (a refund's reason, an endpoint's description). */
export function refuseCardNumbers(fields: Record<string, unknown>): void {
  const errors = cardNumbersInText(fields);
  if (errors.length) throw new ValidationFailed(errors);
}

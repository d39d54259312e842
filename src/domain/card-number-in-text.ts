import { detectBrand, isCardNumber } from './card.js';
import { type FieldError, ValidationFailed, escapePointer } from './errors.js';

/**
 * Digits with up to three separators between neighbours (spaces, no-break and ideographic
 * spaces, hyphens and dashes, dots, slashes: "4242 4242", "4242  4242", "4242 - 4242", as
 * card numbers get typed and pasted), standing on their own: a run touching a letter or
 * another digit is part of a word or an identifier (an IBAN's "DE57 4327…", a hex id's
 * "f4109205794964b"), not a card number someone typed. Full-width digits are read as the
 * digits they are (holdsCardNumber).
 */
const SEPARATOR = /[ \u00a0\u3000\-\u2010-\u2015./]{1,3}/;
const DIGIT_RUN = /(?<![\p{L}\p{N}_]|\p{N}[ \u00a0\u3000\-\u2010-\u2015./]{1,3})\d(?:[ \u00a0\u3000\-\u2010-\u2015./]{0,3}\d)*(?![\p{L}\p{N}_])/gu;

const FULL_WIDTH_ZERO = 0xff10;
const FULL_WIDTH_NINE = 0xff19;

/** ASCII digits, and whether full-width ones (an East Asian keyboard's) were among them. */
function digitCount(text: string): { digits: number; fullWidth: boolean } {
  let digits = 0;
  let fullWidth = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c >= 48 && c <= 57) digits++;
    else if (c >= FULL_WIDTH_ZERO && c <= FULL_WIDTH_NINE) {
      digits++;
      fullWidth = true;
    }
  }
  return { digits, fullWidth };
}

/** Full-width digits as ASCII ones; one UTF-16 unit each way, so positions stay where they were. */
function asciiDigits(text: string): string {
  return text.replace(/[\uff10-\uff19]/g, (d) => String.fromCharCode(d.charCodeAt(0) - FULL_WIDTH_ZERO + 48));
}

/**
 * Whether consecutive groups of a run, from `first`, are a card number as printed: one
 * group of 13–19 digits, groups of four with a shorter last one (4-4-4-4, 4-4-4-4-3), or
 * American Express's and Diners Club's 4-6-5 and 4-6-4. Any other grouping (phone numbers,
 * bank details) is not looked at, which keeps the work to a few checks a group.
 */
function cardAt(groups: string[], first: number): boolean {
  const head = groups[first]!;
  if (head.length >= 13) return head.length <= 19 && isCardNumber(head);
  // Every grouping starts with four digits whose prefix names a scheme: most runs stop here.
  if (head.length !== 4 || detectBrand(head) === null) return false;
  const six = groups[first + 1];
  if (six?.length === 6) {
    const tail = groups[first + 2];
    if (tail !== undefined && (tail.length === 5 || tail.length === 4) && isCardNumber(head + six + tail)) return true;
  }
  let digits = head;
  for (let i = first + 1; i < groups.length && digits.length < 16; i++) {
    const group = groups[i]!;
    if (group.length > 4) return false;
    digits += group;
    if (digits.length >= 13 && isCardNumber(digits)) return true;
    if (group.length < 4) return false;
  }
  // A 19-digit card printed 4-4-4-4-3.
  const last = groups[first + 4];
  return digits.length === 16 && last?.length === 3 && isCardNumber(digits + last);
}

/**
 * Whether a text holds a card number as people write one: on its own (not inside a word or
 * an identifier), unbroken or grouped as cards are printed, with a scheme's prefix and length
 * and a valid Luhn digit. Longer unbroken runs (timestamps, ids) are not card numbers.
 */
export function holdsCardNumber(text: string): boolean {
  // Nearly every text has fewer than 13 digits: counting them is cheaper than matching runs.
  if (text.length < 13) return false;
  const { digits, fullWidth } = digitCount(text);
  if (digits < 13) return false;
  for (const [run] of (fullWidth ? asciiDigits(text) : text).matchAll(DIGIT_RUN)) if (runHoldsCard(run)) return true;
  return false;
}

function runHoldsCard(run: string): boolean {
  if (run.length < 13) return false;
  const groups = run.split(SEPARATOR);
  for (let first = 0; first < groups.length; first++) if (cardAt(groups, first)) return true;
  return false;
}

/** The text with each digit run that holds a card number replaced, for messages that quote what they were sent. */
export function redactCardNumbers(text: string): string {
  if (!holdsCardNumber(text)) return text;
  // Runs are found in the ASCII spelling and cut from the text as sent (same positions).
  let out = '';
  let from = 0;
  for (const match of asciiDigits(text).matchAll(DIGIT_RUN)) {
    if (!runHoldsCard(match[0])) continue;
    out += text.slice(from, match.index) + '[card number]';
    from = match.index + match[0].length;
  }
  return out + text.slice(from);
}

/**
 * A URL as anyone reading it sees it: `%34%32…` is `42…` and `4242+4242+…` is `4242 4242 …`,
 * while the URL is stored, shown and called in its encoded form.
 */
export function urlAsRead(url: string | undefined): string | undefined {
  return url?.replace(/\+/g, ' ').replace(/(?:%[0-9a-fA-F]{2})+/g, (escapes) => {
    try {
      return decodeURIComponent(escapes);
    } catch {
      return escapes;
    }
  });
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

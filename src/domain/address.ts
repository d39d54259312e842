import { type FieldError, underPointer } from './errors.js';

/**
 * ISO 3166-1 alpha-2 officially assigned codes. Reserved and user-assigned codes
 * (UK, EU, XK, ...) are absent: schemes and 3-D Secure reject them.
 */
const COUNTRY_CODES: ReadonlySet<string> = new Set(
  (
    'AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ ' +
    'BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY BZ ' +
    'CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ ' +
    'DE DJ DK DM DO DZ ' +
    'EC EE EG EH ER ES ET ' +
    'FI FJ FK FM FO FR ' +
    'GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY ' +
    'HK HM HN HR HT HU ' +
    'ID IE IL IM IN IO IQ IR IS IT ' +
    'JE JM JO JP ' +
    'KE KG KH KI KM KN KP KR KW KY KZ ' +
    'LA LB LC LI LK LR LS LT LU LV LY ' +
    'MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ ' +
    'NA NC NE NF NG NI NL NO NP NR NU NZ ' +
    'OM ' +
    'PA PE PF PG PH PK PL PM PN PR PS PT PW PY ' +
    'QA ' +
    'RE RO RS RU RW ' +
    'SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ ' +
    'TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ ' +
    'UA UG UM US UY UZ ' +
    'VA VC VE VG VI VN VU ' +
    'WF WS ' +
    'YE YT ' +
    'ZA ZM ZW'
  ).split(' '),
);

export function isCountryCode(s: string): boolean {
  return COUNTRY_CODES.has(s);
}

/**
 * RFC 5322's specials, which an address holds only in a quoted local part or a domain
 * literal (`[192.0.2.1]`), rare enough to go without: anywhere else the mailer reads them as
 * a display name, a group, a comment or a second entry (`Call-us<jane@example.com>`,
 * `ops:jane@example.com;`, `postmaster(@example.com`), and writes to another address than
 * the one checked and recorded, under a name the sender chose, or to none. Control
 * characters it drops (`ad\u0001min@` goes to `admin@`).
 */
const ADDRESS_SYNTAX = /[()<>[\]:;,\\"\u0000-\u001f\u007f-\u009f]/;

/**
 * Deliberately looser than RFC 5322: the issuer and the receipt mailer are the real
 * judges, this only catches what cannot be an address at all, or what the mailer would
 * read as something other than this one address.
 */
export function isEmail(s: string): boolean {
  if (s.length > 254 || /\s/.test(s) || ADDRESS_SYNTAX.test(s)) return false;
  const at = s.indexOf('@');
  if (at < 1 || at > 64 || s.includes('@', at + 1)) return false;
  const labels = s.slice(at + 1).split('.');
  return labels.length >= 2 && labels.every((l) => l.length > 0);
}

/** E.164 allows 15 digits; the slack covers national prefixes and extensions. */
const MAX_PHONE_DIGITS = 20;

/**
 * Digits as people and checkout forms write them, kept as sent: spaces, hyphens, dots and
 * brackets anywhere (`+52 1 (55) 1234 5678`, `555 - 1234`), and one + first or just inside the
 * first bracket (`(+44) 20 …`). A stricter shape refused real numbers, and with them payments.
 */
function isPhoneNumber(s: string): boolean {
  if (!/^[\d ().+-]+$/.test(s)) return false;
  const plus = s.indexOf('+');
  if (plus !== -1 && (s.lastIndexOf('+') !== plus || !/^ *\(?$/.test(s.slice(0, plus)))) return false;
  const digits = s.replace(/\D/g, '').length;
  return digits >= 1 && digits <= MAX_PHONE_DIGITS;
}

function isPhoneCountry(s: string): boolean {
  return /^\+?\d{1,3}$/.test(s) || isCountryCode(s);
}

function countryAdvice(s: string): string {
  const upper = s.toUpperCase();
  return upper !== s && isCountryCode(upper) ? ` Did you mean ${upper}?` : '';
}

/**
 * Rules a JSON schema cannot express for `customer`, `billing_details` and
 * `shipping_details`; `base` is where `details` sits in the request, e.g. `/customer`.
 */
export function validateParty(
  details: { email?: string; country?: string; phone?: { country?: string; number?: string } },
  base: string,
): FieldError[] {
  const errors: FieldError[] = [];
  if (details.email !== undefined && !isEmail(details.email)) {
    errors.push({
      pointer: '/email',
      code: 'invalid_email',
      message: 'email must be one email address such as jane@example.com, without spaces, control characters, a display name or comment, or any of ( ) < > [ ] : ; , \\ ".',
    });
  }
  if (details.country !== undefined && !isCountryCode(details.country)) {
    errors.push({
      pointer: '/country',
      code: 'invalid_country',
      message:
        'country must be an assigned ISO 3166-1 alpha-2 code in upper case, such as US or GB.' +
        countryAdvice(details.country),
    });
  }
  const phone = details.phone;
  if (phone?.number !== undefined && !isPhoneNumber(phone.number)) {
    errors.push({
      pointer: '/phone/number',
      code: 'invalid_phone',
      message: `phone.number must be 1 to ${MAX_PHONE_DIGITS} digits, with spaces, hyphens, dots or brackets among them if you like, and a + only first (or just inside the first bracket).`,
    });
  }
  if (phone?.country !== undefined && !isPhoneCountry(phone.country)) {
    errors.push({
      pointer: '/phone/country',
      code: 'invalid_phone',
      message:
        'phone.country must be a calling code of 1 to 3 digits such as "44" or "+44", ' +
        'or an ISO 3166-1 alpha-2 country code such as GB.' +
        countryAdvice(phone.country),
    });
  }
  return underPointer(base, errors);
}

/**
 * RFC 3339 date-times as the OpenAPI `date-time` format lets them through (`t`/`z` in any
 * case, a space for `T`, an offset of hours alone or without its colon), which `Date.parse`
 * does not all read.
 */
const DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:[Zz]|([+-])(\d{2})(?::?(\d{2}))?)$/;

/**
 * The first (`start`) or last (`end`) millisecond a written time covers, or null when the
 * text is not a date-time. A time stands for the whole unit of its last digit:
 * `23:59:59Z` as an upper bound takes in 23:59:59.999, so a range written in whole seconds
 * misses nothing stored in milliseconds; a lower bound finer than a millisecond is rounded
 * up, never onto an earlier time. A leap second (`23:59:60`) is the last millisecond of its
 * minute, as Unix time has no room for it.
 */
export function timeBound(text: string, edge: 'start' | 'end'): number | null {
  const m = DATE_TIME.exec(text);
  if (!m) return null;
  const [, year, month, day, hour, minute, second, fraction = '', sign, offsetHours = '0', offsetMinutes = '0'] = m;
  const leap = second === '60';
  // Date.UTC reads years 0-99 as 1900-1999; setUTCFullYear takes 0001 (Go's zero time) as written.
  const whole = new Date(0).setUTCFullYear(Number(year), Number(month) - 1, Number(day)) + ((Number(hour) * 60 + Number(minute)) * 60 + (leap ? 59 : Number(second))) * 1000;
  // Date.UTC rolls 30 February over into March and 24:00 into the next day: neither is written so.
  if (new Date(whole).toISOString().slice(0, 19) !== `${year}-${month}-${day}T${hour}:${minute}:${leap ? '59' : second}`) return null;
  const offsetMs = (sign === '-' ? -1 : 1) * (Number(offsetHours) * 60 + Number(offsetMinutes)) * 60_000;
  let ms: number;
  if (leap) ms = 999;
  else if (fraction.length <= 3) {
    const unit = 10 ** (3 - fraction.length);
    ms = Number(fraction.padEnd(3, '0')) + (edge === 'end' ? unit - 1 : 0);
  } else {
    const beyond = /[1-9]/.test(fraction.slice(3));
    ms = Number(fraction.slice(0, 3)) + (edge === 'start' && beyond ? 1 : 0);
  }
  return whole + ms - offsetMs;
}

import type { FieldError } from './errors.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/**
 * A leading zero is refused so that each delay has one spelling. `n` is at least 1,
 * which makes one minute the shortest delay.
 */
const FORMAT = /^([1-9]\d*)([mhd])$/;

/**
 * `30m`, `12h`, `7d` as milliseconds; null for anything else, including a delay too
 * large to count exactly in milliseconds.
 */
export function parseCaptureDelay(s: string): number | null {
  const match = FORMAT.exec(s);
  if (match === null) return null;
  const unit = match[2] === 'm' ? MINUTE : match[2] === 'h' ? HOUR : DAY;
  const ms = Number(match[1]) * unit;
  return Number.isSafeInteger(ms) ? ms : null;
}

function describe(ms: number): string {
  const [count, unit] = ms % DAY === 0 ? [ms / DAY, 'day'] : ms % HOUR === 0 ? [ms / HOUR, 'hour'] : [ms / MINUTE, 'minute'];
  return `${count} ${unit}${count === 1 ? '' : 's'}`;
}

/** `maxMs` is how long the acquirer keeps the authorisation: capture must happen before it lapses. */
export function validateCaptureDelay(s: string, maxMs: number): FieldError[] {
  const ms = parseCaptureDelay(s);
  if (ms === null) {
    return [
      {
        pointer: '/capture_delay',
        code: 'invalid_capture_delay',
        message:
          'capture_delay must be a whole number of minutes, hours or days without leading zeros, ' +
          'such as "30m", "12h" or "7d".',
      },
    ];
  }
  if (ms > maxMs) {
    return [
      {
        pointer: '/capture_delay',
        code: 'capture_delay_too_long',
        message: `capture_delay must be at most ${describe(maxMs)}, the time an authorisation stays valid.`,
      },
    ];
  }
  return [];
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { parseCaptureDelay, validateCaptureDelay } from '../../src/domain/capture-delay.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

describe('parseCaptureDelay', () => {
  it('reads minutes, hours and days', () => {
    assert.equal(parseCaptureDelay('1m'), MINUTE);
    assert.equal(parseCaptureDelay('30m'), 30 * MINUTE);
    assert.equal(parseCaptureDelay('12h'), 12 * HOUR);
    assert.equal(parseCaptureDelay('1d'), DAY);
    assert.equal(parseCaptureDelay('7d'), 7 * DAY);
  });

  it('refuses anything else', () => {
    for (const s of ['', 'm', '0m', '07d', '-1d', '1.5h', '1 d', ' 1d', '1d ', '1D', '1s', '1w', 'd1', '1dd', '1h30m', '+1d']) {
      assert.equal(parseCaptureDelay(s), null, JSON.stringify(s));
    }
  });

  it('refuses a delay too large to count exactly in milliseconds', () => {
    assert.equal(parseCaptureDelay('99999999999d'), null);
    assert.equal(parseCaptureDelay(`${'9'.repeat(400)}m`), null);
  });
});

describe('validateCaptureDelay', () => {
  const max = 7 * DAY;

  it('accepts delays up to the limit', () => {
    assert.deepEqual(validateCaptureDelay('1m', max), []);
    assert.deepEqual(validateCaptureDelay('7d', max), []);
    assert.deepEqual(validateCaptureDelay('168h', max), []);
  });

  it('shows examples for a malformed delay', () => {
    const [e] = validateCaptureDelay('1 week', max);
    assert.equal(e?.pointer, '/capture_delay');
    assert.equal(e?.code, 'invalid_capture_delay');
    assert.match(e?.message ?? '', /"30m", "12h" or "7d"/);
  });

  it('names the limit in days or hours', () => {
    const [days] = validateCaptureDelay('8d', max);
    assert.equal(days?.code, 'capture_delay_too_long');
    assert.match(days?.message ?? '', /at most 7 days/);
    assert.match(validateCaptureDelay('2d', 36 * HOUR)[0]?.message ?? '', /at most 36 hours/);
    assert.match(validateCaptureDelay('2d', DAY + 30 * MINUTE)[0]?.message ?? '', /at most 1470 minutes/);
    assert.match(validateCaptureDelay('2d', DAY)[0]?.message ?? '', /at most 1 day,/);
  });

  it('gives exactly one error or none, for any string', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: MINUTE, max: 30 * DAY }), (s, limit) => {
        const errors = validateCaptureDelay(s, limit);
        const ms = parseCaptureDelay(s);
        assert.equal(errors.length, ms !== null && ms <= limit ? 0 : 1);
      }),
    );
  });

  it('round-trips every well-formed delay', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100_000 }), fc.constantFrom(['m', MINUTE], ['h', HOUR], ['d', DAY]), (n, [u, ms]) => {
        assert.equal(parseCaptureDelay(`${n}${u}`), n * (ms as number));
      }),
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { MIN_RETRY_DELAY_MS, honourRetryAfter, nextAttemptAt, retryCap, retryDelay } from '../../src/domain/retry-schedule.js';
import { retryAfterMs } from '../../src/adapters/webhooks/sender.js';

const POLICY = { baseMs: 30_000, maxDelayMs: 6 * 3_600_000, windowMs: 72 * 3_600_000 };

describe('retry schedule', () => {
  it('doubles the cap from 30 s up to 6 h', () => {
    assert.deepEqual([1, 2, 3, 4, 10, 11, 50].map((n) => retryCap(POLICY, n)), [30_000, 60_000, 120_000, 240_000, 15_360_000, 21_600_000, 21_600_000]);
  });

  it('draws the wait uniformly up to the cap (full jitter), never under 1 s', () => {
    assert.equal(retryDelay(POLICY, 3, () => 0), MIN_RETRY_DELAY_MS);
    assert.equal(retryDelay(POLICY, 3, () => 0.5), 60_000);
    assert.equal(retryDelay(POLICY, 3, () => 0.999999), 119_999);
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 100 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (failures, r) => {
        const d = retryDelay(POLICY, failures, () => r);
        return d >= MIN_RETRY_DELAY_MS && d <= Math.max(MIN_RETRY_DELAY_MS, retryCap(POLICY, failures));
      }),
    );
  });

  it('makes the last try at the window\'s end when the wait would go past it, and stops after it', () => {
    const start = 1_000_000;
    assert.equal(nextAttemptAt(POLICY, start, 1, start + 20_000, () => 0.9), start + 20_000);
    assert.equal(nextAttemptAt(POLICY, start, 1, start + 500, () => 0), start + 500, 'even sooner than the 1 s floor, once');
    assert.equal(nextAttemptAt(POLICY, start, 1, start + 30_000, () => 0.5), start + 15_000);
    assert.equal(nextAttemptAt(POLICY, start + 20_000, 2, start + 20_000, () => 0.5), null);
    assert.equal(nextAttemptAt(POLICY, start + 25_000, 2, start + 20_000, () => 0.5), null);
  });

  it('keeps trying for the whole three days, the last try at their end', () => {
    for (const r of [0.01, 0.5, 0.8, 0.99]) {
      const start = 0;
      const until = start + POLICY.windowMs;
      let now = start;
      let failures = 0;
      for (;;) {
        failures++;
        const next = nextAttemptAt(POLICY, now, failures, until, () => r);
        if (next === null) break;
        now = next;
      }
      assert.equal(now, until, `the last try (jitter ${r}) is at the window's end, not ${now / 3_600_000} h`);
      assert.ok(failures >= 12, `${failures} tries`);
    }
  });
});

describe("a receiver's Retry-After", () => {
  it('is read as seconds or as an HTTP date, on 429 and 503 only', () => {
    const now = Date.UTC(2026, 10, 28, 12, 0, 0);
    assert.equal(retryAfterMs(429, '120', now), 120_000);
    assert.equal(retryAfterMs(503, new Date(now + 90_000).toUTCString(), now), 90_000);
    assert.equal(retryAfterMs(503, new Date(now - 90_000).toUTCString(), now), 0);
    assert.equal(retryAfterMs(500, '120', now), null);
    assert.equal(retryAfterMs(429, undefined, now), null);
    assert.equal(retryAfterMs(429, 'soon', now), null);
    for (const loose of ['-5', '1.5', '2026-11-28']) assert.equal(retryAfterMs(429, loose, now), null, loose);
  });

  it('pushes the next try back to the time asked for, never past the longest wait or the window', () => {
    const start = 1_000_000;
    assert.equal(honourRetryAfter(POLICY, start, start + 5_000, start + 8_000, start + 100_000), start + 8_000);
    assert.equal(honourRetryAfter(POLICY, start, start + 5_000, start + 2_000, start + 100_000), start + 5_000, 'never sooner than the schedule');
    assert.equal(honourRetryAfter(POLICY, start, start + 5_000, start + 10 * POLICY.maxDelayMs, start + 100 * POLICY.maxDelayMs), start + POLICY.maxDelayMs);
    assert.equal(honourRetryAfter(POLICY, start, start + 5_000, start + 50_000, start + 20_000), start + 20_000);
    assert.equal(honourRetryAfter(POLICY, start, null, start + 8_000, start + 100_000), null, 'a delivery given up stays given up');
  });
});

/**
 * When a failed callback or e-mail is tried again: exponential backoff with full
 * jitter (a uniformly random wait up to the exponential cap), so retries of many
 * deliveries that failed together spread out instead of arriving as a wave. A wait that
 * would end past the retry window is cut to the window's end, so the last try is made
 * there, as promised, and tries stop once a failure comes at or after it.
 */
export interface RetryPolicy {
  baseMs: number;
  maxDelayMs: number;
  windowMs: number;
}

/** Never retry sooner than this, so a jitter draw near zero cannot make a hot loop. */
export const MIN_RETRY_DELAY_MS = 1000;

/** The cap for the wait after `failures` consecutive failures (1 = the first). */
export function retryCap(policy: RetryPolicy, failures: number): number {
  const exponent = Math.min(Math.max(failures - 1, 0), 40);
  return Math.min(policy.maxDelayMs, policy.baseMs * 2 ** exponent);
}

export function retryDelay(policy: RetryPolicy, failures: number, random: () => number = Math.random): number {
  return Math.max(MIN_RETRY_DELAY_MS, Math.floor(random() * retryCap(policy, failures)));
}

/**
 * A receiver that answered 429 or 503 with Retry-After asked for no try before `askedFor`
 * (Standard Webhooks: it should be taken into account): the next try is pushed back to
 * then, never further than the longest wait or past the window.
 */
export function honourRetryAfter(policy: RetryPolicy, now: number, next: number | null, askedFor: number | null, retryUntil: number): number | null {
  if (next === null || askedFor === null || askedFor <= next) return next;
  return Math.min(askedFor, now + policy.maxDelayMs, retryUntil);
}

/** The time of the next try, or null when the delivery should be given up as failed. */
export function nextAttemptAt(policy: RetryPolicy, now: number, failures: number, retryUntil: number, random: () => number = Math.random): number | null {
  if (now >= retryUntil) return null;
  return Math.min(now + retryDelay(policy, failures, random), retryUntil);
}

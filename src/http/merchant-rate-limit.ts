import type { MerchantRateLimit } from '../config.js';

/** A request over the limit: when the merchant may send again, and whether to tell the operator. */
export interface Refusal {
  waitMs: number;
  /** The first refusal of this merchant for a minute: logged, the rest of the minute not. */
  report: boolean;
}

/**
 * A token bucket per merchant: `perSecond` requests a second on average, up to `burst` at
 * once after a quiet spell. One merchant's runaway integration (a retry loop, a card-testing
 * script on a stolen key) then cannot take the process's event loop, database and acquirer
 * from every other merchant. Buckets live in this process: behind a balancer spreading over
 * N gateways a merchant gets up to N times the limit.
 */
export class MerchantRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number; reportedAt: number }>();

  constructor(
    private readonly limit: MerchantRateLimit,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one request's token, or says why not. */
  take(merchantId: string): Refusal | undefined {
    const now = this.now();
    const { perSecond, burst } = this.limit;
    const bucket = this.buckets.get(merchantId);
    if (!bucket) {
      this.buckets.set(merchantId, { tokens: burst - 1, at: now, reportedAt: -Infinity });
      return undefined;
    }
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.at) * perSecond) / 1000);
    bucket.at = now;
    if (bucket.tokens >= 1) {
      bucket.tokens -= 1;
      return undefined;
    }
    const report = now - bucket.reportedAt >= 60_000;
    if (report) bucket.reportedAt = now;
    return { waitMs: ((1 - bucket.tokens) * 1000) / perSecond, report };
  }
}

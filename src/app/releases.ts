import { sql } from 'kysely';
import type { PaymentsTable, ReleasesTable } from '../adapters/storage/schema.js';
import type { Trx } from '../adapters/storage/database.js';
import { CLAIM_LEASE_MS } from '../domain/payment-state.js';
import { nextAttemptAt, type RetryPolicy } from '../domain/retry-schedule.js';
import type { CaptureRequest, SimpleResult } from '../ports/acquirer.js';
import type { AppContext } from './context.js';

/**
 * How long a release is asked for: an authorisation lapses at the issuer within days, but
 * money captured by a late approval stays taken until it is refunded, so a refusal or an
 * outage is worth a week of tries before an operator has to step in.
 */
export const RELEASE_RETRY: RetryPolicy = { baseMs: 60_000, maxDelayMs: 60 * 60_000, windowMs: 7 * 24 * 60 * 60_000 };

type Reason = ReleasesTable['reason'];

/**
 * Writes, in the caller's transaction, that the acquirer may hold money for `payment` that
 * no payment accounts for; the scheduler asks for it back within seconds of the commit, and
 * again until the acquirer confirms. `networkReference` is null for an authorisation whose
 * answer never came: the acquirer finds it by our payment id, the reference connectors send
 * with every call.
 */
export async function queueRelease(trx: Trx, ctx: AppContext, payment: PaymentsTable, reason: Reason, networkReference: string | null, captured: boolean): Promise<ReleasesTable> {
  const now = ctx.clock.now();
  const row: ReleasesTable = {
    id: ctx.newId('release'),
    payment_id: payment.id,
    merchant_id: payment.merchant_id,
    action: captured ? 'refund' : 'void',
    reason,
    amount: payment.amount,
    currency: payment.currency,
    network_reference: networkReference,
    card_bin: payment.card_bin,
    card_last4: payment.card_last4,
    status: 'pending',
    attempts: 0,
    next_attempt_at: now,
    last_error: null,
    created_at: now,
    updated_at: now,
  };
  await trx.insertInto('releases').values(row).execute();
  return row;
}

/** Asks the acquirer for a claimed release and records the answer, unless the claim was taken over meanwhile. */
async function attemptRelease(ctx: AppContext, claimed: ReleasesTable): Promise<ReleasesTable['status']> {
  const req: CaptureRequest = {
    paymentId: claimed.payment_id,
    amount: claimed.amount,
    currency: claimed.currency,
    networkReference: claimed.network_reference,
    cardBin: claimed.card_bin,
    cardLast4: claimed.card_last4,
  };
  let result: SimpleResult;
  try {
    // The release's id is the refund's reference at the acquirer, so asking again never refunds twice.
    result = claimed.action === 'refund' ? await ctx.acquirer.refund({ ...req, refundId: claimed.id }) : await ctx.acquirer.void(req);
  } catch (error) {
    ctx.log.error({ err: error, merchant_id: claimed.merchant_id, payment_id: claimed.payment_id, release_id: claimed.id }, 'acquirer call to release money failed; asked again later');
    result = { outcome: 'failed', code: 'unreachable', message: 'The acquirer could not be reached.' };
  }
  const now = ctx.clock.now();
  const next = settle(claimed, result, now);
  const updated = await ctx.database.write((trx) =>
    trx
      .updateTable('releases')
      .set({ ...next, updated_at: now })
      .where('id', '=', claimed.id)
      .where('status', '=', 'pending')
      .where('attempts', '=', claimed.attempts)
      .executeTakeFirst(),
  );
  if (Number(updated.numUpdatedRows) !== 1) return 'pending';
  if (next.status !== 'pending') ctx.metrics.countRelease(next.status);
  const log = { merchant_id: claimed.merchant_id, payment_id: claimed.payment_id, release_id: claimed.id, action: claimed.action, reason: claimed.reason, attempts: claimed.attempts };
  if (next.status === 'succeeded') ctx.log.warn(log, 'released money the acquirer held for a payment that does not account for it');
  else if (next.status === 'nothing_held') ctx.log.info({ ...log, last_error: next.last_error }, 'the acquirer held nothing to release for this payment');
  else if (next.status === 'failed') ctx.log.error({ ...log, last_error: next.last_error }, 'gave up releasing money at the acquirer; an operator must release it');
  return next.status;
}

function settle(claimed: ReleasesTable, result: SimpleResult, now: number): Pick<ReleasesTable, 'status' | 'next_attempt_at' | 'last_error'> {
  switch (result.outcome) {
    case 'succeeded':
      return { status: 'succeeded', next_attempt_at: claimed.next_attempt_at, last_error: null };
    case 'pending':
      // Not an answer: the claim's lease runs out and the scheduler asks again, within the window.
      return { status: now > claimed.created_at + RELEASE_RETRY.windowMs ? 'failed' : 'pending', next_attempt_at: claimed.next_attempt_at, last_error: result.message };
    case 'failed': {
      const last_error = `${result.code}: ${result.message}`;
      // An acquirer that refuses to reverse an authorisation whose answer we never had, or one
      // past its validity, holds nothing for it. A late approval is known to be held: asked again.
      if (claimed.reason !== 'late_approval' && result.code !== 'unreachable') return { status: 'nothing_held', next_attempt_at: claimed.next_attempt_at, last_error };
      const at = nextAttemptAt(RELEASE_RETRY, now, claimed.attempts, claimed.created_at + RELEASE_RETRY.windowMs);
      return at === null ? { status: 'failed', next_attempt_at: claimed.next_attempt_at, last_error } : { status: 'pending', next_attempt_at: at, last_error };
    }
  }
}

/**
 * The scheduler's share: releases due for another try (a refusal's backoff has passed, or
 * the process that claimed one died) are claimed and asked again. On PostgreSQL `SKIP
 * LOCKED` lets several processes share them; the claim's attempt count decides whose answer
 * is recorded.
 */
export async function retryDueReleases(ctx: AppContext, limit: number): Promise<number> {
  const now = ctx.clock.now();
  const claimed = await ctx.database.transaction(async (trx) => {
    // A literal status, so both planners can use the partial index releases_due.
    let q = trx.selectFrom('releases').selectAll().where('status', '=', sql.lit('pending')).where('next_attempt_at', '<=', now).orderBy('next_attempt_at').limit(limit);
    if (ctx.database.caps.rowLocks) q = q.forUpdate().skipLocked();
    const out: ReleasesTable[] = [];
    for (const row of await q.execute()) {
      const renewed = { ...row, attempts: row.attempts + 1, next_attempt_at: now + CLAIM_LEASE_MS, updated_at: now };
      const taken = await trx
        .updateTable('releases')
        .set({ attempts: renewed.attempts, next_attempt_at: renewed.next_attempt_at, updated_at: now })
        .where('id', '=', row.id)
        .where('attempts', '=', row.attempts)
        .executeTakeFirst();
      if (Number(taken.numUpdatedRows) === 1) out.push(renewed);
    }
    return out;
  });
  await Promise.all(claimed.map((r) => attemptRelease(ctx, r)));
  return claimed.length;
}

import { sql } from 'kysely';
import { refuseCardNumbers } from '../domain/card-number-in-text.js';
import { DomainError, type FieldError, ValidationFailed } from '../domain/errors.js';
import { hasPrefix } from '../domain/ids.js';
import { formatAmount } from '../domain/money.js';
import { CLAIM_LEASE_MS, CLAIM_STATUSES, LATE_CAPTURE_GRACE_MS, capturedStatus, isCapturable, isRefundable, isVoidable, refundedStatus, type PaymentStatus } from '../domain/payment-state.js';
import type { PaymentsTable, RefundsTable } from '../adapters/storage/schema.js';
import type { Trx } from '../adapters/storage/database.js';
import type { CaptureRequest, SimpleResult } from '../ports/acquirer.js';
import { type Actor, writeAudit } from './audit.js';
import { type KeyScope, channelsIn, paymentNotFound, refundNotFound } from './key-scope.js';
import type { AppContext } from './context.js';
import type { Idempotency, Recorder, StoredResponse } from './idempotency.js';
import { appendPaymentEvent, applyTransition, detailsOf, eraseCard, loadForUpdate, paymentChannel } from './payment-transitions.js';
import { queueRelease } from './releases.js';
import { MAX_PAGE_SIZE } from './payment-list.js';
import { iso, type PaymentDetails, type PaymentResource, paymentResource } from './payment-resource.js';

/** The amount being captured rides on the claim, so whoever settles it (even after a restart) knows it. */
type ClaimDetails = PaymentDetails & { pending_capture_amount?: number };

/** How a claim ended: done (200), still unknown at the acquirer (202), or refused by it. */
type Settled = { kind: 'done'; status: 200 | 202; payment: PaymentsTable } | { kind: 'refused'; payment: PaymentsTable; code: string; message: string };

interface PaymentCommand {
  /** The merchant's key that asked (merchantActor), for the audit log. */
  actor: Actor;
  merchantId: string;
  /** The secret key's mode: a payment of the other mode is not found (decision 0028). */
  keyMode: KeyScope;
  paymentId: string;
  rawBody: string;
  idempotencyKey: string | undefined;
}

export interface CaptureCommand extends PaymentCommand {
  amount?: number | undefined;
}

export interface RefundCommand extends PaymentCommand {
  amount?: number | undefined;
  reason?: string | undefined;
}

/** `livemode`: its payment's (a refund is of its payment's mode, decision 0028). */
export function refundResource(r: RefundsTable, livemode: boolean) {
  return {
    id: r.id,
    object: 'refund' as const,
    payment_id: r.payment_id,
    livemode,
    amount: r.amount,
    currency: r.currency,
    status: r.status,
    reason: r.reason,
    failure_code: r.failure_code,
    failure_message: r.failure_message,
    created_at: iso(r.created_at)!,
    updated_at: iso(r.updated_at)!,
  };
}

export type RefundResource = ReturnType<typeof refundResource>;

/** refund.* events carry the refund and, for receipts and reconciliation, the payment after it. */
function refundEvent(r: RefundsTable, payment: PaymentResource) {
  return { ...refundResource(r, payment.livemode), payment };
}

function withoutClaim(row: PaymentsTable): PaymentDetails {
  const { pending_capture_amount: _amount, ...details } = detailsOf(row) as ClaimDetails;
  return details;
}

/** "an expired", "a declined": the messages below are read by people. */
function aStatus(status: PaymentStatus): string {
  return `${/^[aeiou]/.test(status) ? 'an' : 'a'} ${status}`;
}

function notCapturable(status: PaymentStatus): DomainError {
  const why: Partial<Record<PaymentStatus, string>> = {
    requires_action: 'the customer has not finished this payment yet',
    capturing: 'a capture of this payment is already in progress',
    voiding: 'this payment is being voided',
    partially_captured: 'this payment has already been captured; a payment is captured once and a partial capture releases the rest',
    captured: 'this payment has already been captured',
    partially_refunded: 'this payment has already been captured',
    refunded: 'this payment has already been captured',
  };
  return new DomainError(409, 'payment_not_capturable', why[status] ?? `${aStatus(status)} payment cannot be captured`, undefined, { payment_status: status });
}

function notVoidable(status: PaymentStatus): DomainError {
  const why: Partial<Record<PaymentStatus, string>> = {
    requires_action: 'the acquirer is being asked to authorise this payment; void it once it has answered',
    capturing: 'a capture of this payment is in progress',
    voiding: 'this payment is already being voided',
    partially_captured: 'this payment has been captured; refund it instead',
    captured: 'this payment has been captured; refund it instead',
    partially_refunded: 'this payment has been captured; refund it instead',
    refunded: 'this payment has been captured and refunded',
  };
  return new DomainError(409, 'payment_not_voidable', why[status] ?? `${aStatus(status)} payment cannot be voided`, undefined, { payment_status: status });
}

function notRefundable(status: PaymentStatus): DomainError {
  const why: Partial<Record<PaymentStatus, string>> = {
    authorised: 'this payment has not been captured; void it instead of refunding it',
    capturing: 'a capture of this payment is still in progress',
    refunded: 'this payment has already been refunded in full',
  };
  return new DomainError(409, 'payment_not_refundable', why[status] ?? `${aStatus(status)} payment has taken no money to refund`, undefined, { payment_status: status });
}

/**
 * What happens to a payment after the customer has left: capture (in full or in part),
 * void, refund, and the time-driven capture and expiry. Every money movement follows
 * the same three steps: claim the payment in a short transaction, ask the acquirer
 * with no transaction open, settle the answer in a second transaction together with
 * its event and idempotency record. The claim is what makes a concurrent second
 * request (or a second scheduler) fail cleanly instead of moving money twice.
 */
export class Lifecycle {
  constructor(
    private readonly ctx: AppContext,
    private readonly idempotency: Idempotency,
  ) {}

  async capture(cmd: CaptureCommand): Promise<StoredResponse> {
    return this.idempotency.run(cmd.merchantId, cmd.idempotencyKey, `POST /payment/${cmd.paymentId}/capture`, cmd.rawBody, async (record) => {
      const claimed = await this.ctx.database.write(async (trx) => {
        const row = await this.owned(trx, cmd.merchantId, cmd.paymentId, cmd.keyMode);
        this.checkCapture(row, cmd.amount);
        const amount = cmd.amount ?? row.amount;
        await this.audit(trx, cmd.actor, 'payment.capture', row, { amount });
        return this.takeKey(trx, record, await this.claimCapture(trx, row, amount));
      });
      return this.answer(await this.settleCapture(claimed, record), 'capture_failed', 'the acquirer refused the capture');
    }, cmd.keyMode);
  }

  async void(cmd: PaymentCommand): Promise<StoredResponse> {
    return this.idempotency.run(cmd.merchantId, cmd.idempotencyKey, `POST /payment/${cmd.paymentId}/void`, cmd.rawBody, async (record) => {
      const claimed = await this.ctx.database.write(async (trx) => {
        const row = await this.owned(trx, cmd.merchantId, cmd.paymentId, cmd.keyMode);
        if (row.status === 'requires_action') {
          const withdrawn = await this.withdrawPage(trx, record, row);
          await this.audit(trx, cmd.actor, 'payment.void', row, { amount: row.amount });
          return { withdrawn };
        }
        if (!isVoidable(row.status as PaymentStatus)) throw notVoidable(row.status as PaymentStatus);
        await this.audit(trx, cmd.actor, 'payment.void', row, { amount: row.amount });
        return this.takeKey(trx, record, await applyTransition(trx, this.ctx, row, 'voiding', {}, { silent: true }));
      });
      if ('withdrawn' in claimed) return { status: 200, body: claimed.withdrawn };
      return this.answer(await this.settleVoid(claimed, record), 'void_failed', 'the acquirer refused to release the authorisation');
    }, cmd.keyMode);
  }

  async refund(cmd: RefundCommand): Promise<StoredResponse> {
    refuseCardNumbers({ reason: cmd.reason });
    return this.idempotency.run(cmd.merchantId, cmd.idempotencyKey, `POST /payment/${cmd.paymentId}/refund`, cmd.rawBody, async (record) => {
      const pending = await this.ctx.database.write(async (trx) => {
        const row = await this.owned(trx, cmd.merchantId, cmd.paymentId, cmd.keyMode);
        const status = row.status as PaymentStatus;
        if (!isRefundable(status)) throw notRefundable(status);
        // Pending refunds hold their amount, so two refunds at once can never exceed the capture.
        const reserved = await trx.selectFrom('refunds').select('amount').where('payment_id', '=', row.id).where('status', '=', 'pending').execute();
        const refundable = row.captured_amount - row.refunded_amount - reserved.reduce((n, r) => n + Number(r.amount), 0);
        const amount = cmd.amount ?? refundable;
        if (refundable <= 0 || amount > refundable) {
          const left = Math.max(refundable, 0);
          const taken = `captured ${formatAmount(row.captured_amount, row.currency)}, refunded or being refunded ${formatAmount(row.captured_amount - left, row.currency)}`;
          const detail = left === 0 ? `nothing is left to refund (${taken})` : `amount ${formatAmount(amount, row.currency)} is more than the ${formatAmount(left, row.currency)} left to refund (${taken})`;
          throw new DomainError(409, 'amount_exceeds_refundable', detail, cmd.amount === undefined ? undefined : '/amount', { amount_refundable: left });
        }
        const now = this.ctx.clock.now();
        const refund: RefundsTable = {
          id: this.ctx.newId('refund'),
          payment_id: row.id,
          merchant_id: row.merchant_id,
          amount,
          currency: row.currency,
          status: 'pending',
          reason: cmd.reason ?? null,
          failure_code: null,
          failure_message: null,
          created_at: now,
          updated_at: now,
        };
        await trx.insertInto('refunds').values(refund).execute();
        await this.audit(trx, cmd.actor, 'payment.refund', row, { amount, refund_id: refund.id });
        // The key is taken with the pending refund, before the acquirer is asked: a retry (after
        // a crash, or in another process) replays this refund instead of making a second one.
        const livemode = await this.livemode(trx, row);
        await record(trx, 201, JSON.stringify(refundResource(refund, livemode)));
        return { refund, livemode };
      });
      const settled = await this.settleRefund(pending.refund, record);
      return { status: 201, body: JSON.stringify(refundResource(settled, pending.livemode)) };
    }, cmd.keyMode);
  }

  /** Oldest first, a page at a time: partial refunds have no number bound, so neither would one answer. */
  async listRefunds(
    merchantId: string,
    paymentId: string,
    scope: KeyScope = null,
    page: { limit?: number; starting_after?: string } = {},
  ): Promise<{ object: 'list'; data: RefundResource[]; has_more: boolean; next_starting_after: string | null }> {
    const db = this.ctx.database.db;
    const limit = page.limit ?? MAX_PAGE_SIZE;
    const errors: FieldError[] = [];
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      errors.push({ pointer: '/querystring/limit', code: 'out_of_range', message: `limit must be a whole number from 1 to ${MAX_PAGE_SIZE}` });
    }
    if (page.starting_after !== undefined && !hasPrefix(page.starting_after, 'refund')) {
      errors.push({ pointer: '/querystring/starting_after', code: 'invalid_cursor', message: 'starting_after must be a refund id (re_…) from a previous page' });
    }
    if (errors.length) throw new ValidationFailed(errors);
    let q = db.selectFrom('payments').select('channel_id').where('id', '=', paymentId).where('merchant_id', '=', merchantId);
    if (scope !== null) q = q.where('channel_id', 'in', channelsIn(db, scope));
    const payment = await q.executeTakeFirst();
    if (!payment) throw paymentNotFound(paymentId, scope);
    const livemode = await this.livemode(db, payment);
    let rows = db.selectFrom('refunds').selectAll().where('payment_id', '=', paymentId);
    if (page.starting_after !== undefined) {
      const cursor = await db.selectFrom('refunds').select(['created_at', 'id']).where('payment_id', '=', paymentId).where('id', '=', page.starting_after).executeTakeFirst();
      if (!cursor) throw new ValidationFailed([{ pointer: '/querystring/starting_after', code: 'invalid_cursor', message: `starting_after names no refund of payment ${paymentId}` }]);
      rows = rows.where((eb) => eb.or([eb('created_at', '>', cursor.created_at), eb.and([eb('created_at', '=', cursor.created_at), eb('id', '>', cursor.id)])]));
    }
    const found = await rows.orderBy('created_at').orderBy('id').limit(limit + 1).execute();
    const hasMore = found.length > limit;
    const data = found.slice(0, limit).map((r) => refundResource(r, livemode));
    return { object: 'list', data, has_more: hasMore, next_starting_after: hasMore ? data.at(-1)!.id : null };
  }

  /** One refund; another merchant's, or one of the other mode than the key's, is as missing as one that never existed. */
  async getRefund(merchantId: string, refundId: string, scope: KeyScope): Promise<RefundResource> {
    const db = this.ctx.database.db;
    let q = db
      .selectFrom('refunds')
      .innerJoin('payments', 'payments.id', 'refunds.payment_id')
      .selectAll('refunds')
      .select('payments.channel_id')
      .where('refunds.id', '=', refundId)
      .where('refunds.merchant_id', '=', merchantId);
    if (scope !== null) q = q.where('payments.channel_id', 'in', channelsIn(db, scope));
    const found = await q.executeTakeFirst();
    if (!found) throw refundNotFound(refundId, scope);
    const { channel_id: _channel, ...row } = found;
    return refundResource(row, await this.livemode(db, found));
  }

  /**
   * Claims delayed captures that are due and captures them. On PostgreSQL `SKIP LOCKED`
   * lets several processes share the work: a row another process is claiming is
   * skipped, and once claimed it is no longer `authorised`, so nobody claims it again.
   * One whose authorisation lapsed more than LATE_CAPTURE_GRACE_MS ago (the scheduler was
   * stopped that long) is not captured: the expiry sweeper expires and releases it.
   */
  async captureDue(limit: number): Promise<number> {
    const now = this.ctx.clock.now();
    const claimed = await this.ctx.database.transaction(async (trx) => {
      let q = trx
        .selectFrom('payments')
        .selectAll()
        .where('status', '=', 'authorised')
        .where('capture_at', '<=', now)
        .where('expires_at', '>', now - LATE_CAPTURE_GRACE_MS)
        // A suspended merchant's captures wait (decision 0027): made once it is resumed, or the
        // authorisation expires and the customer's hold is released, as for any missed capture.
        .where(({ not, exists, selectFrom }) => not(exists(selectFrom('merchants').select('merchants.id').whereRef('merchants.id', '=', 'payments.merchant_id').where('merchants.suspended_at', 'is not', null))))
        .orderBy('capture_at')
        .limit(limit);
      if (this.ctx.database.caps.rowLocks) q = q.forUpdate().skipLocked();
      const out: PaymentsTable[] = [];
      for (const row of await q.execute()) out.push(await this.claimCapture(trx, row, row.amount));
      return out;
    });
    await Promise.all(claimed.map((p) => this.settleCapture(p).then((s) => this.logRefusal(s, 'scheduled capture refused by the acquirer'))));
    return claimed.length;
  }

  /**
   * Authorisations past their validity are expired, and their release (a void) is queued
   * with the expiry: the issuer drops a lapsed hold by itself, the void only frees the
   * customer's funds sooner, but it is asked for durably like any other release rather
   * than once after the commit. One with a delayed capture still pending is left to the
   * scheduler for LATE_CAPTURE_GRACE_MS (a capture due at the end of the validity is
   * captured, not expired); after that it expires too, and says that its capture was not made.
   */
  async expireDue(limit: number): Promise<number> {
    const now = this.ctx.clock.now();
    const expired = await this.ctx.database.transaction(async (trx) => {
      let q = trx
        .selectFrom('payments')
        .selectAll()
        .where('status', '=', 'authorised')
        .where('expires_at', '<=', now)
        .where((eb) => eb.or([eb('capture_at', 'is', null), eb('expires_at', '<=', now - LATE_CAPTURE_GRACE_MS)]))
        .orderBy('expires_at')
        .limit(limit);
      if (this.ctx.database.caps.rowLocks) q = q.forUpdate().skipLocked();
      const out: PaymentsTable[] = [];
      for (const row of await q.execute()) {
        const missed = row.capture_at === null ? {} : { failure_message: await missedCaptureMessage(trx, row) };
        out.push(await applyTransition(trx, this.ctx, row, 'expired', { expires_at: null, capture_at: null, ...missed }));
        await queueRelease(trx, this.ctx, row, 'lapsed_authorisation', row.network_reference, false);
      }
      return out;
    });
    return expired.length;
  }

  /** Claims whose holder died (crash, restart) past the lease are taken over and settled. */
  async recoverStale(limit: number): Promise<number> {
    const now = this.ctx.clock.now();
    const cutoff = now - CLAIM_LEASE_MS;
    const locks = this.ctx.database.caps.rowLocks;
    const payments = await this.ctx.database.transaction(async (trx) => {
      // Literal statuses, or neither SQLite nor PostgreSQL's generic plans can prove the
      // partial index (payments_claims) applies, and every run scans all payments.
      let q = trx.selectFrom('payments').selectAll().where('status', 'in', CLAIM_STATUSES.map((s) => sql.lit(s))).where('updated_at', '<=', cutoff).orderBy('updated_at').limit(limit);
      if (locks) q = q.forUpdate().skipLocked();
      const out: PaymentsTable[] = [];
      for (const row of await q.execute()) {
        const renewed = { ...row, version: row.version + 1, updated_at: now };
        await trx.updateTable('payments').set({ version: renewed.version, updated_at: now }).where('id', '=', row.id).where('version', '=', row.version).execute();
        out.push(renewed);
      }
      return out;
    });
    const refunds = await this.ctx.database.transaction(async (trx) => {
      let q = trx.selectFrom('refunds').selectAll().where('status', '=', sql.lit('pending')).where('updated_at', '<=', cutoff).orderBy('updated_at').limit(limit);
      if (locks) q = q.forUpdate().skipLocked();
      const out: RefundsTable[] = [];
      for (const row of await q.execute()) {
        await trx.updateTable('refunds').set({ updated_at: now }).where('id', '=', row.id).where('updated_at', '=', row.updated_at).execute();
        out.push({ ...row, updated_at: now });
      }
      return out;
    });
    await Promise.all([
      ...payments.map((p) =>
        p.status === 'capturing'
          ? this.settleCapture(p).then((s) => this.logRefusal(s, 'recovered capture refused by the acquirer'))
          : this.settleVoid(p).then((s) => this.logRefusal(s, 'recovered void refused by the acquirer')),
      ),
      ...refunds.map((r) => this.settleRefund(r)),
    ]);
    return payments.length + refunds.length;
  }

  /**
   * Which key asked to move the money, and from where (PCI DSS 10.2.1, 10.2.2): the payment's
   * events say what happened to it, not who asked. Written with the claim, so a request the
   * payment refuses leaves no row and a replayed Idempotency-Key no second one.
   */
  private audit(trx: Trx, actor: Actor, action: string, row: PaymentsTable, detail: Record<string, unknown>): Promise<void> {
    return writeAudit(this.ctx, trx, { actor, action, merchantId: row.merchant_id, target: row.id, outcome: 'success', detail });
  }

  /** Locked; another merchant's payment, and one of the other mode than the key's, is reported exactly like a missing one. */
  private async owned(trx: Trx, merchantId: string, paymentId: string, scope: KeyScope): Promise<PaymentsTable> {
    const row = await loadForUpdate(trx, this.ctx, paymentId, merchantId);
    // Read (once per channel) in the transaction: on SQLite it holds the one connection another read would wait for.
    if (!row || (scope !== null && (await paymentChannel(trx, row.channel_id)).mode !== scope)) throw paymentNotFound(paymentId, scope);
    return row;
  }

  private checkCapture(row: PaymentsTable, amount: number | undefined): void {
    const status = row.status as PaymentStatus;
    if (!isCapturable(status)) throw notCapturable(status);
    if (row.expires_at !== null && row.expires_at <= this.ctx.clock.now()) {
      throw new DomainError(409, 'authorisation_expired', `the authorisation expired at ${iso(row.expires_at)}; it can no longer be captured`, undefined, { payment_status: status });
    }
    if (amount !== undefined && amount > row.amount) {
      throw new DomainError(
        409,
        'amount_exceeds_capturable',
        `amount ${formatAmount(amount, row.currency)} is more than the ${formatAmount(row.amount, row.currency)} authorised`,
        '/amount',
        { amount_capturable: row.amount },
      );
    }
  }

  /**
   * A payment whose page is still open holds nothing at the acquirer, and a stepped-up
   * merchant-initiated payment's link stays payable for a day after the merchant sent it:
   * voiding closes the page, so the customer can no longer pay. A page already confirmed
   * (processing), or a payment whose acquirer is being asked without one, is left to that answer.
   */
  private async withdrawPage(trx: Trx, record: Recorder, row: PaymentsTable): Promise<string> {
    const closed = await trx.updateTable('checkout_sessions').set({ state: 'done' }).where('payment_id', '=', row.id).where('state', '=', 'open').executeTakeFirst();
    if (Number(closed.numUpdatedRows) !== 1) throw notVoidable('requires_action');
    const next = await applyTransition(trx, this.ctx, row, 'cancelled', { expires_at: null });
    await eraseCard(trx, this.ctx, row.id);
    const body = await this.paymentBody(trx, next);
    await record(trx, 200, body);
    return body;
  }

  /**
   * The request's Idempotency-Key is taken with the claim, before the acquirer is asked,
   * answering 202 with the claimed payment until the settlement replaces (or, for a
   * refusal, which is not stored, drops) it: a retry after a crash, a takeover or in
   * another process replays instead of meeting the claim's 409.
   */
  private async takeKey(trx: Trx, record: Recorder, claimed: PaymentsTable): Promise<PaymentsTable> {
    await record(trx, 202, await this.paymentBody(trx, claimed));
    return claimed;
  }

  private claimCapture(trx: Trx, row: PaymentsTable, amount: number): Promise<PaymentsTable> {
    const details: ClaimDetails = { ...detailsOf(row), pending_capture_amount: amount };
    return applyTransition(trx, this.ctx, row, 'capturing', {}, { silent: true, details });
  }

  private async settleCapture(claimed: PaymentsTable, record?: Recorder): Promise<Settled> {
    const amount = (detailsOf(claimed) as ClaimDetails).pending_capture_amount ?? claimed.amount;
    const result = await this.ask('capture', claimed.id, () => this.ctx.acquirer.capture(this.acquirerRequest(claimed, amount)));
    return this.ctx.database.write(async (trx): Promise<Settled> => {
      const row = await loadForUpdate(trx, this.ctx, claimed.id);
      // Whoever took this claim over after its lease settles it; nothing more to do here.
      if (!row || row.status !== 'capturing' || row.version !== claimed.version) return this.settledElsewhere(trx, row ?? claimed, record);
      switch (result.outcome) {
        case 'succeeded': {
          const next = await applyTransition(trx, this.ctx, row, capturedStatus(amount, row.amount), { captured_amount: amount, capture_at: null, expires_at: null, failure_message: null }, { details: withoutClaim(row) });
          await record?.replace(trx, 200, await this.paymentBody(trx, next));
          return { kind: 'done', status: 200, payment: next };
        }
        case 'failed': {
          // A refused capture is not retried by itself: the merchant captures again or voids. The
          // amount asked is named: a partial one is not the payment's amount, which the event
          // (and its e-mail) otherwise show, and a refusal after a 202 has no request to look back at.
          const failure_message = `capture of ${formatAmount(amount, row.currency)} failed: ${result.message}`;
          const next = await applyTransition(trx, this.ctx, row, 'authorised', { capture_at: null, failure_message }, { details: withoutClaim(row), eventType: 'payment.capture_failed' });
          await record?.forget(trx);
          return { kind: 'refused', payment: next, code: result.code, message: result.message };
        }
        case 'pending':
          await record?.replace(trx, 202, await this.paymentBody(trx, row));
          return { kind: 'done', status: 202, payment: row };
      }
    });
  }

  private async settleVoid(claimed: PaymentsTable, record?: Recorder): Promise<Settled> {
    const result = await this.ask('void', claimed.id, () => this.ctx.acquirer.void(this.acquirerRequest(claimed, claimed.amount)));
    return this.ctx.database.write(async (trx): Promise<Settled> => {
      const row = await loadForUpdate(trx, this.ctx, claimed.id);
      if (!row || row.status !== 'voiding' || row.version !== claimed.version) return this.settledElsewhere(trx, row ?? claimed, record);
      switch (result.outcome) {
        case 'succeeded': {
          const next = await applyTransition(trx, this.ctx, row, 'voided', { capture_at: null, expires_at: null, failure_message: null });
          await record?.replace(trx, 200, await this.paymentBody(trx, next));
          return { kind: 'done', status: 200, payment: next };
        }
        case 'failed': {
          // The authorisation stands as it was, but a delayed capture does not: the merchant
          // asked for the money to be released, not taken when the delay ends. The payment
          // stays authorised until it is captured, voided again or expires (and is released).
          // An event says so: a void answered 202 and refused later (after a takeover) has
          // no 422 to tell the merchant, who would otherwise wait for payment.voided.
          const calledOff = row.capture_at !== null;
          const message = calledOff ? `${result.message} Its delayed capture is called off: capture it yourself, or it is released when it expires.` : result.message;
          const next = await applyTransition(trx, this.ctx, row, 'authorised', { capture_at: null, failure_message: `void failed: ${message}` }, { eventType: 'payment.void_failed' });
          await record?.forget(trx);
          return { kind: 'refused', payment: next, code: result.code, message };
        }
        case 'pending':
          await record?.replace(trx, 202, await this.paymentBody(trx, row));
          return { kind: 'done', status: 202, payment: row };
      }
    });
  }

  private async settleRefund(pending: RefundsTable, record?: Recorder): Promise<RefundsTable> {
    const payment = await this.ctx.database.db.selectFrom('payments').selectAll().where('id', '=', pending.payment_id).executeTakeFirstOrThrow();
    const result = await this.ask('refund', payment.id, () => this.ctx.acquirer.refund({ ...this.acquirerRequest(payment, pending.amount), refundId: pending.id }));
    const livemode = await this.livemode(this.ctx.database.db, payment);
    return this.ctx.database.write(async (trx) => {
      const row = await loadForUpdate(trx, this.ctx, pending.payment_id);
      if (!row) throw new Error(`payment ${pending.payment_id} of refund ${pending.id} is missing`);
      if (result.outcome === 'pending') {
        await record?.replace(trx, 201, JSON.stringify(refundResource(pending, livemode)));
        return pending;
      }
      const now = this.ctx.clock.now();
      const done: RefundsTable =
        result.outcome === 'succeeded'
          ? { ...pending, status: 'succeeded', updated_at: now }
          : { ...pending, status: 'failed', failure_code: result.code, failure_message: result.message, updated_at: now };
      // Conditional on the claim we hold, so a refund taken over after its lease is settled once.
      const res = await trx
        .updateTable('refunds')
        .set({ status: done.status, failure_code: done.failure_code, failure_message: done.failure_message, updated_at: now })
        .where('id', '=', pending.id)
        .where('status', '=', 'pending')
        .where('updated_at', '=', pending.updated_at)
        .executeTakeFirst();
      if (Number(res.numUpdatedRows) !== 1) {
        // Settled by whoever took the claim over: the stored answer shows the refund as it is.
        const current = await trx.selectFrom('refunds').selectAll().where('id', '=', pending.id).executeTakeFirstOrThrow();
        await record?.replace(trx, 201, JSON.stringify(refundResource(current, livemode)));
        return current;
      }
      if (done.status === 'succeeded') {
        const refunded = row.refunded_amount + done.amount;
        await applyTransition(trx, this.ctx, row, refundedStatus(refunded, row.captured_amount), { refunded_amount: refunded }, { eventType: 'refund.succeeded', eventObject: (payment) => refundEvent(done, payment) });
      } else {
        await appendPaymentEvent(trx, this.ctx, row, 'refund.failed', (payment) => refundEvent(done, payment));
      }
      await record?.replace(trx, 201, JSON.stringify(refundResource(done, livemode)));
      return done;
    });
  }

  /** A claim another settler took over: answered (and stored for the key) as the payment now stands. */
  private async settledElsewhere(trx: Trx, payment: PaymentsTable, record?: Recorder): Promise<Settled> {
    await record?.replace(trx, 202, await this.paymentBody(trx, payment));
    return { kind: 'done', status: 202, payment };
  }

  private async answer(settled: Settled, code: string, what: string): Promise<{ status: number; body: string }> {
    if (settled.kind === 'refused') {
      throw new DomainError(422, code, `${what}: ${settled.message} The authorisation still stands; it may be captured again or voided.`, undefined, {
        decline_code: settled.code,
        payment_status: settled.payment.status,
      });
    }
    return { status: settled.status, body: await this.paymentBody(this.ctx.database.db, settled.payment) };
  }

  private async paymentBody(ex: Trx | AppContext['database']['db'], row: PaymentsTable): Promise<string> {
    return JSON.stringify(paymentResource(this.ctx.vault, row, await paymentChannel(ex, row.channel_id), withoutClaim(row)));
  }

  /** A payment's mode, read once per channel and process (fixed once the channel has a payment). */
  private async livemode(ex: Trx | AppContext['database']['db'], payment: Pick<PaymentsTable, 'channel_id'>): Promise<boolean> {
    return (await paymentChannel(ex, payment.channel_id)).mode === 'live';
  }

  private logRefusal(s: Settled, message: string): void {
    if (s.kind === 'refused') this.ctx.log.warn({ payment_id: s.payment.id, decline_code: s.code }, message);
  }

  private acquirerRequest(p: PaymentsTable, amount: number): CaptureRequest {
    return { paymentId: p.id, amount, currency: p.currency, networkReference: p.network_reference, cardBin: p.card_bin, cardLast4: p.card_last4 };
  }

  /** An acquirer that throws may or may not have acted: the outcome is unknown, never a success. */
  private async ask(op: string, paymentId: string, call: () => Promise<SimpleResult>): Promise<SimpleResult> {
    try {
      return await call();
    } catch (err) {
      this.ctx.log.error({ err, payment_id: paymentId, op }, 'acquirer call failed; the claim is kept and retried after its lease');
      return { outcome: 'pending', message: 'The acquirer did not answer.' };
    }
  }
}

/**
 * Why a delayed capture was never made: the scheduler was stopped past the grace, or the
 * merchant's suspension held it (decision 0027), which the merchant should read as the cause.
 * The operator's reason for the suspension is not the merchant's to read.
 */
async function missedCaptureMessage(trx: Trx, row: PaymentsTable): Promise<string> {
  const merchant = await trx.selectFrom('merchants').select('suspended_at').where('id', '=', row.merchant_id).executeTakeFirst();
  const held = merchant?.suspended_at != null && merchant.suspended_at <= row.expires_at! ? ' because the merchant account was suspended' : '';
  return `the delayed capture due at ${iso(row.capture_at!)} was not made before the authorisation expired at ${iso(row.expires_at!)}${held}; nothing was taken`;
}

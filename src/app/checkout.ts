import { createHmac, timingSafeEqual } from 'node:crypto';
import type { CardBrand } from '../domain/card.js';
import { DomainError } from '../domain/errors.js';
import { redactCardNumbers } from '../domain/card-number-in-text.js';
import type { CheckoutSessionsTable, PaymentsTable } from '../adapters/storage/schema.js';
import type { Trx } from '../adapters/storage/database.js';
import type { AcquirerCard, AuthoriseResult } from '../ports/acquirer.js';
import type { AppContext } from './context.js';
import { resolveReturnUrl } from './authorise.js';
import { PageTokens } from './page-token.js';
import { appendPaymentEvent, applyTransition, detailsOf, eraseCard, loadForUpdate } from './payment-transitions.js';
import type { PaymentDetails, RetryAdvice } from './payment-resource.js';
import { type CardToStore, storeCardOnApproval } from './stored-cards.js';
import { LookupCache } from './lookup-cache.js';
import { queueRelease } from './releases.js';

export const MAX_CHALLENGE_ATTEMPTS = 3;

/** How long an authorisation in flight holds off the page's expiry; far above any acquirer timeout. */
export const AUTHORISATION_GRACE_MS = 2 * 60_000;

class ClaimLost extends Error {}

export interface CheckoutView {
  payment: PaymentsTable;
  details: PaymentDetails;
  session: CheckoutSessionsTable;
  channelName: string;
  channelReference: string;
  /** A sandbox channel's page may say what the sandbox wants; a live channel's never does. */
  sandbox: boolean;
  flow: 'frictionless' | 'challenge';
  attemptsLeft: number;
  /** The operator has the merchant suspended (decision 0027): an open page takes no card until it is resumed. */
  merchantSuspended: boolean;
}

export function retryAdviceFor(declineCode: string, retryable: boolean): RetryAdvice {
  if (declineCode === 'insufficient_funds') return 'retry_later';
  if (declineCode === 'incorrect_cvc' || declineCode === 'expired_card' || declineCode === 'authentication_failed') return 'retry_with_new_details';
  return retryable ? 'retry_later' : 'do_not_retry';
}

/**
 * The customer's side of a payment: what the hosted page shows and the three things a
 * customer can do there (complete, answer a challenge, cancel). The page token is the
 * customer's only credential (src/app/page-token.ts): a malformed, forged or unknown one
 * is simply not found.
 */
export class Checkout {
  private readonly tokens: PageTokens;
  /**
   * The card a view's flow was decided with, opened once per request: a form post that
   * goes on to authorise uses it instead of reading and opening it again. Gone with the view.
   */
  private readonly cards = new WeakMap<CheckoutView, AcquirerCard>();

  constructor(private readonly ctx: AppContext) {
    this.tokens = PageTokens.of(ctx.config.hmacKey);
  }

  async load(token: string): Promise<CheckoutView | null> {
    const view = await this.read(token);
    // The page ended between reading the payment and reading its card, which ends with it
    // (another tab's confirm, the sweeper): read again, it shows its outcome and needs no card.
    if (view !== 'ended') return view;
    const again = await this.read(token);
    if (again === 'ended') throw new Error('a payment is on its page without its card');
    return again;
  }

  private async read(token: string): Promise<CheckoutView | null | 'ended'> {
    const paymentId = this.tokens.paymentIdOf(token);
    if (paymentId === null) return null;
    // One round trip for both rows: the page is read on every view and every form post.
    const row = await this.ctx.database.db
      .selectFrom('checkout_sessions as s')
      .innerJoin('payments as p', 'p.id', 's.payment_id')
      // Read with the page, not from the cache: every confirm reads it, so a suspension stops the next one.
      .innerJoin('merchants as m', 'm.id', 'p.merchant_id')
      .selectAll('p')
      .select(['s.state as session_state', 's.challenge_attempts as session_challenge_attempts', 's.created_at as session_created_at', 's.expires_at as session_expires_at', 'm.suspended_at as merchant_suspended_at'])
      .where('s.payment_id', '=', paymentId)
      .executeTakeFirst();
    if (!row) return null;
    const { session_state, session_challenge_attempts, session_created_at, session_expires_at, merchant_suspended_at, ...paymentRow } = row;
    const session: CheckoutSessionsTable = { payment_id: paymentRow.id, state: session_state, challenge_attempts: session_challenge_attempts, created_at: session_created_at, expires_at: session_expires_at };
    let payment: PaymentsTable = paymentRow;
    if (payment.status === 'requires_action' && payment.expires_at !== null && payment.expires_at <= this.ctx.clock.now()) {
      payment = (await this.expire(payment.id)) ?? payment;
    }
    const channel = await LookupCache.of(this.ctx).channelById(payment.channel_id);
    const card = payment.status === 'requires_action' ? await this.card(payment) : undefined;
    if (payment.status === 'requires_action' && !card) return 'ended';
    const view: CheckoutView = {
      payment,
      details: detailsOf(payment),
      session,
      // One saved before channel names were checked for card numbers is shown to every customer.
      channelName: redactCardNumbers(channel.name),
      channelReference: channel.reference,
      sandbox: channel.mode === 'sandbox',
      // A merchant-initiated payment is on a page only because its issuer asked for the
      // cardholder, and its link travels by e-mail or message, where scanners and link
      // previews open it: it waits for the customer's own answer, never confirms itself.
      flow: !card ? 'frictionless' : payment.payment_type === 'mit' ? 'challenge' : this.ctx.acquirer.authenticationFlow(card),
      attemptsLeft: MAX_CHALLENGE_ATTEMPTS - session.challenge_attempts,
      merchantSuspended: merchant_suspended_at !== null,
    };
    if (card) this.cards.set(view, card);
    return view;
  }

  /**
   * Frictionless path: the customer confirmed, authorise now. `loaded` is the page as the
   * caller has just read it (the HTTP action does, to check the token before the form),
   * so it is not read again.
   */
  async complete(token: string, loaded?: CheckoutView): Promise<CheckoutView> {
    const view = await this.requireOpen(token, loaded);
    if (!view) return loaded ?? (await this.load(token))!;
    // A challenge card cannot skip its challenge; the page shows the code form instead.
    // A suspended merchant's page stays open and shows that it cannot be paid now.
    if (view.flow === 'challenge' || view.merchantSuspended) return view;
    return (await this.authoriseOnce(view)) ?? (await this.load(token))!;
  }

  async answerChallenge(token: string, answer: string, loaded?: CheckoutView): Promise<CheckoutView & { wrongCode?: boolean; noCode?: boolean }> {
    const view = await this.requireOpen(token, loaded);
    if (!view) return loaded ?? (await this.load(token))!;
    // Not counted as an attempt: the customer did nothing wrong, and may pay once the merchant is resumed.
    if (view.merchantSuspended) return view;
    // A form sent with nothing in it (the browser's own check bypassed) is not a guess at the code.
    if (answer.trim() === '') return { ...view, noCode: true };
    // The attempt is counted before the code is checked, so codes sent at once each use one
    // and no more than MAX_CHALLENGE_ATTEMPTS are ever checked.
    const attempt = await this.countAttempt(view);
    if (attempt === null) return (await this.load(token))!;
    const card = this.cards.get(view) ?? (await this.card(view.payment));
    if (!card) return (await this.load(token))!;
    if (this.ctx.acquirer.verifyChallenge(card, answer) === 'passed') {
      return (await this.authoriseOnce(view)) ?? (await this.load(token))!;
    }
    if (attempt >= MAX_CHALLENGE_ATTEMPTS) {
      await this.endOpenPage(view, (trx, row) => {
        const details = { ...detailsOf(row), decline_message: '3-D Secure authentication failed: the code was wrong three times.', retry_advice: retryAdviceFor('authentication_failed', false) };
        return applyTransition(trx, this.ctx, row, 'declined', { decline_code: 'authentication_failed', expires_at: null }, { details });
      });
    }
    return { ...(await this.load(token))!, wrongCode: attempt < MAX_CHALLENGE_ATTEMPTS };
  }

  async cancel(token: string, loaded?: CheckoutView): Promise<CheckoutView> {
    const view = await this.requireOpen(token, loaded);
    if (view) await this.endOpenPage(view, (trx, row) => applyTransition(trx, this.ctx, row, 'cancelled', { expires_at: null }));
    return (await this.load(token))!;
  }

  /**
   * One more challenge attempt, counted in the session row while the page is open and has
   * attempts left: its number, or null when the page is no longer open or has none left.
   */
  private async countAttempt(view: CheckoutView): Promise<number | null> {
    return this.ctx.database.transaction(async (trx) => {
      // The payment's lock first, as every other change of this page takes it.
      const row = await loadForUpdate(trx, this.ctx, view.payment.id);
      if (row?.status !== 'requires_action') return null;
      const counted = await trx
        .updateTable('checkout_sessions')
        .set((eb) => ({ challenge_attempts: eb('challenge_attempts', '+', 1) }))
        .where('payment_id', '=', view.session.payment_id)
        .where('state', '=', 'open')
        .where('challenge_attempts', '<', MAX_CHALLENGE_ATTEMPTS)
        .returning('challenge_attempts')
        .executeTakeFirst();
      return counted ? Number(counted.challenge_attempts) : null;
    });
  }

  /**
   * Ends a page the customer is still on (cancel, the last wrong code), only while it is
   * open: once a confirm has claimed it (processing), the acquirer's answer decides.
   */
  private async endOpenPage(view: CheckoutView, transition: (trx: Trx, row: PaymentsTable) => Promise<PaymentsTable>): Promise<void> {
    await this.ctx.database.transaction(async (trx) => {
      const row = await loadForUpdate(trx, this.ctx, view.payment.id);
      if (row?.status !== 'requires_action') return;
      const closed = await trx.updateTable('checkout_sessions').set({ state: 'done' }).where('payment_id', '=', view.session.payment_id).where('state', '=', 'open').executeTakeFirst();
      if (Number(closed.numUpdatedRows) !== 1) return;
      await transition(trx, row);
      await eraseCard(trx, this.ctx, row.id);
    });
  }

  /**
   * Expire one payment whose page time is up; returns the row as it now stands. The time
   * is checked again under the row lock: an authorisation in flight has pushed it back.
   */
  async expire(paymentId: string): Promise<PaymentsTable | undefined> {
    return this.ctx.database.transaction(async (trx) => {
      const row = await loadForUpdate(trx, this.ctx, paymentId);
      if (row?.status !== 'requires_action') return row;
      if (row.expires_at !== null && row.expires_at > this.ctx.clock.now()) return row;
      const next = await applyTransition(trx, this.ctx, row, 'expired', { expires_at: null });
      // A confirm (session processing) or a merchant-initiated payment (no page) had asked
      // the acquirer and never recorded its answer, past the grace: its process may have
      // died after an approval, and, with an immediate capture, after that capture too.
      // Both are reversed: the one that finds nothing to release ends nothing_held.
      const session = await trx.selectFrom('checkout_sessions').select('state').where('payment_id', '=', row.id).executeTakeFirst();
      if (session?.state !== 'open') {
        await queueRelease(trx, this.ctx, row, 'unconfirmed_authorisation', null, false);
        if (row.capture_mode === 'auto' && row.capture_delay_ms === null) await queueRelease(trx, this.ctx, row, 'unconfirmed_authorisation', null, true);
      }
      await eraseCard(trx, this.ctx, row.id);
      await trx.updateTable('checkout_sessions').set({ state: 'done' }).where('payment_id', '=', row.id).execute();
      return next;
    });
  }

  /** Where the customer goes back to, signed with the channel's return secret. */
  async returnRedirect(view: CheckoutView): Promise<string> {
    const p = view.payment;
    const channel = await LookupCache.of(this.ctx).channelById(p.channel_id);
    const registered = (JSON.parse(channel.return_urls) as string[]).map((u) => resolveReturnUrl(this.ctx.config.publicUrl, u));
    // Only a URL still registered on the channel is ever a redirect target.
    const target = registered.includes(view.details.return_url) ? view.details.return_url : registered[0]!;
    const secret = this.ctx.vault.openString(channel.id, channel.return_secret_ct);
    const url = new URL(target);
    // An open page's redirect is signed as it is sent. A finished page shows its outcome for
    // as long as its link is kept (history, a forwarded e-mail): its return carries the time
    // the payment last changed, so an old link can never mint a return fresh enough to pass
    // the merchant's 600-second check.
    const signedAt = p.status === 'requires_action' ? this.ctx.clock.now() : p.updated_at;
    const params = signReturn(secret, { payment_id: p.id, reference: p.reference ?? '', status: p.status, timestamp: String(Math.floor(signedAt / 1000)) });
    for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
    return url.toString();
  }

  private async requireOpen(token: string, loaded: CheckoutView | undefined): Promise<CheckoutView | null> {
    const view = loaded ?? (await this.load(token));
    if (!view) throw new DomainError(404, 'checkout_not_found', 'this payment page does not exist');
    return view.payment.status === 'requires_action' && view.session.state === 'open' ? view : null;
  }

  /** Undefined once the page has ended: the card is erased with it (eraseCard). */
  private async card(payment: PaymentsTable): Promise<AcquirerCard | undefined> {
    const sealed = await this.ctx.database.db.selectFrom('card_secrets').selectAll().where('payment_id', '=', payment.id).executeTakeFirst();
    if (!sealed) return undefined;
    const card = this.ctx.vault.openCard(payment.id, sealed);
    const name = detailsOf(payment).card_name;
    return {
      pan: card.pan,
      cvc: card.cvc,
      expiryMonth: payment.card_exp_month,
      expiryYear: payment.card_exp_year,
      brand: payment.card_brand as CardBrand,
      holderName: name ? [name.first_name, name.middle_name, name.last_name].filter(Boolean).join(' ') : undefined,
    };
  }

  /**
   * Claims the session (open → processing) before calling the acquirer, so a double
   * submit or a second tab can never authorise twice; the loser just shows the outcome.
   * The page as this request left it when it recorded the outcome (no read needed to
   * show it), or null when another request or the sweeper got there first.
   */
  private async authoriseOnce(view: CheckoutView): Promise<CheckoutView | null> {
    if (!(await this.claim(view))) return null;
    const p = view.payment;
    const card = this.cards.get(view) ?? (await this.card(p));
    // The claim holds the page open, and the card with it, until this request records the outcome.
    if (!card) throw new Error(`payment ${p.id} was claimed without its card`);
    let result: AuthoriseResult;
    try {
      result = await this.ctx.acquirer.authorise({
        paymentId: p.id,
        amount: p.amount,
        currency: p.currency,
        card,
        initiator: 'cit',
        authenticated: true,
        storedCredential: view.details.payment_data.credential_on_file,
        paymentSubType: view.details.payment_data.payment_sub_type,
        // The customer authenticates here: a stepped-up industry-practice MIT (a no-show, say)
        // is now theirs, and schemes take an MIT reason code on merchant-initiated ones only.
        industryUsage: 'none',
      });
    } catch (error) {
      this.ctx.log.error({ err: error, payment_id: p.id }, 'acquirer authorise call failed');
      result = UNANSWERED;
    }
    const capture = await captureIfDue(this.ctx, p, result);
    // Claim and record share group commits with other payments (Database.write): the
    // customer's confirmation costs no fsync of its own under load.
    const recorded = await this.ctx.database.write(async (trx) => {
      const row = await loadForUpdate(trx, this.ctx, p.id);
      if (!row || row.status !== 'requires_action') {
        await releaseLateApproval(trx, this.ctx, p, result, capture);
        return null;
      }
      const next = await recordAuthorisation(trx, this.ctx, row, result, capture, { pan: card.pan, live: !view.sandbox });
      await eraseCard(trx, this.ctx, row.id);
      await trx.updateTable('checkout_sessions').set({ state: 'done' }).where('payment_id', '=', view.session.payment_id).execute();
      return next;
    });
    if (!recorded) return null;
    // What load() would read back: a page no longer payable shows its outcome, never a challenge.
    return { ...view, payment: recorded, details: detailsOf(recorded), session: { ...view.session, state: 'done' }, flow: 'frictionless' };
  }

  /**
   * open → processing, and the payment's expiry pushed past the acquirer call, so that
   * neither the page nor the sweeper expires a payment the acquirer may be approving.
   * Fails (nothing changes) if another request claimed it or it is no longer payable.
   */
  private async claim(view: CheckoutView): Promise<boolean> {
    const now = this.ctx.clock.now();
    const until = now + AUTHORISATION_GRACE_MS;
    return this.ctx.database.write(async (trx) => {
      // The payment's row first, as every other change of this page locks it: in the other
      // order a confirm and the sweeper's expiry could deadlock on PostgreSQL.
      const payment = await trx
        .updateTable('payments')
        .set((eb) => ({ expires_at: Math.max(view.payment.expires_at ?? 0, until), version: eb('version', '+', 1) }))
        .where('id', '=', view.payment.id)
        .where('status', '=', 'requires_action')
        // A page whose time ran out since it was read is not claimed: it is expired on reload.
        .where((eb) => eb.or([eb('expires_at', 'is', null), eb('expires_at', '>', now)]))
        .executeTakeFirst();
      if (Number(payment.numUpdatedRows) !== 1) return false;
      const session = await trx.updateTable('checkout_sessions').set({ state: 'processing' }).where('payment_id', '=', view.session.payment_id).where('state', '=', 'open').executeTakeFirst();
      // Rolls the payment's update back: another request holds the page.
      if (Number(session.numUpdatedRows) !== 1) throw new ClaimLost();
      return true;
    }).catch((error: unknown) => {
      if (error instanceof ClaimLost) return false;
      throw error;
    });
  }
}

/**
 * A call to authorise that threw may or may not have reached the acquirer: it is recorded
 * like an answer the connector could not map (failed, and reversed at the acquirer).
 */
export const UNANSWERED: AuthoriseResult = { outcome: 'pending', message: 'The acquirer could not be reached.' };

/**
 * The payment ended (expired) while the acquirer was approving it: the money is given back
 * rather than held with no payment accounting for it. A capture whose answer is unknown is
 * refunded: a refund refused because nothing was captured costs only retries, a void refused
 * because the money was taken would leave it taken.
 */
export async function releaseLateApproval(trx: Trx, ctx: AppContext, p: PaymentsTable, result: AuthoriseResult, capture: CaptureOutcome): Promise<void> {
  if (result.outcome !== 'approved') return;
  const captured = capture.kind === 'captured' || capture.kind === 'pending';
  // Its expiry queued a reversal of the authorisation (and, for a capture asked at once, a
  // refund): what is still to come or done covers this approval, unless it found nothing to
  // release (asked before the acquirer had recorded this approval).
  const queued = await trx.selectFrom('releases').select(['id', 'action', 'status']).where('payment_id', '=', p.id).where('status', 'in', ['pending', 'succeeded']).execute();
  // A refund releases no authorisation: only a void still to come or done covers one.
  if (!captured && queued.some((r) => r.action === 'void')) return;
  const refund = queued.find((r) => r.action === 'refund');
  if (captured && refund?.status === 'succeeded') return;
  if (captured && refund) {
    // The expiry's refund, not asked yet or being asked, now refunds money known to be taken:
    // with this approval's reference, and asked again until given (one refund reference, so
    // the acquirer never refunds twice). Its attempt count moves on, so the answer to an ask
    // already under way (made before the capture, when nothing was taken) is not recorded.
    const now = ctx.clock.now();
    await trx
      .updateTable('releases')
      .set((eb) => ({ reason: 'late_approval', network_reference: result.networkReference ?? null, attempts: eb('attempts', '+', 1), next_attempt_at: now, updated_at: now }))
      .where('id', '=', refund.id)
      .execute();
    return;
  }
  await queueRelease(trx, ctx, p, 'late_approval', result.networkReference, captured);
}

type CaptureOutcome = { kind: 'none' } | { kind: 'captured' } | { kind: 'failed'; message: string } | { kind: 'pending' };

/**
 * The capture of an approval with capture "auto" and no delay, asked at once. An answer
 * still pending, or a call that threw (it may or may not have acted), is neither a success
 * nor a refusal: the payment is left claimed (capturing) and the scheduler asks again
 * after the claim's lease, as for a capture the merchant asked for.
 */
export async function captureIfDue(ctx: AppContext, p: PaymentsTable, result: AuthoriseResult): Promise<CaptureOutcome> {
  if (result.outcome !== 'approved' || p.capture_mode !== 'auto' || p.capture_delay_ms !== null) return { kind: 'none' };
  try {
    const r = await ctx.acquirer.capture({ paymentId: p.id, amount: p.amount, currency: p.currency, networkReference: result.networkReference, cardBin: p.card_bin, cardLast4: p.card_last4 });
    if (r.outcome === 'pending') return { kind: 'pending' };
    return r.outcome === 'succeeded' ? { kind: 'captured' } : { kind: 'failed', message: r.message };
  } catch (error) {
    ctx.log.error({ err: error, payment_id: p.id }, 'acquirer capture call failed; the capture is asked again after its claim lease');
    return { kind: 'pending' };
  }
}

/**
 * Write the acquirer's verdict (and an immediate capture) as transitions with their events.
 * `toStore`: what the hosted page passes for storing the card (merchant-initiated payments pass none).
 */
export async function recordAuthorisation(
  trx: Parameters<typeof applyTransition>[0],
  ctx: AppContext,
  row: PaymentsTable,
  result: AuthoriseResult,
  capture: CaptureOutcome,
  toStore?: CardToStore,
): Promise<PaymentsTable> {
  const now = ctx.clock.now();
  const details = detailsOf(row);
  switch (result.outcome) {
    case 'approved': {
      const expiresAt = now + ctx.config.authorisationValidityMs;
      // The delay was checked against the validity when the payment was created; a validity
      // lowered since (the page stays open for up to a day) must not push the capture past
      // the authorisation's end, where it would be taken on a lapsed hold or never at all.
      const captureAt = row.capture_mode === 'auto' && row.capture_delay_ms !== null ? Math.min(now + row.capture_delay_ms, expiresAt) : null;
      // Stored before the transition so the authorised event already carries the pm_… token.
      const stored = await storeCardOnApproval(trx, ctx, row, result.networkReference, toStore);
      let next = await applyTransition(trx, ctx, row, 'authorised', {
        ...stored,
        authorisation_code: result.authorisationCode,
        network_reference: result.networkReference,
        authorised_at: now,
        capture_at: captureAt,
        expires_at: expiresAt,
      });
      if (capture.kind === 'captured') {
        next = await applyTransition(trx, ctx, next, 'captured', { captured_amount: next.amount, capture_at: null, expires_at: null });
      } else if (capture.kind === 'pending') {
        // Claimed as a capture the merchant asked for would be (src/app/lifecycle.ts, recoverStale).
        next = await applyTransition(trx, ctx, next, 'capturing', {}, { silent: true, details: { ...detailsOf(next), pending_capture_amount: next.amount } as PaymentDetails });
      } else if (capture.kind === 'failed') {
        // The authorisation stands; the merchant can retry with POST /payment/{id}/capture,
        // told by payment.capture_failed as for a refused delayed or manual capture.
        const failure_message = `automatic capture failed: ${capture.message}`;
        await trx.updateTable('payments').set({ failure_message }).where('id', '=', next.id).execute();
        next = await appendPaymentEvent(trx, ctx, { ...next, failure_message }, 'payment.capture_failed', (payment) => payment);
      }
      return next;
    }
    case 'declined':
      return applyTransition(trx, ctx, row, 'declined', { decline_code: result.declineCode, expires_at: null }, {
        details: { ...details, decline_message: result.message, retry_advice: retryAdviceFor(result.declineCode, result.retryable) },
      });
    case 'requires_authentication':
      return applyTransition(trx, ctx, row, 'declined', { decline_code: 'authentication_required', expires_at: null }, {
        details: { ...details, decline_message: result.message, retry_advice: 'retry_with_new_details' },
      });
    case 'error':
      return applyTransition(trx, ctx, row, 'failed', { failure_message: result.message, expires_at: null });
    case 'pending':
      // An outcome we cannot confirm is never reported as success, and whatever the acquirer
      // may have approved is reversed.
      await queueRelease(trx, ctx, row, 'unconfirmed_authorisation', null, false);
      return applyTransition(trx, ctx, row, 'failed', { failure_message: result.message, expires_at: null });
  }
}

export interface ReturnParams {
  payment_id: string;
  reference: string;
  status: string;
  timestamp: string;
}

/**
 * signature = hex(HMAC-SHA256(return_secret, "timestamp.payment_id.status.reference")).
 * The merchant recomputes it and compares in constant time (README "Verifying the return").
 */
export function signReturn(secret: string, p: ReturnParams): ReturnParams & { signature: string } {
  const signature = createHmac('sha256', secret).update(`${p.timestamp}.${p.payment_id}.${p.status}.${p.reference}`).digest('hex');
  return { ...p, signature };
}

/** How old a return may be when the merchant checks it (the documented verifier's tolerance). */
export const RETURN_TOLERANCE_SECONDS = 600;

/**
 * The merchant's check, as the README gives it: the signature over the parameters, compared
 * as bytes of equal length (a signature with characters outside ASCII is simply wrong), and a
 * timestamp within the tolerance of `now`.
 */
export function checkReturn(secret: string, p: ReturnParams & { signature: string }, now: number): 'valid' | 'invalid' | 'expired' {
  const expected = Buffer.from(signReturn(secret, p).signature);
  const sent = Buffer.from(p.signature);
  if (sent.length !== expected.length || !timingSafeEqual(sent, expected)) return 'invalid';
  return Math.abs(now / 1000 - Number(p.timestamp)) <= RETURN_TOLERANCE_SECONDS ? 'valid' : 'expired';
}

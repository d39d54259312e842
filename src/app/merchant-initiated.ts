import { DomainError } from '../domain/errors.js';
import { quotedId } from '../domain/ids.js';
import { isCurrency } from '../domain/money.js';
import type { CardBrand } from '../domain/card.js';
import { agreementKind, isSubsequent, type PaymentData } from '../domain/payment-data.js';
import type { PaymentsTable } from '../adapters/storage/schema.js';
import type { SensitiveCard } from '../adapters/vault/envelope.js';
import type { Trx } from '../adapters/storage/database.js';
import type { AuthoriseResult } from '../ports/acquirer.js';
import type { AppContext } from './context.js';
import type { Recorder } from './idempotency.js';
import { newCheckoutSession } from './authorise.js';
import { AUTHORISATION_GRACE_MS, UNANSWERED, captureIfDue, recordAuthorisation, releaseLateApproval, retryAdviceFor } from './checkout.js';
import { eventRow } from './events.js';
import { type PaymentChannel, applyTransition, detailsOf, loadForUpdate, paymentChannel } from './payment-transitions.js';
import { type PaymentDetails, paymentResource } from './payment-resource.js';
import type { ResolvedMethod } from './stored-cards.js';
import { insertRow, insertRows, type RowInsert } from '../adapters/storage/compiled.js';
import { LookupCache } from './lookup-cache.js';
import { checkIndustryPractice } from './industry-practice.js';
import { type InstalmentPlan, instalmentPlanOf, takeInstalment } from './instalments.js';
import { checkMitRetries, recordMitDecline } from './mit-retries.js';

/**
 * A stepped-up merchant-initiated payment waits for a customer who is not on the
 * merchant's site and must be reached (e-mail, SMS): its page lives a day, not the
 * minutes of a checkout. No CVC is held meanwhile, only the sealed card number.
 */
export const STEP_UP_PAGE_TTL_MS = 24 * 60 * 60 * 1000;

/** What authorise has checked and built, not yet written. */
export interface PreparedPayment {
  payment: PaymentsTable;
  /** Sealed only if the issuer steps the payment up to a hosted page. */
  card: SensitiveCard;
  method: ResolvedMethod;
}


/** Payments that finish in the request itself: nobody is there to send to a hosted page. */
export function settlesWithoutCustomer(prepared: PreparedPayment): boolean {
  return prepared.payment.payment_type === 'mit' || prepared.method.expired;
}

/**
 * A merchant-initiated payment (or one on an expired stored card) answers 201 with its
 * final status. The payment is committed before the acquirer is called, so a crash in
 * between leaves a visible payment (expired later by the sweeper) and a retry with the
 * same Idempotency-Key replays it instead of charging again; the stored response is then
 * replaced by the final one in the transaction that records the verdict.
 */
export async function settleWithoutCustomer(
  ctx: AppContext,
  cmd: { merchantId: string },
  prepared: PreparedPayment,
  record: Recorder,
): Promise<{ status: number; body: string }> {
  const details = detailsOf(prepared.payment);
  let customerReference = prepared.payment.customer_reference;
  if (prepared.payment.payment_type === 'mit') {
    const { passed, agreement, customer, since, plan, approvedAt } = await networkReferences(ctx, cmd.merchantId, prepared.method.paymentData, prepared.payment);
    await checkMitRetries(ctx, prepared.payment, approvedAt);
    if (passed !== undefined) details.initial_network_reference = passed;
    if (since !== undefined) details.industry_practice_since = since;
    // An expired stored card is declined unsent: it takes no place in the plan, so its decline must give none back.
    if (plan !== undefined && !prepared.method.expired) details.instalment_plan = plan;
    if (agreement !== passed && agreement !== undefined) details.agreement_network_reference = agreement;
    // Raw card data naming no customer charges the named payment's customer: listed under them, as a token's payment is.
    if (customerReference === null && customer !== null) {
      customerReference = customer;
      details.customer = { reference: customer, ...details.customer };
    }
  }
  // Pending only while the acquirer answers (a hosted page's lifetime, as short as 30 s, is
  // not this payment's): the sweeper expires it only if the process died in between.
  const payment: PaymentsTable = { ...prepared.payment, customer_reference: customerReference, details: JSON.stringify(details), expires_at: prepared.payment.created_at + AUTHORISATION_GRACE_MS };
  const ref = await paymentChannel(ctx.database.db, payment.channel_id);
  const created = eventRow(ctx, payment, 'payment.created', paymentResource(ctx.vault, payment, ref, details), payment.created_at);

  if (prepared.method.expired) {
    let body = '';
    await ctx.database.write(async (trx) => {
      await insertRow(trx, 'payments', payment);
      await insertRow(trx, 'events', created);
      const declined = await declineExpired(trx, ctx, payment, details);
      body = JSON.stringify(paymentResource(ctx.vault, declined, ref, detailsOf(declined)));
      await record(trx, 201, body);
    });
    return { status: 201, body };
  }

  // Rows only, so the payment shares authorise's insert batches (on SQLite the writer thread's
  // commits): committed, as before, before the acquirer is asked.
  const pending: RowInsert[] = [
    { table: 'payments', row: payment },
    { table: 'events', row: created },
  ];
  const stored = record.row(201, JSON.stringify(paymentResource(ctx.vault, payment, ref, details)));
  if (stored) pending.push(stored);
  const plan = details.instalment_plan;
  if (plan === undefined) await ctx.database.insert(pending);
  else {
    // The plan's count moves in the transaction that writes the payment: a refusal writes nothing.
    await ctx.database.write(async (trx) => {
      await takeInstalment(trx, plan);
      await insertRows(trx, pending);
    });
  }
  // The request read the stored card before this payment existed: a DELETE answered since
  // then refuses it, as it refuses every later payment on the token.
  if (await storedCardDeleted(ctx.database.db, prepared.method)) {
    return { status: 201, body: await declineDeletedCard(ctx, payment.id, ref, record) };
  }

  const result = await authoriseNow(ctx, payment, prepared, details);
  const capture = await captureIfDue(ctx, payment, result);
  // The verdict shares a group commit with other payments' (Database.write), as the hosted
  // page's does: a transaction of its own cost each payment an fsync on the event loop.
  const body = await ctx.database.write(async (trx) => {
    const row = await loadForUpdate(trx, ctx, payment.id);
    if (!row) throw new Error(`payment ${payment.id} vanished while its acquirer call was running`);
    let final = row;
    let redirectUrl: string | undefined;
    if (row.status !== 'requires_action') {
      ctx.log.warn({ payment_id: row.id, status: row.status }, 'merchant-initiated payment moved on before its acquirer verdict was recorded');
      await releaseLateApproval(trx, ctx, payment, result, capture);
    } else if (result.outcome === 'requires_authentication') {
      // A card deleted while the issuer answered is not sealed again for a step-up page.
      if (await storedCardDeleted(trx, prepared.method)) final = await declineWithoutAcquirer(trx, ctx, row, 'payment_method_deleted', DELETED_CARD_MESSAGE);
      else ({ row: final, redirectUrl } = await stepUp(trx, ctx, row, prepared.card));
    } else {
      final = await recordAuthorisation(trx, ctx, row, result, capture);
      if (result.outcome === 'declined' && final.status === 'declined') await recordMitDecline(trx, final);
    }
    const text = JSON.stringify(paymentResource(ctx.vault, final, ref, detailsOf(final), redirectUrl));
    await record.replace(trx, 201, text);
    return text;
  });
  return { status: 201, body };
}

async function declineExpired(trx: Trx, ctx: AppContext, payment: PaymentsTable, details: PaymentDetails): Promise<PaymentsTable> {
  const mm = String(payment.card_exp_month).padStart(2, '0');
  return declineWithoutAcquirer(trx, ctx, payment, 'expired_card', `The stored card expired at the end of ${mm}/${payment.card_exp_year}; the acquirer was not asked. Ask the customer to pay with their current card in a customer-initiated payment with store_for_future_use.`, details);
}

function declineWithoutAcquirer(trx: Trx, ctx: AppContext, payment: PaymentsTable, code: string, message: string, details = detailsOf(payment)): Promise<PaymentsTable> {
  return applyTransition(trx, ctx, payment, 'declined', { decline_code: code, expires_at: null }, {
    details: { ...details, decline_message: message, retry_advice: retryAdviceFor(code, false) },
  });
}

const DELETED_CARD_MESSAGE = 'The stored card was deleted (DELETE /payment-methods/{id}) while this payment was being made; nothing was charged.';

/** Whether the stored card a payment names has been deleted since the request read it. */
async function storedCardDeleted(db: Trx | AppContext['database']['db'], method: ResolvedMethod): Promise<boolean> {
  if (!method.storedCard) return false;
  const row = await db.selectFrom('payment_methods').select('deleted_at').where('id', '=', method.storedCard.id).executeTakeFirst();
  return row?.deleted_at !== null && row?.deleted_at !== undefined;
}

/** The payment, committed and not yet sent to the acquirer, declined because its card was deleted. */
async function declineDeletedCard(ctx: AppContext, paymentId: string, ref: PaymentChannel, record: Recorder): Promise<string> {
  return ctx.database.write(async (trx) => {
    const row = await loadForUpdate(trx, ctx, paymentId);
    if (!row) throw new Error(`payment ${paymentId} vanished before its acquirer call`);
    const final = row.status === 'requires_action' ? await declineWithoutAcquirer(trx, ctx, row, 'payment_method_deleted', DELETED_CARD_MESSAGE) : row;
    const text = JSON.stringify(paymentResource(ctx.vault, final, ref, detailsOf(final)));
    await record.replace(trx, 201, text);
    return text;
  });
}

async function authoriseNow(ctx: AppContext, payment: PaymentsTable, prepared: PreparedPayment, details: PaymentDetails): Promise<AuthoriseResult> {
  try {
    return await ctx.acquirer.authorise({
      paymentId: payment.id,
      amount: payment.amount,
      currency: payment.currency,
      card: {
        pan: prepared.method.card.number,
        cvc: undefined,
        expiryMonth: payment.card_exp_month,
        expiryYear: payment.card_exp_year,
        brand: payment.card_brand as CardBrand,
        holderName: undefined,
      },
      initiator: 'mit',
      authenticated: false,
      storedCredential: details.payment_data.credential_on_file,
      paymentSubType: details.payment_data.payment_sub_type,
      industryUsage: details.payment_data.industry_usage,
      previousNetworkReference: details.initial_network_reference,
    });
  } catch (error) {
    ctx.log.error({ err: error, payment_id: payment.id }, 'acquirer authorise call failed');
    return UNANSWERED;
  }
}

/**
 * The issuer wants the cardholder: the payment stays `requires_action` and gets a
 * hosted page like a customer-initiated one, which the merchant sends to the customer.
 */
async function stepUp(trx: Trx, ctx: AppContext, row: PaymentsTable, card: SensitiveCard): Promise<{ row: PaymentsTable; redirectUrl: string }> {
  const now = ctx.clock.now();
  const expiresAt = now + STEP_UP_PAGE_TTL_MS;
  const { session, redirectUrl } = newCheckoutSession(ctx, row.id, now, expiresAt);
  await trx.insertInto('card_secrets').values({ payment_id: row.id, ...ctx.vault.sealCard(row.id, card) }).execute();
  await trx.insertInto('checkout_sessions').values(session).execute();
  const next: PaymentsTable = { ...row, expires_at: expiresAt, version: row.version + 1, updated_at: now };
  const res = await trx.updateTable('payments').set({ expires_at: expiresAt, version: next.version, updated_at: now }).where('id', '=', row.id).where('version', '=', row.version).executeTakeFirst();
  if (Number(res.numUpdatedRows) !== 1) {
    throw new DomainError(409, 'concurrent_modification', 'the payment was changed by another request at the same time; fetch it and retry if still needed');
  }
  return { row: next, redirectUrl };
}

/**
 * The scheme reference an MIT passes to the acquirer, and the initial one of the agreement
 * it belongs to, checked against the payment that set it up when the merchant names one
 * (docs/payment-data.md, "Initial agreement"). They differ for an industry-practice MIT,
 * which passes the named payment's own. A bare previous_network_reference may come from
 * another acquirer and is taken as given.
 */
async function networkReferences(
  ctx: AppContext,
  merchantId: string,
  data: PaymentData,
  payment: PaymentsTable,
): Promise<{ passed: string | undefined; agreement: string | undefined; customer: string | null; since?: number; plan?: InstalmentPlan; approvedAt: number | null }> {
  const previousId = data.previous_payment_id;
  if (previousId === undefined) return { passed: data.previous_network_reference, agreement: data.previous_network_reference, customer: null, approvedAt: null };
  const refuse = (code: string, message: string) => new DomainError(422, code, message, '/payment_data/previous_payment_id');

  // Another merchant's payment is reported exactly like a missing one.
  const prev = await ctx.database.db.selectFrom('payments').selectAll().where('id', '=', previousId).where('merchant_id', '=', merchantId).executeTakeFirst();
  if (!prev) throw refuse('initial_payment_not_found', `no payment ${quotedId(previousId, 'payment')} for this secret key's merchant: previous_payment_id must name one of your own earlier payments`);
  const prevDetails = detailsOf(prev);
  const prevData = prevDetails.payment_data;
  // A sandbox payment's consent and network reference never reached a scheme: no live charge can rest on them.
  const channels = LookupCache.of(ctx);
  if ((await channels.channelById(payment.channel_id)).mode === 'live' && (await channels.channelById(prev.channel_id)).mode !== 'live') {
    throw refuse('initial_payment_not_live', `payment ${previousId} was made on a sandbox channel and set up no agreement a live payment can follow; name a payment made on a live channel`);
  }
  if (prev.card_fingerprint !== payment.card_fingerprint) {
    throw refuse('initial_payment_card_mismatch', `payment ${previousId} was made with another card than this payment_method`);
  }
  // A stored credential is one cardholder's consent: the same card kept for another of the
  // merchant's customers (a shared family card, say) gives no right to charge under it.
  // A payment made for no customer is no consent of the customer this one names (with a token,
  // always the stored card's); one naming no customer (raw card data) takes the named payment's.
  if (payment.customer_reference !== null && payment.customer_reference !== prev.customer_reference) {
    const whose = payment.payment_method_id !== null ? "the stored card's customer" : 'customer.reference';
    throw refuse(
      'initial_payment_customer_mismatch',
      prev.customer_reference === null
        ? `payment ${previousId} was made for no customer reference, and this payment is for "${payment.customer_reference}" (${whose}); name a payment of that customer's own agreement`
        : `payment ${previousId} was made for customer "${prev.customer_reference}", not for "${payment.customer_reference}" (${whose}); name a payment of that customer's own agreement`,
    );
  }
  // An industry-practice MIT carries on the one transaction it names, in that transaction's
  // currency; a resubmission asks again for money the issuer declined, never for more.
  if (data.industry_usage !== 'none' && payment.currency !== prev.currency) {
    // A payment taken before its currency was withdrawn (BGN, SLL): asking for that currency
    // would only earn the retry a 400 invalid_currency.
    const advice = isCurrency(prev.currency) ? `send currency ${prev.currency}` : `${prev.currency} is no longer accepted (withdrawn from ISO 4217), so no industry-practice payment can follow it`;
    throw new DomainError(422, 'industry_usage_currency_mismatch', `industry_usage "${data.industry_usage}" carries on payment ${previousId}, which is in ${prev.currency}: ${advice}`, '/currency');
  }
  const since = data.industry_usage !== 'none' ? checkIndustryPractice(data, prev, prevDetails, payment, ctx.clock.now()) : undefined;
  if (data.industry_usage === 'none' && prev.authorised_at === null) {
    throw refuse('initial_payment_not_authorised', `payment ${previousId} was never approved (status "${prev.status}"), so it set up no agreement to charge under`);
  }
  if (isSubsequent(data.payment_sub_type)) {
    if (!prevData.credential_on_file) {
      throw refuse('initial_payment_not_credential_on_file', `payment ${previousId} did not store the card as a credential on file (credential_on_file false), so it set up no agreement for merchant-initiated payments`);
    }
    const kind = agreementKind(data.payment_sub_type)!;
    const prevKind = agreementKind(prevData.payment_sub_type);
    if (prevKind !== kind) {
      throw refuse(
        'agreement_type_mismatch',
        prevKind === null
          ? `payment ${previousId} is "one-off" and set up no ${kind} agreement; a "${kind}-subsequent" payment must follow a "${kind}-initial" one`
          : `payment ${previousId} belongs to ${/^[aeiou]/.test(prevKind) ? 'an' : 'a'} ${prevKind} agreement: send payment_sub_type "${prevKind}-subsequent"`,
      );
    }
  }
  const plan = data.payment_sub_type === 'instalment-subsequent' ? instalmentPlanOf(prev, prevDetails) : undefined;
  // A later MIT of the agreement carries the initial reference on; schemes want the initial one.
  // An industry-practice MIT carries on the one transaction it names (the authorisation it
  // reauthorises, the stay it adds a charge to), and schemes want that transaction's own id,
  // whose age they check: an agreement's initial one may be years old.
  // An industry-practice MIT's initial_network_reference is the payment it carried on, so
  // its agreement's is kept apart: an agreement MIT naming it still carries the initial one.
  const agreement = prevDetails.agreement_network_reference ?? prevDetails.initial_network_reference ?? prev.network_reference ?? undefined;
  const initial = data.industry_usage === 'none' ? agreement : (prev.network_reference ?? agreement);
  const given = data.previous_network_reference;
  if (given !== undefined && given !== agreement && given !== prev.network_reference) {
    throw new DomainError(
      422,
      'previous_network_reference_mismatch',
      `previous_network_reference does not match payment ${previousId} (its agreement's network reference is ${agreement ?? 'unknown'}); send one of them, or both matching`,
      '/payment_data/previous_network_reference',
    );
  }
  return { passed: initial ?? given, agreement: agreement ?? given, customer: prev.customer_reference, since, ...(plan ? { plan } : {}), approvedAt: prev.authorised_at };
}

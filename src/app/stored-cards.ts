import { type ExpressionBuilder, type SelectQueryBuilder, sql } from 'kysely';
import type { Static } from '@sinclair/typebox';
import { DomainError, type FieldError, underPointer } from '../domain/errors.js';
import { quotedId } from '../domain/ids.js';
import { cardExpired, cvcLength, validateCard, type CardBrand } from '../domain/card.js';
import { normalisePaymentData, type PaymentData } from '../domain/payment-data.js';
import type { PaymentMethodsTable, PaymentsTable, Schema } from '../adapters/storage/schema.js';
import type { Trx } from '../adapters/storage/database.js';
import { SensitiveCard } from '../adapters/vault/envelope.js';
import type { AuthoriseRequestBody, CardMethod } from '../http/schemas/payment-request.js';
import { type Actor, writeAudit } from './audit.js';
import type { AppContext } from './context.js';
import { detailsOf } from './payment-transitions.js';
import { type FingerprintView, iso } from './payment-resource.js';
import { inKeyBatches } from './key-batches.js';
import type { KeyScope } from './key-scope.js';

export type CardMethodBody = Static<typeof CardMethod>;

/**
 * The card a payment is made with, whichever way it arrived. A stored token is turned
 * into the raw-card shape so authorise builds the payment, its sealed card and its
 * hosted page the same way for both.
 */
export interface ResolvedMethod {
  card: CardMethodBody;
  /** `pm_…` when the request named a stored card. */
  token: string | null;
  storedCard: PaymentMethodsTable | null;
  /** The stored card's customer, used when the request names none. */
  customerReference: string | null;
  storeForFutureUse: boolean;
  paymentData: PaymentData;
  /** A stored card past its expiry month: declined without asking the acquirer. */
  expired: boolean;
  errors: FieldError[];
}

function paymentMethodNotFound(id: string, pointer?: string): DomainError {
  return new DomainError(404, 'payment_method_not_found', `no stored card ${quotedId(id, 'paymentMethod')} for this secret key's merchant`, pointer);
}

/** Reads the merchant's live stored card; another merchant's token is reported exactly like a missing one. */
async function usableStoredCard(ctx: AppContext, merchantId: string, id: string): Promise<PaymentMethodsTable> {
  const row = await ctx.database.db.selectFrom('payment_methods').selectAll().where('id', '=', id).where('merchant_id', '=', merchantId).executeTakeFirst();
  if (!row) throw paymentMethodNotFound(id, '/payment_method/token');
  if (row.deleted_at !== null || row.pan_ct === null || row.wrapped_dek === null || row.kek_id === null) {
    throw new DomainError(
      422,
      'payment_method_deleted',
      `stored card ${id} was deleted on ${iso(row.deleted_at)} and its card number erased; ask the customer for their card again in a customer-initiated payment with store_for_future_use`,
      '/payment_method/token',
    );
  }
  return row;
}

/**
 * Whether a payment on a live channel stored this card. The card's agreement (its initial
 * payment) is the live payment once one stored it (`storeCardOnApproval`, and migration 022
 * for cards stored again live before that), so one read by primary key tells, however many
 * payments the card or its customer has made.
 */
async function savedOnLiveChannel(ctx: AppContext, stored: PaymentMethodsTable): Promise<boolean> {
  const row = await ctx.database.db
    .selectFrom('payments')
    .innerJoin('channels', 'channels.id', 'payments.channel_id')
    .select('channels.mode')
    .where('payments.id', '=', stored.initial_payment_id)
    .executeTakeFirst();
  return row?.mode === 'live';
}

export async function resolvePaymentMethod(ctx: AppContext, merchantId: string, body: AuthoriseRequestBody, now: number, channelMode: 'sandbox' | 'live'): Promise<ResolvedMethod> {
  const pm = body.payment_method;
  const type = body.payment_data?.payment_type ?? 'cit';
  const requestCustomer = body.customer?.reference || undefined;
  const errors: FieldError[] = [];

  if (pm.type === 'card') {
    const cvc = pm.cvc !== undefined ? { cvc: pm.cvc } : {};
    errors.push(...underPointer('/payment_method', validateCard({ number: pm.number, expiry_month: pm.expiry_month, expiry_year: pm.expiry_year, ...cvc }, new Date(now))));
    // A merchant-initiated payment has nobody to ask for the CVC; its presence is a rule of its own.
    if (pm.cvc === undefined && type === 'cit') errors.push({ pointer: '/payment_method/cvc', code: 'missing_field', message: 'cvc is required for customer-initiated card payments' });
    const storeForFutureUse = pm.store_for_future_use ?? false;
    const data = normalisePaymentData(body.payment_data, storeForFutureUse, { kind: 'card', cvcPresent: pm.cvc !== undefined, customerReference: requestCustomer });
    errors.push(...data.errors);
    return { card: pm, token: null, storedCard: null, customerReference: null, storeForFutureUse, paymentData: data.value, expired: false, errors };
  }

  const stored = await usableStoredCard(ctx, merchantId, pm.token);
  const savedLive = await savedOnLiveChannel(ctx, stored);
  // A card saved through a sandbox channel came in without the compliance gate: never charged live.
  if (channelMode === 'live' && !savedLive) {
    throw new DomainError(
      422,
      'payment_method_not_live',
      `stored card ${stored.id} was saved by a payment on a sandbox channel and cannot be charged on a live channel; store the card with a customer-initiated payment on a live channel`,
      '/payment_method/token',
    );
  }
  // A card a live payment stored is a real cardholder's: its number never goes to the sandbox simulator.
  if (channelMode === 'sandbox' && savedLive) {
    throw new DomainError(
      422,
      'payment_method_live_only',
      `stored card ${stored.id} was saved by a payment on a live channel and is charged on live channels only; test on a sandbox channel with a test card`,
      '/payment_method/token',
    );
  }
  if (requestCustomer !== undefined && requestCustomer !== stored.customer_reference) {
    throw new DomainError(422, 'payment_method_customer_mismatch', `stored card ${stored.id} belongs to another of your customers than customer.reference "${requestCustomer}"`, '/customer/reference');
  }
  if (pm.cvc !== undefined && type === 'cit' && !(/^\d+$/.test(pm.cvc) && pm.cvc.length === cvcLength(stored.brand as CardBrand))) {
    errors.push({ pointer: '/payment_method/cvc', code: 'invalid_cvc', message: `cvc must be exactly ${cvcLength(stored.brand as CardBrand)} digits for ${stored.brand} cards.` });
  }
  const data = normalisePaymentData(body.payment_data, false, { kind: 'token', cvcPresent: pm.cvc !== undefined, customerReference: stored.customer_reference });
  errors.push(...data.errors);
  const pan = ctx.vault.openCard(stored.id, { kek_id: stored.kek_id!, wrapped_dek: stored.wrapped_dek!, pan_ct: stored.pan_ct!, cvc_ct: null });
  const card: CardMethodBody = {
    type: 'card',
    number: pan.pan,
    expiry_month: stored.exp_month,
    expiry_year: stored.exp_year,
    ...(pm.cvc !== undefined ? { cvc: pm.cvc } : {}),
    store_for_future_use: false,
  };
  return {
    card,
    token: stored.id,
    storedCard: stored,
    customerReference: stored.customer_reference,
    storeForFutureUse: false,
    paymentData: data.value,
    expired: cardExpired(stored.exp_month, stored.exp_year, new Date(now)),
    errors,
  };
}

/** What the hosted page that authorised a customer-initiated payment passes for storing its card. */
export interface CardToStore {
  /** The card's number as the page opened it to authorise it. */
  pan: string;
  /** Whether the payment's channel is live, as the page read it (a channel's mode is fixed once it has a payment). */
  live: boolean;
}

/**
 * Called where the acquirer's approval is recorded, in the same transaction: a card
 * asked to be stored is stored only once its payment is approved. The same card for the
 * same customer keeps its token (the keyed fingerprint finds it) and takes the newest
 * expiry, which is how a merchant updates a stored card. Returns the payment's patch.
 * A customer-initiated payment is only ever approved on the hosted page, which passes
 * `card`; merchant-initiated ones (which pass none) never store a card.
 */
export async function storeCardOnApproval(trx: Trx, ctx: AppContext, row: PaymentsTable, networkReference: string, card?: CardToStore): Promise<{ payment_method_id?: string }> {
  if (row.payment_method_id !== null || row.payment_type !== 'cit' || row.customer_reference === null) return {};
  if (!detailsOf(row).store_for_future_use || card === undefined) return {};
  const now = ctx.clock.now();
  const id = ctx.newId('paymentMethod');
  // The CVC stays behind: it is never stored with a card.
  const { kek_id, wrapped_dek, pan_ct } = ctx.vault.sealCard(id, new SensitiveCard(card.pan, undefined));
  const saved = await trx
    .insertInto('payment_methods')
    .values({
      id,
      merchant_id: row.merchant_id,
      customer_reference: row.customer_reference,
      fingerprint: row.card_fingerprint,
      brand: row.card_brand,
      bin: row.card_bin,
      last4: row.card_last4,
      exp_month: row.card_exp_month,
      exp_year: row.card_exp_year,
      kek_id,
      wrapped_dek,
      pan_ct,
      initial_payment_id: row.id,
      initial_network_reference: networkReference,
      created_at: now,
      updated_at: now,
      deleted_at: null,
    })
    .onConflict((oc) =>
      oc
        .columns(['merchant_id', 'customer_reference', 'fingerprint'])
        .where('deleted_at', 'is', null)
        // The later expiry wins: a card presented again with an older (still valid) date
        // must not make the stored one look expired to later merchant-initiated payments.
        // The BIN is the one shown now: a card under 15 digits stored before showed its first 6.
        .doUpdateSet({
          exp_month: sql<number>`case when ${LATER_EXPIRY} then excluded.exp_month else payment_methods.exp_month end`,
          exp_year: sql<number>`case when ${LATER_EXPIRY} then excluded.exp_year else payment_methods.exp_year end`,
          bin: sql<string>`excluded.bin`,
          updated_at: now,
        }),
    )
    .returning(['id', 'initial_payment_id'])
    .executeTakeFirstOrThrow();
  // Its agreement (initial_payment_id, initial_network_reference: what merchants name in their
  // merchant-initiated payments) moves to a live payment that stores again a card first stored
  // through a sandbox one: that one never reached a card scheme, so a live payment may not
  // follow it (initial_payment_not_live) nor carry its network reference to the acquirer. A
  // live agreement is never replaced by a sandbox one.
  if (card.live && saved.initial_payment_id !== row.id && !(await paymentIsLive(trx, saved.initial_payment_id))) {
    await trx.updateTable('payment_methods').set({ initial_payment_id: row.id, initial_network_reference: networkReference }).where('id', '=', saved.id).execute();
  }
  return { payment_method_id: saved.id };
}

/** Whether the payment was made on a live channel. */
async function paymentIsLive(trx: Trx, paymentId: string): Promise<boolean> {
  const initial = await trx
    .selectFrom('payments')
    .innerJoin('channels', 'channels.id', 'payments.channel_id')
    .select('channels.mode')
    .where('payments.id', '=', paymentId)
    .executeTakeFirst();
  return initial?.mode === 'live';
}

/** In an upsert of payment_methods: the presented expiry is after the stored one. */
const LATER_EXPIRY = sql<boolean>`excluded.exp_year * 12 + excluded.exp_month > payment_methods.exp_year * 12 + payment_methods.exp_month`;

/** `livemode`: stored by a live payment (its agreement is on a live channel). */
export function paymentMethodResource(fingerprints: FingerprintView, row: PaymentMethodsTable, now: number, livemode: boolean) {
  return {
    id: row.id,
    object: 'payment_method' as const,
    livemode,
    type: 'card' as const,
    customer_reference: row.customer_reference,
    card: {
      brand: row.brand,
      bin: row.bin,
      last4: row.last4,
      expiry_month: row.exp_month,
      expiry_year: row.exp_year,
      fingerprint: fingerprints.shownFingerprint(row.merchant_id, row.fingerprint),
      expired: cardExpired(row.exp_month, row.exp_year, new Date(now)),
    },
    initial_payment_id: row.initial_payment_id,
    initial_network_reference: row.initial_network_reference,
    created_at: iso(row.created_at)!,
    updated_at: iso(row.updated_at)!,
    deleted: row.deleted_at !== null,
    deleted_at: iso(row.deleted_at),
  };
}

export type PaymentMethodResource = ReturnType<typeof paymentMethodResource>;

/** The mode of the card's agreement (its initial payment's channel): the mode that stored it. */
function agreementMode(eb: ExpressionBuilder<Schema, 'payment_methods'>) {
  return eb
    .selectFrom('payments')
    .innerJoin('channels', 'channels.id', 'payments.channel_id')
    .select('channels.mode')
    .whereRef('payments.id', '=', 'payment_methods.initial_payment_id')
    .as('agreement_mode');
}

/** A merchant's view of its customers' stored cards. */
export class StoredCards {
  constructor(private readonly ctx: AppContext) {}

  /**
   * Another merchant's customer with the same reference is another customer: its cards never
   * show. A key with a mode sees the cards its mode's payments stored (their agreement's channel).
   */
  async list(merchantId: string, customerReference: string, scope: KeyScope = null): Promise<PaymentMethodResource[]> {
    const rows = await this.inScope(
      this.ctx.database.db.selectFrom('payment_methods').selectAll().where('merchant_id', '=', merchantId).where('customer_reference', '=', customerReference).where('deleted_at', 'is', null),
      scope,
    )
      .select(agreementMode)
      .orderBy('id')
      .execute();
    const now = this.ctx.clock.now();
    return rows.map((r) => paymentMethodResource(this.ctx.vault, r, now, r.agreement_mode === 'live'));
  }

  async get(merchantId: string, id: string, scope: KeyScope = null): Promise<PaymentMethodResource> {
    const row = await this.inScope(this.ctx.database.db.selectFrom('payment_methods').selectAll().where('id', '=', id).where('merchant_id', '=', merchantId), scope).select(agreementMode).executeTakeFirst();
    if (!row) throw paymentMethodNotFound(id, '/params/id');
    return paymentMethodResource(this.ctx.vault, row, this.ctx.clock.now(), row.agreement_mode === 'live');
  }

  /**
   * Erases the sealed card number (the wrapped data key with it, so no copy of the
   * ciphertext can be opened either). A payment's own copy lives only while its hosted page
   * is open (eraseCard), which one made with this card may still be. Deleting twice answers
   * like the first time. The erasure is audited with the key that asked (PCI DSS 10.2.1):
   * the card's row keeps no trace of who deleted it. The row names the card (its id, last 4),
   * not its customer: a reference is often an e-mail address, and the audit log outlives the
   * card; the customer is found through the payments made with it (decision 0031).
   */
  async remove(actor: Actor, merchantId: string, id: string, scope: KeyScope = null): Promise<PaymentMethodResource> {
    const now = this.ctx.clock.now();
    const row = await this.ctx.database.transaction(async (trx) => {
      const found = await this.inScope(trx.selectFrom('payment_methods').selectAll().where('id', '=', id).where('merchant_id', '=', merchantId), scope).select(agreementMode).executeTakeFirst();
      if (!found) throw paymentMethodNotFound(id, '/params/id');
      if (found.deleted_at !== null) return found;
      const erased = { kek_id: null, wrapped_dek: null, pan_ct: null, deleted_at: now, updated_at: now };
      await trx.updateTable('payment_methods').set(erased).where('id', '=', id).execute();
      await writeAudit(this.ctx, trx, {
        actor,
        action: 'payment_method.delete',
        merchantId,
        target: id,
        outcome: 'success',
        detail: { card_last4: found.last4 },
      });
      this.ctx.database.shredErased();
      return { ...found, ...erased };
    });
    return paymentMethodResource(this.ctx.vault, row, now, row.agreement_mode === 'live');
  }

  private inScope<Q extends SelectQueryBuilder<Schema, 'payment_methods', PaymentMethodsTable>>(query: Q, scope: KeyScope): Q {
    if (scope === null) return query;
    // The card's own agreement, by primary key: an IN over the mode's payments read them all.
    return query.where((eb) =>
      eb.exists(
        eb
          .selectFrom('payments')
          .innerJoin('channels', 'channels.id', 'payments.channel_id')
          .select('payments.id')
          .whereRef('payments.id', '=', 'payment_methods.initial_payment_id')
          .where('channels.mode', '=', scope),
      ),
    ) as Q;
  }

  /** Re-wraps stored cards' data keys under the active KEK (for the KEK rotation command), `batch` to a transaction. */
  rewrap(batch = 500): Promise<number> {
    const { database, vault } = this.ctx;
    return inKeyBatches(
      database,
      (after) =>
        database.db
          .selectFrom('payment_methods')
          .select(['id', 'kek_id', 'wrapped_dek'])
          .where('id', '>', after)
          .where('kek_id', 'is not', null)
          .where('kek_id', '!=', vault.activeKekId)
          .orderBy('id')
          .limit(batch)
          .execute(),
      (r) => r.id,
      (trx, r) => {
        const next = vault.rewrap(r.id, { kek_id: r.kek_id!, wrapped_dek: r.wrapped_dek! });
        return trx.updateTable('payment_methods').set(next).where('id', '=', r.id).where('kek_id', '=', r.kek_id).execute();
      },
    );
  }
}

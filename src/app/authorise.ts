import { compiledOnce, type RowInsert } from '../adapters/storage/compiled.js';
import { DomainError, type FieldError, ValidationFailed, underPointer } from '../domain/errors.js';
import { bin, detectBrand, last4 } from '../domain/card.js';
import { validateAmount } from '../domain/money.js';
import { type CardNumberFields, cardNumbersInText } from '../domain/card-number-in-text.js';
import { parseCaptureDelay, validateCaptureDelay } from '../domain/capture-delay.js';
import { normaliseDeviceInfo } from '../domain/device-info.js';
import { validateParty } from '../domain/address.js';
import type { ChannelsTable, CheckoutSessionsTable, PaymentsTable } from '../adapters/storage/schema.js';
import { SensitiveCard } from '../adapters/vault/envelope.js';
import type { AuthoriseRequestBody } from '../http/schemas/payment-request.js';
import type { AppContext } from './context.js';
import { eventRow } from './events.js';
import type { Idempotency, StoredResponse } from './idempotency.js';
import { type PaymentDetails, paymentResource } from './payment-resource.js';
import { SANDBOX_RETURN_PATH } from './merchants.js';
import { LookupCache } from './lookup-cache.js';
import { resolvePaymentMethod } from './stored-cards.js';
import { settleWithoutCustomer, settlesWithoutCustomer } from './merchant-initiated.js';
import { ComplianceGate } from './compliance.js';
import { PageTokens } from './page-token.js';
import { type KeyScope, checkChannelMode } from './key-scope.js';

export interface AuthoriseCommand {
  merchantId: string;
  /** The secret key's mode; null for a key made before modes (decision 0028). */
  keyMode: KeyScope;
  body: AuthoriseRequestBody;
  rawBody: string;
  idempotencyKey: string | undefined;
}

/** Optional contact fields arrive as "" in the spec's own example: treat them as absent. */
export function dropEmpty<T>(value: T): T | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  if (typeof value !== 'object' || Array.isArray(value)) return value;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    const cleaned = dropEmpty(v);
    if (cleaned !== undefined) out[k] = cleaned;
  }
  return Object.keys(out).length ? (out as T) : undefined;
}

/**
 * A hosted page for a payment. Its token is a MAC of the payment id (src/app/page-token.ts):
 * the session row holds nothing secret and the URL can be rebuilt from the payment id.
 */
export function newCheckoutSession(ctx: AppContext, paymentId: string, now: number, expiresAt: number): { session: CheckoutSessionsTable; redirectUrl: string } {
  return {
    session: { payment_id: paymentId, state: 'open', challenge_attempts: 0, created_at: now, expires_at: expiresAt },
    redirectUrl: checkoutUrl(ctx.config.publicUrl, PageTokens.of(ctx.config.hmacKey).mint(paymentId)),
  };
}

/**
 * POST /payment/authorise for raw card data. Everything is checked before anything is
 * written; then the payment, its sealed card, its checkout session, its first event
 * and the idempotency record are written as one unit of work that may share its
 * durable commit with concurrent requests.
 */
export class Authorise {
  constructor(
    private readonly ctx: AppContext,
    private readonly idempotency: Idempotency,
  ) {}

  async execute(cmd: AuthoriseCommand): Promise<StoredResponse> {
    return this.idempotency.run(cmd.merchantId, cmd.idempotencyKey, 'POST /payment/authorise', cmd.rawBody, async (record) => {
      const prepared = await this.prepare(cmd);
      // Merchant-initiated payments and expired stored cards finish here, without a hosted page.
      if (settlesWithoutCustomer(prepared)) return settleWithoutCustomer(this.ctx, cmd, prepared, record);
      const { body } = prepared;
      const rows: RowInsert[] = [
        { table: 'payments', row: prepared.payment },
        { table: 'card_secrets', paymentId: prepared.payment.id, card: prepared.card },
        { table: 'checkout_sessions', row: prepared.session },
        { table: 'events', row: prepared.event },
      ];
      const stored = record.row(201, body);
      if (stored) rows.push(stored);
      await this.ctx.database.insert(rows);
      return { status: 201, body };
    }, cmd.keyMode);
  }

  private async channelFor(merchantId: string, reference: string): Promise<ChannelsTable> {
    // Another merchant's channel is not found, exactly like a missing one.
    const row = await LookupCache.of(this.ctx).channel(merchantId, reference, channelByReference);
    if (!row) {
      throw new DomainError(404, 'channel_not_found', `no channel "${reference}" exists for this secret key's merchant`, '/channel');
    }
    return row;
  }

  private async prepare(cmd: AuthoriseCommand) {
    const { body } = cmd;
    // Before anything that could quote a value back (an unknown channel, a customer mismatch).
    const cardNumbers = cardNumbersInText(body, NOT_FREE_TEXT);
    if (cardNumbers.length) throw new ValidationFailed(cardNumbers);
    const now = this.ctx.clock.now();
    const channel = await this.channelFor(cmd.merchantId, body.channel);
    // The cached channel's mode against the cached key's: no read of its own.
    checkChannelMode(cmd.keyMode, channel);
    // From memory once cached: the payment's event is decided from them (src/app/event-interest.ts).
    await LookupCache.of(this.ctx).keepEndpoints(cmd.merchantId);
    // PCI DSS gate (seed step 1): raw card data on a live channel needs a current compliance
    // approval; a stored card's token with a fresh CVC is card data the merchant handled too.
    const cardData = body.payment_method.type === 'card' || body.payment_method.cvc !== undefined;
    await ComplianceGate.of(this.ctx).check(cmd.merchantId, channel.mode, cardData ? 'card' : body.payment_method.type);
    const errors: FieldError[] = validateAmount(body.amount, body.currency);
    const currencies = JSON.parse(channel.currencies) as string[];
    if (errors.length === 0 && !currencies.includes(body.currency)) {
      throw new DomainError(422, 'currency_not_allowed', `currency ${body.currency} is not enabled on channel "${channel.reference}" (enabled: ${currencies.join(', ')})`, '/currency');
    }

    // A raw card or a stored token (src/app/stored-cards.ts), with the credential-on-file rules checked.
    const method = await resolvePaymentMethod(this.ctx, cmd.merchantId, body, now, channel.mode);
    errors.push(...method.errors);
    const pm = method.card;
    const storeForFutureUse = method.storeForFutureUse;
    const paymentData = method.paymentData;

    let deviceInfo: Record<string, unknown> | undefined;
    if (body.device_info) {
      const d = normaliseDeviceInfo(body.device_info as Record<string, unknown>);
      errors.push(...underPointer('/device_info', d.errors));
      deviceInfo = d.value as Record<string, unknown> | undefined;
    } else if (paymentData.payment_type === 'cit') {
      errors.push({ pointer: '/device_info', code: 'missing_field', message: 'device_info is required for customer-initiated payments (3-D Secure needs the browser or app data)' });
    }

    const captureMode = body.capture ?? 'auto';
    let captureDelayMs: number | null = null;
    if (body.capture_delay !== undefined && body.capture_delay !== '') {
      if (captureMode !== 'auto') {
        errors.push({ pointer: '/capture_delay', code: 'capture_delay_requires_auto', message: 'capture_delay applies to capture "auto" only; with "manual" you capture with POST /payment/{id}/capture' });
      } else {
        const e = validateCaptureDelay(body.capture_delay, this.ctx.config.authorisationValidityMs);
        errors.push(...e);
        if (e.length === 0) captureDelayMs = parseCaptureDelay(body.capture_delay);
      }
    }

    const customer = withCustomerReference(dropEmpty(body.customer), method.customerReference);
    const billing = dropEmpty(body.billing_details);
    const shipping = dropEmpty(body.shipping_details);
    if (customer) errors.push(...validateParty({ ...(customer.email ? { email: customer.email } : {}) }, '/customer'));
    if (billing) errors.push(...validateParty(billing, '/billing_details'));
    if (shipping) errors.push(...validateParty(shipping, '/shipping_details'));

    const returnUrls = JSON.parse(channel.return_urls) as string[];
    const returnUrl = body.return_url ?? returnUrls[0]!;
    if (!returnUrls.some((u) => u === returnUrl || resolveReturnUrl(this.ctx.config.publicUrl, u) === returnUrl)) {
      errors.push({ pointer: '/return_url', code: 'return_url_not_registered', message: `return_url must be one of the channel's registered return URLs: ${returnUrls.join(', ')}` });
    }
    if (errors.length) throw new ValidationFailed(errors);

    const brand = detectBrand(pm.number)!;
    const id = this.ctx.newId('payment');
    const cardName = dropEmpty(pm.name);
    const details: PaymentDetails = {
      payment_data: paymentData,
      store_for_future_use: storeForFutureUse,
      return_url: resolveReturnUrl(this.ctx.config.publicUrl, returnUrl),
      ...(customer ? { customer } : {}),
      ...(billing ? { billing_details: billing } : {}),
      ...(shipping ? { shipping_details: shipping } : {}),
      ...(body.metadata ? { metadata: body.metadata } : {}),
      ...(deviceInfo ? { device_info: deviceInfo } : {}),
      ...(cardName ? { card_name: cardName } : {}),
      ...(captureDelayMs !== null ? { capture_delay: body.capture_delay! } : {}),
    };
    const expiresAt = now + this.ctx.config.hostedPageTtlMs;
    const payment: PaymentsTable = {
      id,
      merchant_id: cmd.merchantId,
      channel_id: channel.id,
      status: 'requires_action',
      amount: body.amount,
      currency: body.currency,
      captured_amount: 0,
      refunded_amount: 0,
      reference: body.reference ?? null,
      customer_reference: customer?.reference ?? null,
      payment_type: paymentData.payment_type,
      capture_mode: captureMode,
      capture_delay_ms: captureDelayMs,
      capture_at: null,
      card_brand: brand,
      card_bin: bin(pm.number),
      card_last4: last4(pm.number),
      card_exp_month: pm.expiry_month,
      card_exp_year: pm.expiry_year,
      card_fingerprint: this.ctx.vault.fingerprint(pm.number),
      payment_method_id: method.token,
      decline_code: null,
      failure_message: null,
      authorisation_code: null,
      network_reference: null,
      details: JSON.stringify(details),
      sequence: 1,
      version: 1,
      created_at: now,
      updated_at: now,
      authorised_at: null,
      expires_at: expiresAt,
    };
    // Sealed as it is written (Database.insert): on SQLite beside the event loop.
    const card = new SensitiveCard(pm.number, pm.cvc);
    const { session, redirectUrl } = newCheckoutSession(this.ctx, id, now, expiresAt);
    const resource = paymentResource(this.ctx.vault, payment, channel, details, redirectUrl);
    const event = eventRow(this.ctx, payment, 'payment.created', resource, now);
    return { payment, card, session, event, body: JSON.stringify(resource), method };
  }
}

/**
 * A stored card's payment belongs to the card's customer (it is listed under that
 * reference) even when the request names no customer: the resource says so too.
 */
function withCustomerReference<T extends { reference?: string }>(customer: T | undefined, reference: string | null): T | undefined {
  if (reference === null || customer?.reference !== undefined) return customer;
  return { reference, ...customer } as T;
}

/**
 * What the free-text scan leaves out: the card number's own field (sealed, never stored in
 * clear), identifiers we or the scheme issued (a stored card's token, an earlier payment's
 * network reference, which is digits a scheme could have made), and the device data the
 * browser or the 3DS SDK produced (bounded formats; the SDK's JWE alone is up to 64,000
 * characters). An earlier payment's id is looked at: a customer-initiated payment keeps it as
 * sent, whatever it is, and one of ours (`pay_` and hex) never reads as a card number.
 */
const NOT_FREE_TEXT: CardNumberFields = {
  payment_method: { number: true, token: true },
  payment_data: { previous_network_reference: true },
  device_info: true,
};

/** Every authorisation needs its channel: the SQL is compiled once, the row cached (src/app/lookup-cache.ts). */
const channelByReference = compiledOnce((db, reference: string, merchantId: string) => db.selectFrom('channels').selectAll().where('reference', '=', reference).where('merchant_id', '=', merchantId));

export function checkoutUrl(publicUrl: string, token: string): string {
  return `${publicUrl}/pay/${token}`;
}

export function resolveReturnUrl(publicUrl: string, url: string): string {
  return url === SANDBOX_RETURN_PATH ? publicUrl + url : url;
}

import assert from 'node:assert/strict';
import type { LightMyRequestResponse } from 'fastify';
import { exampleBody, type TestGateway } from '../support/gateway.js';
import { EVENT_READ_COLUMNS, eventBody } from '../../src/app/events.js';

export type Json = Record<string, any>;

export function json(res: LightMyRequestResponse): Json {
  return JSON.parse(res.body) as Json;
}

export function pageToken(redirectUrl: string): string {
  return new URL(redirectUrl).pathname.split('/').pop()!;
}

export interface CitOptions {
  number?: string;
  expiry_month?: number;
  expiry_year?: number;
  /** null: a payment for no customer reference. */
  customer?: string | null;
  store?: boolean;
  payment_data?: Json;
  key?: string;
  channel?: string;
}

/** A customer-initiated card payment: created, then finished on the hosted page as the customer would. */
export async function payByCard(t: TestGateway, o: CitOptions = {}): Promise<Json> {
  const body = await exampleBody({ channel: o.channel ?? 'sandbox', customer: o.customer === null ? undefined : { reference: o.customer ?? 'cust-1' } });
  body.payment_method = {
    type: 'card',
    number: o.number ?? '4242424242424242',
    expiry_month: o.expiry_month ?? 12,
    expiry_year: o.expiry_year ?? 2077,
    cvc: '123',
    store_for_future_use: o.store ?? true,
  };
  body.payment_data = o.payment_data ?? { payment_type: 'cit', payment_sub_type: 'recurring-initial', credential_on_file: true };
  const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: body, headers: o.key ? { 'x-secret-key': o.key } : {} });
  assert.equal(res.statusCode, 201, res.body);
  const created = json(res);
  assert.equal(created.status, 'requires_action');
  await t.gateway.services.checkout.complete(pageToken(created.redirect_url));
  return getPayment(t, created.id, o.key);
}

export async function getPayment(t: TestGateway, id: string, key?: string): Promise<Json> {
  const res = await t.request({ method: 'GET', url: `/payment/${id}`, headers: key ? { 'x-secret-key': key } : {} });
  assert.equal(res.statusCode, 200, res.body);
  return json(res);
}

export interface MitOptions {
  token?: string;
  method?: Json;
  previous_payment_id?: string;
  previous_network_reference?: string;
  sub_type?: string;
  industry_usage?: string;
  key?: string;
  channel?: string;
  idempotencyKey?: string;
  amount?: number;
  currency?: string;
  /** customer.reference to send; none by default. */
  customer?: string;
  capture?: 'auto' | 'manual';
}

/** POST /payment/authorise for a merchant-initiated payment (no customer present). */
export async function mit(t: TestGateway, o: MitOptions): Promise<LightMyRequestResponse> {
  const body = await exampleBody({ channel: o.channel ?? 'sandbox', amount: o.amount ?? 2500, currency: o.currency ?? 'USD' });
  delete body.device_info;
  // The stored card knows its customer; the example's "abc123" would be another one.
  delete body.customer;
  if (o.customer !== undefined) body.customer = { reference: o.customer };
  if (o.capture !== undefined) body.capture = o.capture;
  body.payment_method = o.method ?? { type: 'token', token: o.token };
  body.payment_data = {
    payment_type: 'mit',
    payment_sub_type: o.sub_type ?? 'recurring-subsequent',
    ...(o.industry_usage ? { industry_usage: o.industry_usage } : {}),
    ...(o.previous_payment_id ? { previous_payment_id: o.previous_payment_id } : {}),
    ...(o.previous_network_reference ? { previous_network_reference: o.previous_network_reference } : {}),
  };
  const headers: Record<string, string> = {};
  if (o.key) headers['x-secret-key'] = o.key;
  if (o.idempotencyKey) headers['idempotency-key'] = o.idempotencyKey;
  return t.request({ method: 'POST', url: '/payment/authorise', payload: body, headers });
}

/** A second merchant with its own channel and key, to prove stored cards never cross merchants. */
/** Another merchant with a sandbox channel of its own; `channel` tells two of them apart in one gateway. */
export async function otherMerchant(t: TestGateway, channel = 'other-shop'): Promise<{ key: string; channel: string }> {
  const m = t.gateway.services.merchants;
  const merchant = await m.createMerchant('Other shop');
  await m.createChannel(merchant.id, { reference: channel, name: 'Other shop', mode: 'sandbox', currencies: ['USD'], returnUrls: ['/sandbox/return'], notifyEmails: [] });
  const key = await m.createSecretKey(merchant.id, 'other');
  return { key: key.secret_key, channel };
}

export async function eventsOf(t: TestGateway, paymentId: string): Promise<Json[]> {
  const rows = await t.gateway.services.ctx.database.db
    .selectFrom('events')
    .leftJoin('payments', 'payments.id', 'events.payment_id')
    .leftJoin('channels', 'channels.id', 'events.channel_id')
    .select(EVENT_READ_COLUMNS)
    .where('events.payment_id', '=', paymentId)
    .orderBy('events.sequence')
    .execute();
  return rows.map((r) => JSON.parse(eventBody(r)) as Json);
}

export function expectProblem(res: LightMyRequestResponse, status: number, code: string): Json {
  assert.equal(res.statusCode, status, res.body);
  const body = json(res);
  assert.equal(body.code, code, res.body);
  return body;
}

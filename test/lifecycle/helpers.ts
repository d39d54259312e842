import assert from 'node:assert/strict';
import pino from 'pino';
import { createGateway, type Gateway } from '../../src/server.js';
import type { Acquirer, CaptureRequest, SimpleResult } from '../../src/ports/acquirer.js';
import { exampleBody, type TestGateway } from '../support/gateway.js';

export const VISA = '4242424242424242';
export const CAPTURE_FAILS = '4000000000000259';
export const REFUND_FAILS = '4000000000005126';

export interface PaymentJson {
  id: string;
  status: string;
  amount: number;
  amount_captured: number;
  amount_refunded: number;
  capture_at: string | null;
  expires_at: string | null;
  failure_message: string | null;
  network_reference: string | null;
  sequence: number;
}

/** Authorise through the API and finish the hosted page as the customer would. */
export async function authorisedPayment(t: TestGateway, overrides: Record<string, unknown> = {}): Promise<PaymentJson> {
  const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ capture: 'manual', ...overrides }) });
  assert.equal(res.statusCode, 201, res.body);
  const created = res.json() as PaymentJson & { redirect_url: string };
  const token = created.redirect_url.split('/').pop()!;
  await t.gateway.services.checkout.complete(token);
  return getPayment(t, created.id);
}

export async function getPayment(t: TestGateway, id: string, gateway: Gateway = t.gateway): Promise<PaymentJson> {
  const res = await gateway.app.inject({ method: 'GET', url: `/payment/${id}`, headers: { 'x-secret-key': t.credentials.secret_key } });
  assert.equal(res.statusCode, 200, res.body);
  return res.json() as PaymentJson;
}

export function post(t: TestGateway, url: string, payload?: unknown, headers: Record<string, string> = {}) {
  return t.request({ method: 'POST', url, headers, ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }) });
}

/** The event types of a payment in the order they were recorded. */
export async function eventTypes(t: TestGateway, paymentId: string, gateway: Gateway = t.gateway): Promise<string[]> {
  const rows = await gateway.services.ctx.database.db.selectFrom('events').select(['type']).where('payment_id', '=', paymentId).orderBy('sequence').orderBy('id').execute();
  return rows.map((r) => r.type);
}

export interface CountingAcquirer extends Acquirer {
  calls: Array<{ op: 'capture' | 'void' | 'refund'; paymentId: string; amount: number }>;
  count(op: 'capture' | 'void' | 'refund', paymentId: string): number;
}

/**
 * Wraps the gateway's acquirer to count money-moving calls, and makes each one yield
 * to the event loop a few times so concurrent requests really overlap with it.
 */
export function countAcquirerCalls(gateways: Gateway[], calls: CountingAcquirer['calls'] = []): CountingAcquirer {
  const inner = gateways[0]!.services.ctx.acquirer;
  const slow = async <T>(op: 'capture' | 'void' | 'refund', req: CaptureRequest, call: () => Promise<T>): Promise<T> => {
    calls.push({ op, paymentId: req.paymentId, amount: req.amount });
    for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
    return call();
  };
  const counting: CountingAcquirer = {
    name: inner.name,
    authenticationFlow: (card) => inner.authenticationFlow(card),
    verifyChallenge: (card, answer) => inner.verifyChallenge(card, answer),
    authorise: (req) => inner.authorise(req),
    capture: (req): Promise<SimpleResult> => slow('capture', req, () => inner.capture(req)),
    void: (req): Promise<SimpleResult> => slow('void', req, () => inner.void(req)),
    refund: (req): Promise<SimpleResult> => slow('refund', req, () => inner.refund(req)),
    calls,
    count: (op, paymentId) => calls.filter((c) => c.op === op && c.paymentId === paymentId).length,
  };
  for (const g of gateways) g.services.ctx.acquirer = counting;
  return counting;
}

/**
 * Stops the test gateway and opens a new one on the same data directory or database,
 * as a process restart would. The caller closes the returned gateway before t.close().
 */
export async function restart(t: TestGateway): Promise<Gateway> {
  await t.gateway.close();
  t.gateway.close = async () => {};
  return createGateway(t.config, pino({ level: 'silent' }), { clock: t.clock });
}

/** A second process on the same database (PostgreSQL), with its own pool. */
export function secondGateway(t: TestGateway): Promise<Gateway> {
  return createGateway(t.config, pino({ level: 'silent' }), { clock: t.clock });
}

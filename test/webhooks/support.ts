import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { exampleBody, type TestGateway } from '../support/gateway.js';

/** A merchant's callback receiver on 127.0.0.1: verifies like a merchant would, counts, and misbehaves on request. */
export type ReceiverMode = 'ok' | 'fail' | 'hang' | 'gone' | 'busy';

export interface Received {
  id: string;
  timestamp: string;
  signature: string;
  body: string;
  type: string;
  payload: { id: string; type: string; sequence: number; created_at: string; data: { object: Record<string, unknown> & { id: string; status: string } } };
  /** For each secret the receiver knows, whether `Webhook.verify` accepted the message with it alone. */
  validWith: boolean[];
}

export class Receiver {
  mode: ReceiverMode = 'ok';
  /** Every request that reached the receiver, whatever it answered. */
  requests = 0;
  /** Messages answered 2xx after a valid signature. */
  readonly received: Received[] = [];
  readonly invalid: string[] = [];
  private server: Server | null = null;
  private readonly hanging = new Set<ServerResponse>();
  port = 0;

  constructor(public secrets: string[] = []) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/hooks`;
  }

  get hangingCount(): number {
    return this.hanging.size;
  }

  async start(port = 0): Promise<this> {
    const server = createServer((req, res) => void this.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  /** Answers every request held so far with `status`, as a receiver that was slow and then failed (or answered `body`). */
  answerHanging(status: number, body: string | Buffer = 'receiver failing on purpose'): void {
    for (const res of this.hanging) res.writeHead(status).end(body);
    this.hanging.clear();
  }

  /** Stop listening (connections are refused) but keep the counts. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    for (const res of this.hanging) res.destroy();
    this.hanging.clear();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  ids(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const r of this.received) counts.set(r.id, (counts.get(r.id) ?? 0) + 1);
    return counts;
  }

  forPayment(paymentId: string): Received[] {
    return this.received.filter((r) => r.payload.data.object.id === paymentId);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests++;
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    if (this.mode === 'hang') {
      this.hanging.add(res);
      res.on('close', () => this.hanging.delete(res));
      return;
    }
    if (this.mode === 'fail') return void res.writeHead(500).end('receiver failing on purpose');
    if (this.mode === 'gone') return void res.writeHead(410).end('gone');
    if (this.mode === 'busy') return void res.writeHead(429, { 'retry-after': '3600' }).end('come back in an hour');
    const headers = { 'webhook-id': String(req.headers['webhook-id']), 'webhook-timestamp': String(req.headers['webhook-timestamp']), 'webhook-signature': String(req.headers['webhook-signature']) };
    const validWith = this.secrets.map((secret) => {
      try {
        new Webhook(secret).verify(body, headers);
        return true;
      } catch {
        return false;
      }
    });
    if (!validWith.some(Boolean)) {
      this.invalid.push(headers['webhook-id']);
      return void res.writeHead(400).end('bad signature');
    }
    const payload = JSON.parse(body) as Received['payload'];
    this.received.push({ id: headers['webhook-id'], timestamp: headers['webhook-timestamp'], signature: headers['webhook-signature'], body, type: payload.type, payload, validWith });
    res.writeHead(200, { 'content-type': 'text/plain' }).end('ok');
  }
}

/** Polls until `check` holds; fails with `what` after the deadline. */
export async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export async function registerEndpoint(t: TestGateway, url: string, extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
  const res = await t.request({ method: 'POST', url: '/webhook-endpoints', payload: { url, events: ['*'], ...extra }, headers });
  assert.equal(res.statusCode, 201, res.body);
  return res.json() as { id: string; secret: string; status: string; url: string };
}

/** A sandbox payment driven through the checkout use case: created, authorised and captured (auto capture). */
export async function paidPayment(t: TestGateway, overrides: Record<string, unknown> = {}): Promise<string> {
  const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody(overrides) });
  assert.equal(res.statusCode, 201, res.body);
  const payment = res.json() as { id: string; redirect_url: string };
  const token = new URL(payment.redirect_url).pathname.split('/').pop()!;
  await t.gateway.services.checkout.complete(token);
  t.gateway.services.outbox.notify();
  return payment.id;
}

/** Advance the manual clock and wake the dispatcher, as time passing would. */
export function advance(t: TestGateway, ms: number): void {
  t.clock.advance(ms);
  t.gateway.services.outbox.notify();
}

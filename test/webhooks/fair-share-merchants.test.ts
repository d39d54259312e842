import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { after, afterEach, before, describe, it } from 'node:test';
import { DIALECTS, type Dialect, startTestGateway, type TestGateway } from '../support/gateway.js';
import { authoriseExampleOn, createMerchant } from '../support/http.js';
import { advance, paidPayment, Receiver, registerEndpoint, waitFor } from './support.js';

/**
 * Few slots and long timeouts: what hangs keeps hanging for the whole test, so a callback
 * that arrives did so beside it, not after it timed out.
 */
const CONCURRENCY = 8;
const HANG_MS = '60000';
/** Generous: a healthy callback with a free slot arrives in milliseconds. */
const ARRIVES_WITHIN_MS = 15_000;

/** Waits until `count` is above zero and stays the same for a while. */
async function settled(what: string, count: () => number): Promise<void> {
  let seen = -1;
  await waitFor(`${what} to settle`, async () => {
    const now = count();
    if (now > 0 && now === seen) return true;
    seen = now;
    await new Promise((r) => setTimeout(r, 300));
    return false;
  });
}

/** Another merchant with a healthy endpoint that takes payment.created; `pay()` makes one of its payments. */
async function healthyMerchant(t: TestGateway, reference: string) {
  const receiver = await new Receiver().start();
  const m = await createMerchant(t, reference);
  const headers = { 'x-secret-key': m.key.secret_key };
  const endpoint = await registerEndpoint(t, receiver.url, { events: ['payment.created'] }, headers);
  receiver.secrets = [endpoint.secret];
  return {
    receiver,
    pay: async () => ((await authoriseExampleOn(t.app, m.key.secret_key, m.channel.reference)).json() as { id: string }).id,
    /** Endpoints of this merchant: they take every event, and `url` hangs. */
    hangingEndpoints: async (url: string, n: number) => {
      for (let i = 0; i < n; i++) await registerEndpoint(t, `${url}?${reference}-${i}`, {}, headers);
    },
  };
}

for (const dialect of DIALECTS) {
  describe(`merchants' hanging endpoints share the slots with other merchants (${dialect})`, () => {
    let t: TestGateway | null = null;
    const receivers: Receiver[] = [];

    async function gateway(d: Dialect): Promise<TestGateway> {
      t = await startTestGateway({ dialect: d, workers: true, env: { DISPATCH_POLL_MS: '50', WEBHOOK_TIMEOUT_MS: HANG_MS, DISPATCH_CONCURRENCY: String(CONCURRENCY) } });
      return t;
    }
    async function receiver(): Promise<Receiver> {
      const r = await new Receiver().start();
      receivers.push(r);
      return r;
    }
    afterEach(async () => {
      // The hanging requests are cut first, so the dispatcher's stop has nothing to wait for.
      await Promise.all(receivers.splice(0).map((r) => r.stop()));
      await t?.close();
      t = null;
    });

    /** Payments of the sandbox merchant, until `stuck` holds all the requests it is going to. */
    async function backlogHangs(t: TestGateway, stuck: Receiver): Promise<void> {
      for (let i = 0; i < 4; i++) await paidPayment(t, { reference: `backlog-${i}` });
      await settled('the hanging requests', () => stuck.hangingCount);
    }

    it("a merchant's four endpoints that never answer leave room for another merchant's callback", async () => {
      const t = await gateway(dialect);
      const stuck = await receiver();
      stuck.mode = 'hang';
      for (let i = 0; i < 4; i++) await registerEndpoint(t, `${stuck.url}?a-${i}`);
      const b = await healthyMerchant(t, 'healthy-b');
      receivers.push(b.receiver);
      await backlogHangs(t, stuck);

      const paymentId = await b.pay();
      await waitFor("merchant B's payment.created", () => b.receiver.forPayment(paymentId).length === 1, ARRIVES_WITHIN_MS);
      assert.ok(stuck.hangingCount > 0 && stuck.hangingCount < CONCURRENCY, `requests hanging: ${stuck.hangingCount}`);
      assert.equal(b.receiver.invalid.length, 0);
    });

    it("two merchants' hanging endpoints together leave room for a third merchant's callback", async () => {
      const t = await gateway(dialect);
      const stuck = await receiver();
      stuck.mode = 'hang';
      for (let i = 0; i < 2; i++) await registerEndpoint(t, `${stuck.url}?a-${i}`);
      const other = await healthyMerchant(t, 'hanging-c');
      receivers.push(other.receiver);
      await other.hangingEndpoints(stuck.url, 2);
      const b = await healthyMerchant(t, 'healthy-b');
      receivers.push(b.receiver);
      // Merchant C's hanging endpoints take every event: its payments add to the backlog.
      for (let i = 0; i < 4; i++) await other.pay();
      await backlogHangs(t, stuck);

      const paymentId = await b.pay();
      await waitFor("merchant B's payment.created", () => b.receiver.forPayment(paymentId).length === 1, ARRIVES_WITHIN_MS);
      assert.ok(stuck.hangingCount < CONCURRENCY, `requests hanging: ${stuck.hangingCount}`);
    });

    it("leases another merchant's retry ahead of a hanging merchant's older backlog", async () => {
      const t = await gateway(dialect);
      const stuck = await receiver();
      stuck.mode = 'hang';
      for (let i = 0; i < 4; i++) await registerEndpoint(t, `${stuck.url}?a-${i}`);
      const b = await healthyMerchant(t, 'healthy-b');
      receivers.push(b.receiver);
      b.receiver.mode = 'fail';
      const paymentId = await b.pay();
      await waitFor("the failed first attempt of B's callback", () => b.receiver.requests === 1);
      await backlogHangs(t, stuck);

      // The retry falls due after the backlog: only a claim can lease it, not a fan-out.
      b.receiver.mode = 'ok';
      advance(t, 31_000);
      await waitFor("merchant B's payment.created, tried again", () => b.receiver.forPayment(paymentId).length === 1, ARRIVES_WITHIN_MS);
      assert.ok(stuck.hangingCount < CONCURRENCY, `requests hanging: ${stuck.hangingCount}`);
    });

    it("a merchant's four hanging endpoints leave room for its fifth, healthy one", async () => {
      const t = await gateway(dialect);
      const stuck = await receiver();
      const healthy = await receiver();
      stuck.mode = 'hang';
      for (let i = 0; i < 4; i++) await registerEndpoint(t, `${stuck.url}?a-${i}`);
      await backlogHangs(t, stuck);
      const endpoint = await registerEndpoint(t, healthy.url, { events: ['payment.created'] });
      healthy.secrets = [endpoint.secret];

      const paymentId = await paidPayment(t, { reference: 'sibling' });
      await waitFor('the healthy endpoint', () => healthy.forPayment(paymentId).length === 1, ARRIVES_WITHIN_MS);
      assert.ok(stuck.hangingCount < CONCURRENCY, `requests hanging: ${stuck.hangingCount}`);
    });
  });

  describe(`a mail server that never greets shares the slots with callbacks (${dialect})`, () => {
    let t: TestGateway;
    let smtp: Server;
    const sockets = new Set<Socket>();
    let b: Awaited<ReturnType<typeof healthyMerchant>>;

    before(async () => {
      // Accepts the connection and says nothing, for longer than the test lasts.
      smtp = createServer((s) => {
        sockets.add(s);
        s.on('error', () => {});
      });
      await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
      const smtpUrl = `smtp://127.0.0.1:${(smtp.address() as AddressInfo).port}?greetingTimeout=${HANG_MS}`;
      t = await startTestGateway({ dialect, workers: true, env: { DISPATCH_POLL_MS: '50', DISPATCH_CONCURRENCY: String(CONCURRENCY), SMTP_URL: smtpUrl } });
      await t.gateway.services.merchants.updateChannel('sandbox', { notifyEmails: ['a@shop.test', 'b@shop.test', 'c@shop.test'], notifyEvents: ['*'] });
      b = await healthyMerchant(t, 'healthy-b');
    });
    after(async () => {
      for (const s of sockets) s.destroy();
      smtp.close();
      await b.receiver.stop();
      await t.close();
    });

    it("does not hold back another merchant's callback behind its e-mails", async () => {
      // Twelve events, three addresses: 36 e-mails, more than every slot.
      for (let i = 0; i < 4; i++) await paidPayment(t, { reference: `mail-${i}` });
      await settled('connections to the silent mail server', () => sockets.size);

      const paymentId = await b.pay();
      await waitFor("merchant B's payment.created", () => b.receiver.forPayment(paymentId).length === 1, ARRIVES_WITHIN_MS);
      assert.ok([...sockets].filter((s) => !s.destroyed).length < CONCURRENCY, 'the mail server holds some slots, not all');
    });
  });
}

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sql } from 'kysely';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { advance, paidPayment, Receiver, type ReceiverMode, registerEndpoint, waitFor } from './support.js';

const HOUR = 3_600_000;

interface EventWithDeliveries {
  id: string;
  type: string;
  deliveries: Array<{
    endpoint_id: string | null;
    kind: string;
    status: string;
    attempt_count: number;
    last_error: string | null;
    created_at: string;
    next_attempt_at: string | null;
    attempts: Array<{ at: string; status_code: number | null; error: string | null; succeeded: boolean; duration_ms: number; response_body: string | null }>;
  }>;
}

async function eventsOf(t: TestGateway, paymentId: string): Promise<Array<{ id: string; type: string; sequence: number }>> {
  const res = await t.request({ method: 'GET', url: `/events?payment=${paymentId}` });
  assert.equal(res.statusCode, 200, res.body);
  return (res.json() as { data: Array<{ id: string; type: string; sequence: number }> }).data;
}

async function eventDetail(t: TestGateway, id: string): Promise<EventWithDeliveries> {
  const res = await t.request({ method: 'GET', url: `/events/${id}` });
  assert.equal(res.statusCode, 200, res.body);
  return res.json() as EventWithDeliveries;
}

for (const dialect of DIALECTS) {
  describe(`webhook delivery (${dialect})`, () => {
    let t: TestGateway;
    const receivers: Receiver[] = [];
    const receiver = async (secrets: string[] = []) => {
      const r = await new Receiver(secrets).start();
      receivers.push(r);
      return r;
    };

    before(async () => {
      t = await startTestGateway({ dialect, workers: true, env: { DISPATCH_POLL_MS: '50', WEBHOOK_TIMEOUT_MS: '60000' } });
    });
    /** A receiver answering as `mode` says, subscribed to payment.captured, and the delivery of one such event to it. */
    const capturedDeliveryTo = async (mode: ReceiverMode) => {
      const r = await receiver();
      r.mode = mode;
      const endpoint = await registerEndpoint(t, r.url, { events: ['payment.captured'] });
      const paymentId = await paidPayment(t);
      const [captured] = (await eventsOf(t, paymentId)).filter((e) => e.type === 'payment.captured');
      const delivery = async () => (await eventDetail(t, captured!.id)).deliveries.find((d) => d.endpoint_id === endpoint.id);
      return { r, endpoint, delivery };
    };
    after(async () => {
      await Promise.all(receivers.map((r) => r.stop()));
      await t.close();
    });

    it('delivers payment.created, authorised and captured, signed and verifiable with standardwebhooks', async () => {
      const r = await receiver();
      const endpoint = await registerEndpoint(t, r.url);
      assert.match(endpoint.secret, /^whsec_[A-Za-z0-9+/]+=*$/);
      r.secrets = [endpoint.secret];
      const paymentId = await paidPayment(t);
      await waitFor('three events for the payment', () => r.forPayment(paymentId).length >= 3);
      const got = r.forPayment(paymentId).sort((a, b) => a.payload.sequence - b.payload.sequence);
      assert.deepEqual(got.map((g) => g.type), ['payment.created', 'payment.authorised', 'payment.captured']);
      assert.deepEqual(got.map((g) => g.payload.data.object.status), ['requires_action', 'authorised', 'captured']);
      assert.deepEqual(got.map((g) => g.payload.sequence), [1, 2, 3]);
      assert.equal(r.invalid.length, 0);
      for (const g of got) {
        assert.equal(g.id, g.payload.id, 'webhook-id is the event id');
        assert.match(g.signature, /^v1,[A-Za-z0-9+/]+=*$/);
        assert.ok(!g.body.includes('4242424242424242'), 'no PAN in a callback');
      }
      // The delivered bytes are the event as the API shows it.
      const recorded = await eventsOf(t, paymentId);
      assert.deepEqual(new Set(recorded.map((e) => e.id)), new Set(got.map((g) => g.id)));
      const captured = got.find((g) => g.type === 'payment.captured')!;
      await waitFor('the delivery to be recorded as succeeded', async () => (await eventDetail(t, captured.id)).deliveries.some((d) => d.status === 'succeeded'));
      const detail = await eventDetail(t, captured.id);
      const delivery = detail.deliveries.find((d) => d.endpoint_id === endpoint.id)!;
      assert.equal(delivery.attempts.length, 1);
      assert.equal(delivery.attempts[0]!.status_code, 200);
      assert.equal(delivery.attempts[0]!.succeeded, true);
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.id}` });
    });

    it('retries after the receiver was down, once it is back', async () => {
      const r = await receiver();
      const port = r.port;
      await r.stop();
      const endpoint = await registerEndpoint(t, r.url, { events: ['payment.captured'] });
      r.secrets = [endpoint.secret];
      const paymentId = await paidPayment(t);
      const [captured] = (await eventsOf(t, paymentId)).filter((e) => e.type === 'payment.captured');
      await waitFor('a failed first attempt', async () => {
        const d = (await eventDetail(t, captured!.id)).deliveries.find((x) => x.endpoint_id === endpoint.id);
        return (d?.attempts.length ?? 0) >= 1;
      });
      const failed = (await eventDetail(t, captured!.id)).deliveries.find((x) => x.endpoint_id === endpoint.id)!;
      assert.equal(failed.status, 'pending');
      assert.equal(failed.attempts[0]!.succeeded, false);
      assert.equal(failed.attempts[0]!.status_code, null);
      assert.match(failed.attempts[0]!.error ?? '', /ECONNREFUSED/);
      assert.equal(r.received.length, 0);

      await r.start(port);
      advance(t, HOUR);
      await waitFor('the event after the receiver came back', () => r.forPayment(paymentId).length === 1);
      assert.equal(r.received[0]!.id, captured!.id);
      await waitFor('the retry to be recorded', async () => (await eventDetail(t, captured!.id)).deliveries.find((x) => x.endpoint_id === endpoint.id)!.status === 'succeeded');
      const done = (await eventDetail(t, captured!.id)).deliveries.find((x) => x.endpoint_id === endpoint.id)!;
      assert.deepEqual(done.attempts.map((a) => a.succeeded), [false, true]);
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.id}` });
    });

    it('keeps delivering to a healthy endpoint while another one hangs', async () => {
      const stuck = await receiver();
      const healthy = await receiver();
      stuck.mode = 'hang';
      const a = await registerEndpoint(t, stuck.url);
      const b = await registerEndpoint(t, healthy.url);
      healthy.secrets = [b.secret];
      const payments: string[] = [];
      for (let i = 0; i < 6; i++) payments.push(await paidPayment(t, { reference: `hang-${i}` }));
      await waitFor('all events at the healthy endpoint', () => payments.every((p) => healthy.forPayment(p).length === 3));
      assert.ok(stuck.hangingCount > 0, 'the stuck endpoint still holds requests');
      assert.equal(healthy.invalid.length, 0);
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${a.id}` });
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${b.id}` });
      await stuck.stop();
    });

    it('keeps delivering to a healthy endpoint while another one answers 500, and retries the failing one', async () => {
      const failing = await receiver();
      const healthy = await receiver();
      failing.mode = 'fail';
      const a = await registerEndpoint(t, failing.url, { events: ['payment.captured'] });
      const b = await registerEndpoint(t, healthy.url, { events: ['payment.captured'] });
      failing.secrets = [a.secret];
      healthy.secrets = [b.secret];
      const paymentId = await paidPayment(t);
      await waitFor('the healthy endpoint', () => healthy.forPayment(paymentId).length === 1);
      await waitFor('the failing endpoint to be tried', () => failing.requests >= 1);
      const [captured] = (await eventsOf(t, paymentId)).filter((e) => e.type === 'payment.captured');
      await waitFor('the 500 to be recorded', async () => (await eventDetail(t, captured!.id)).deliveries.find((d) => d.endpoint_id === a.id)!.attempts.length === 1);
      const d = (await eventDetail(t, captured!.id)).deliveries.find((x) => x.endpoint_id === a.id)!;
      assert.equal(d.status, 'pending');
      assert.equal(d.attempts[0]!.status_code, 500);
      assert.equal(d.last_error, 'HTTP 500');

      failing.mode = 'ok';
      advance(t, HOUR);
      await waitFor('the retry to the recovered endpoint', () => failing.forPayment(paymentId).length === 1);
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${a.id}` });
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${b.id}` });
    });

    /**
     * Two endpoints' callbacks for one payment, answered 200 with these bodies in one tick,
     * so both results are written in the same batch; the endpoints are deleted afterwards.
     */
    async function answeredTogether(bodies: [string | Buffer, string | Buffer], check: (delivery: (n: 0 | 1) => Promise<EventWithDeliveries['deliveries'][number]>) => Promise<void>) {
      const receivers = [await receiver(), await receiver()];
      const endpoints: string[] = [];
      try {
        for (const r of receivers) {
          r.mode = 'hang';
          endpoints.push((await registerEndpoint(t, r.url, { events: ['payment.captured'] })).id);
        }
        const paymentId = await paidPayment(t);
        await waitFor('both callbacks in flight', () => receivers.every((r) => r.hangingCount === 1));
        receivers.forEach((r, i) => r.answerHanging(200, bodies[i]!));
        const [captured] = (await eventsOf(t, paymentId)).filter((e) => e.type === 'payment.captured');
        await check(async (n) => (await eventDetail(t, captured!.id)).deliveries.find((d) => d.endpoint_id === endpoints[n])!);
      } finally {
        for (const id of endpoints) await t.request({ method: 'DELETE', url: `/webhook-endpoints/${id}` });
      }
    }

    it('records an answer with NUL bytes in its body, and the results written with it', async () => {
      await answeredTogether([Buffer.from('ok\0\0nul'), 'ok'], async (delivery) => {
        await waitFor('both results to be recorded', async () => (await delivery(0)).status === 'succeeded' && (await delivery(1)).status === 'succeeded');
        assert.deepEqual((await delivery(0)).attempts.map((a) => a.response_body), ['ok\uFFFD\uFFFDnul']);
        assert.deepEqual((await delivery(1)).attempts.map((a) => a.response_body), ['ok']);
      });
    });

    it('records the other results of a batch when the database refuses one', async () => {
      const { db } = t.gateway.services.ctx.database;
      const refuse =
        dialect === 'postgres'
          ? [
              `create function refuse_poison() returns trigger language plpgsql as $$ begin raise exception 'refused by the test'; end $$`,
              `create trigger refuse_poison before insert on delivery_attempts for each row when (new.response_body = 'poison') execute function refuse_poison()`,
            ]
          : [`create trigger refuse_poison before insert on delivery_attempts when new.response_body = 'poison' begin select raise(abort, 'refused by the test'); end`];
      for (const statement of refuse) await sql.raw(statement).execute(db);
      try {
        await answeredTogether(['poison', 'ok'], async (delivery) => {
          await waitFor('the other result to be recorded', async () => (await delivery(1)).status === 'succeeded');
          const refused = await delivery(0);
          assert.equal(refused.status, 'pending');
          assert.equal(refused.attempts.length, 0);
        });
      } finally {
        await sql.raw(dialect === 'postgres' ? 'drop function refuse_poison() cascade' : 'drop trigger refuse_poison').execute(db);
      }
    });

    it('gives up after the retry window and marks the delivery failed', async () => {
      const { r, endpoint, delivery } = await capturedDeliveryTo('fail');
      // Moving the clock while an attempt is still in flight would expire its lease and
      // send it again, so every hop starts only once the previous attempt is recorded.
      await waitFor('the first attempt to be recorded', async () => r.requests >= 1 && ((await delivery())?.attempts.length ?? 0) >= r.requests);
      // Each hop moves past the longest possible backoff (6 h) until 72 h are over.
      for (let hop = 0; hop < 20 && (await delivery())?.status !== 'failed'; hop++) {
        const before = r.requests;
        advance(t, 7 * HOUR);
        await waitFor('the next attempt', async () => r.requests > before || (await delivery())?.status === 'failed');
        await waitFor('the attempt to be recorded', async () => ((await delivery())?.attempts.length ?? 0) >= r.requests);
      }
      const d = (await delivery())!;
      assert.equal(d.status, 'failed');
      assert.ok(d.attempts.length >= 10, `only ${d.attempts.length} attempts`);
      assert.ok(d.attempts.every((a) => a.status_code === 500));
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.id}` });
    });

    it('makes the last attempt at the end of the 72 hours, not before', async () => {
      const { r, endpoint, delivery } = await capturedDeliveryTo('fail');
      try {
        await waitFor('the first attempt to be recorded', async () => r.requests >= 1 && ((await delivery())?.attempts.length ?? 0) >= r.requests);
        // Each hop goes to exactly the time the delivery is due next, so the attempts follow the schedule.
        for (let hop = 0; hop < 60 && (await delivery())?.status === 'pending'; hop++) {
          const before = r.requests;
          advance(t, Date.parse((await delivery())!.next_attempt_at!) - t.clock.now());
          await waitFor('the next attempt', async () => r.requests > before);
          await waitFor('the attempt to be recorded', async () => ((await delivery())?.attempts.length ?? 0) >= r.requests);
        }
        const d = (await delivery())!;
        assert.equal(d.status, 'failed');
        assert.equal(Date.parse(d.attempts.at(-1)!.at) - Date.parse(d.created_at), 72 * HOUR, 'the last attempt is at the end of the window');
      } finally {
        await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.id}` });
      }
    });

    it("waits as long as a 429's Retry-After asks before trying again", async () => {
      const { endpoint, delivery } = await capturedDeliveryTo('busy');
      try {
        await waitFor('the first attempt to be recorded', async () => ((await delivery())?.attempts.length ?? 0) >= 1);
        const d = (await delivery())!;
        assert.deepEqual([d.status, d.attempts[0]!.status_code], ['pending', 429]);
        // Retry-After: 3600 against a first backoff of at most 30 s.
        assert.ok(Date.parse(d.next_attempt_at!) - Date.parse(d.attempts[0]!.at) >= HOUR, `next attempt ${d.next_attempt_at} after ${d.attempts[0]!.at}`);
      } finally {
        await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.id}` });
      }
    });

    it('disables an endpoint that answers 410 Gone', async () => {
      const gone = await receiver();
      const healthy = await receiver();
      gone.mode = 'gone';
      const a = await registerEndpoint(t, gone.url, { events: ['payment.captured'] });
      const b = await registerEndpoint(t, healthy.url, { events: ['payment.captured'] });
      healthy.secrets = [b.secret];
      const first = await paidPayment(t);
      await waitFor('the 410 to disable the endpoint', async () => (await t.request({ method: 'GET', url: `/webhook-endpoints/${a.id}` })).json().status === 'disabled');
      const ep = (await t.request({ method: 'GET', url: `/webhook-endpoints/${a.id}` })).json() as { disabled_reason: string };
      assert.match(ep.disabled_reason, /410/);
      const [captured] = (await eventsOf(t, first)).filter((e) => e.type === 'payment.captured');
      const d = (await eventDetail(t, captured!.id)).deliveries.find((x) => x.endpoint_id === a.id)!;
      assert.equal(d.status, 'failed');
      assert.equal(gone.requests, 1);

      const second = await paidPayment(t);
      await waitFor('the healthy endpoint', () => healthy.forPayment(second).length === 1);
      const [captured2] = (await eventsOf(t, second)).filter((e) => e.type === 'payment.captured');
      assert.equal((await eventDetail(t, captured2!.id)).deliveries.filter((x) => x.endpoint_id === a.id).length, 0, 'no delivery to a disabled endpoint');
      assert.equal(gone.requests, 1);
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${a.id}` });
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${b.id}` });
    });

    it('redelivers an event on request, with the same webhook-id', async () => {
      const r = await receiver();
      const endpoint = await registerEndpoint(t, r.url, { events: ['payment.captured'] });
      r.secrets = [endpoint.secret];
      const paymentId = await paidPayment(t);
      await waitFor('the first delivery', () => r.forPayment(paymentId).length === 1);
      const eventId = r.received.at(-1)!.id;
      await waitFor('the success to be recorded', async () => (await eventDetail(t, eventId)).deliveries.find((d) => d.endpoint_id === endpoint.id)?.status === 'succeeded');

      const res = await t.request({ method: 'POST', url: `/events/${eventId}/redeliver` });
      assert.equal(res.statusCode, 202, res.body);
      const body = res.json() as { object: string; deliveries: Array<{ endpoint_id: string; status: string }> };
      assert.equal(body.object, 'redelivery');
      assert.deepEqual(body.deliveries.map((d) => d.endpoint_id), [endpoint.id]);
      await waitFor('the redelivery', () => r.ids().get(eventId) === 2);
      await waitFor('the second attempt to be recorded', async () => (await eventDetail(t, eventId)).deliveries.find((d) => d.endpoint_id === endpoint.id)!.attempts.length === 2);

      const targeted = await t.request({ method: 'POST', url: `/events/${eventId}/redeliver`, payload: { endpoint_id: endpoint.id } });
      assert.equal(targeted.statusCode, 202, targeted.body);
      await waitFor('the targeted redelivery', () => r.ids().get(eventId) === 3);

      await t.request({ method: 'PATCH', url: `/webhook-endpoints/${endpoint.id}`, payload: { status: 'disabled' } });
      const refused = await t.request({ method: 'POST', url: `/events/${eventId}/redeliver`, payload: { endpoint_id: endpoint.id } });
      assert.equal(refused.statusCode, 409);
      assert.equal(refused.json().code, 'webhook_endpoint_disabled');
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.id}` });
    });

    it('attempts a redelivery asked for while an attempt past the retry window is running, when that attempt fails', async () => {
      const r = await receiver();
      r.mode = 'fail';
      const endpoint = await registerEndpoint(t, r.url, { events: ['payment.captured'] });
      r.secrets = [endpoint.secret];
      const paymentId = await paidPayment(t);
      const [captured] = (await eventsOf(t, paymentId)).filter((e) => e.type === 'payment.captured');
      const delivery = async () => (await eventDetail(t, captured!.id)).deliveries.find((d) => d.endpoint_id === endpoint.id)!;
      await waitFor('the first failure to be recorded', async () => (await eventDetail(t, captured!.id)).deliveries.some((d) => d.endpoint_id === endpoint.id && d.attempts.length === 1));

      // The retry falls after the 72-hour window and hangs; the merchant asks for a redelivery meanwhile.
      r.mode = 'hang';
      advance(t, 73 * HOUR);
      await waitFor('the late retry to be in flight', () => r.hangingCount === 1);
      const res = await t.request({ method: 'POST', url: `/events/${captured!.id}/redeliver`, payload: { endpoint_id: endpoint.id } });
      assert.equal(res.statusCode, 202, res.body);

      r.mode = 'ok';
      r.answerHanging(500);
      await waitFor('the late retry to be recorded', async () => (await delivery()).attempts.length >= 2);
      assert.notEqual((await delivery()).status, 'failed', 'the redelivery is still to be attempted');
      await waitFor('the redelivery', () => r.ids().get(captured!.id) === 1);
      await waitFor('the redelivery to be recorded', async () => (await delivery()).status === 'succeeded');
      assert.deepEqual((await delivery()).attempts.map((a) => a.status_code), [500, 500, 200]);
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.id}` });
    });

    it('signs with both secrets during a rotation overlap, and with the new one only after it', async () => {
      const r = await receiver();
      const endpoint = await registerEndpoint(t, r.url, { events: ['payment.captured'] });
      const rotated = await t.request({ method: 'POST', url: `/webhook-endpoints/${endpoint.id}/rotate-secret`, payload: { overlap_hours: 2 } });
      assert.equal(rotated.statusCode, 200, rotated.body);
      const next = rotated.json() as { secret: string; previous_secret_expires_at: string };
      assert.notEqual(next.secret, endpoint.secret);
      assert.equal(Date.parse(next.previous_secret_expires_at), t.clock.now() + 2 * HOUR);
      r.secrets = [endpoint.secret, next.secret];

      const during = await paidPayment(t);
      await waitFor('a callback during the overlap', () => r.forPayment(during).length === 1);
      const overlap = r.forPayment(during)[0]!;
      assert.equal(overlap.signature.split(' ').length, 2);
      assert.deepEqual(overlap.validWith, [true, true], 'old and new secret both verify');

      advance(t, 2 * HOUR + 1);
      const afterwards = await paidPayment(t);
      await waitFor('a callback after the overlap', () => r.forPayment(afterwards).length === 1);
      const late = r.forPayment(afterwards)[0]!;
      assert.equal(late.signature.split(' ').length, 1);
      assert.deepEqual(late.validWith, [false, true], 'only the new secret verifies');
      const shown = (await t.request({ method: 'GET', url: `/webhook-endpoints/${endpoint.id}` })).json() as Record<string, unknown>;
      assert.equal(shown.previous_secret_expires_at, null);
      assert.equal(shown.secret, undefined, 'the secret is shown at creation and rotation only');
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.id}` });
    });

    it('sends only subscribed types, and only events that happen after the endpoint exists', async () => {
      const r = await receiver();
      const before = await paidPayment(t);
      advance(t, 1000);
      const endpoint = await registerEndpoint(t, r.url, { events: ['payment.authorised'] });
      r.secrets = [endpoint.secret];
      const afterId = await paidPayment(t);
      await waitFor('the authorised event', () => r.forPayment(afterId).length === 1);
      // A later payment's captured event is fanned out only once earlier ones are, so this waits for the first payment too.
      const marker = await paidPayment(t);
      await waitFor('the marker', () => r.forPayment(marker).length === 1);
      assert.deepEqual(r.received.map((x) => x.type), ['payment.authorised', 'payment.authorised']);
      assert.equal(r.forPayment(before).length, 0);
      await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.id}` });
    });
  });
}

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { createGateway, ensureSandboxCredentials, type Gateway } from '../../src/server.js';
import { SandboxAcquirer } from '../../src/adapters/acquirers/sandbox/sandbox-acquirer.js';
import type { AuthoriseRequest, AuthoriseResult, CaptureRequest, SimpleResult } from '../../src/ports/acquirer.js';
import { ManualClock } from '../../src/ports/clock.js';
import { AUTHORISATION_GRACE_MS, MAX_CHALLENGE_ATTEMPTS } from '../../src/app/checkout.js';
import { SANDBOX_CHALLENGE_CODE } from '../../src/adapters/acquirers/sandbox/test-cards.js';
import { sweepExpired } from '../../src/workers/expiry-sweeper.js';
import { runCaptureScheduler } from '../../src/workers/capture-scheduler.js';
import { CLAIM_LEASE_MS } from '../../src/domain/payment-state.js';
import { RELEASE_RETRY } from '../../src/app/releases.js';
import { DIALECTS, exampleBody } from '../support/gateway.js';
import { freshPostgresDatabase } from '../support/postgres.js';
import { eventually } from '../support/browser.js';
import { merchantReturnAfter } from '../support/http.js';

/** The sandbox, except that the test decides when and how authorise answers. */
class ScriptedAcquirer extends SandboxAcquirer {
  calls = 0;
  released: string[] = [];
  releaseRequests: Array<CaptureRequest & { refundId?: string }> = [];
  /** Answers the next void or refund instead of the sandbox. */
  releaseNext: (() => Promise<SimpleResult>) | null = null;
  next: ((req: AuthoriseRequest) => Promise<AuthoriseResult>) | null = null;
  override async authorise(req: AuthoriseRequest): Promise<AuthoriseResult> {
    this.calls++;
    return this.next ? this.next(req) : super.authorise(req);
  }
  captureNext: (() => Promise<SimpleResult>) | null = null;
  /** Payments whose money was taken: as a real acquirer, it refunds nothing else. */
  private readonly taken = new Set<string>();
  override async capture(req: CaptureRequest): Promise<SimpleResult> {
    const next = this.captureNext;
    this.captureNext = null;
    const result = await (next ? next() : super.capture(req));
    if (result.outcome === 'succeeded') this.taken.add(req.paymentId);
    return result;
  }
  override async void(req: CaptureRequest): Promise<SimpleResult> {
    this.released.push(`void ${req.paymentId}`);
    this.releaseRequests.push(req);
    return this.answerRelease() ?? super.void(req);
  }
  override async refund(req: CaptureRequest & { refundId: string }): Promise<SimpleResult> {
    this.released.push(`refund ${req.paymentId}`);
    this.releaseRequests.push(req);
    const scripted = this.answerRelease();
    if (scripted) return scripted;
    if (!this.taken.has(req.paymentId)) return { outcome: 'failed', code: 'nothing_captured', message: 'Nothing was captured for this payment.' };
    return super.refund(req);
  }
  private answerRelease(): Promise<SimpleResult> | undefined {
    const next = this.releaseNext;
    this.releaseNext = null;
    return next?.();
  }
}

function gate<T>() {
  let open!: (v: T) => void;
  const opened = new Promise<T>((r) => (open = r));
  return { opened, open };
}

/** The customer's side without a browser: the page's cookie and CSRF field, then a form POST. */
async function openPage(app: FastifyInstance, redirectUrl: string) {
  const path = new URL(redirectUrl).pathname;
  const page = await app.inject({ method: 'GET', url: path });
  assert.equal(page.statusCode, 200, page.body);
  return { path, cookie: String(page.headers['set-cookie']).split(';')[0]!, csrf: /name="csrf" value="([^"]+)"/.exec(page.body)![1]!, html: page.body };
}

function post(app: FastifyInstance, page: Awaited<ReturnType<typeof openPage>>, action: string, fields: Record<string, string> = {}) {
  return app.inject({
    method: 'POST',
    url: `${page.path}/${action}`,
    headers: { cookie: page.cookie, 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ csrf: page.csrf, ...fields }).toString(),
  });
}

for (const dialect of DIALECTS) {
  describe(`hosted page against a scripted acquirer (${dialect})`, () => {
    const acquirer = new ScriptedAcquirer();
    const clock = new ManualClock(Date.UTC(2030, 5, 1));
    let gateway: Gateway;
    let key: string;
    let dataDir: string;
    let drop: (() => Promise<void>) | undefined;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'tzero-checkout-'));
      const pgdb = dialect === 'postgres' ? await freshPostgresDatabase() : null;
      drop = pgdb?.drop;
      const config = loadConfig({ DATA_DIR: dataDir, WORKERS: 'false', PUBLIC_URL: 'http://127.0.0.1:9', ...(pgdb ? { DATABASE_URL: pgdb.url } : {}) });
      gateway = await createGateway(config, pino({ level: 'silent' }), { clock, acquirer });
      key = (await ensureSandboxCredentials(gateway.services)).credentials!.secret_key;
    });
    after(async () => {
      await gateway?.close();
      await drop?.();
      rmSync(dataDir, { recursive: true, force: true });
    });

    const create = async (number = '4242424242424242', overrides: Record<string, unknown> = {}) => {
      const res = await gateway.app.inject({
        method: 'POST',
        url: '/payment/authorise',
        headers: { 'x-secret-key': key, 'content-type': 'application/json' },
        payload: JSON.stringify(await exampleBody({ payment_method: { number }, ...overrides })),
      });
      assert.equal(res.statusCode, 201, res.body);
      return res.json<{ id: string; redirect_url: string }>();
    };
    /** Authorisations wait for the test's answer from now on; `called` opens when one is asked. */
    const holdAuthorisations = () => {
      const answer = gate<AuthoriseResult>();
      const called = gate<void>();
      acquirer.next = async () => {
        called.open();
        return answer.opened;
      };
      return { answer, called };
    };
    /** A confirmed payment whose acquirer call is still out when the sweeper expires it. */
    const expiredWhileAsking = async (overrides: Record<string, unknown> = {}) => {
      const p = await create(undefined, overrides);
      const page = await openPage(gateway.app, p.redirect_url);
      const { answer, called } = holdAuthorisations();
      const submitted = post(gateway.app, page, 'confirm');
      await called.opened;
      clock.advance(gateway.services.ctx.config.hostedPageTtlMs + AUTHORISATION_GRACE_MS + 1);
      assert.equal(await sweepExpired(gateway.services), 1);
      return { p, answer, submitted };
    };
    /** A confirmed payment whose approval arrives after the sweeper expired it. */
    const approvedTooLate = async (networkReference: string) => {
      const { p, answer, submitted } = await expiredWhileAsking();
      // The expiry's reversal of the authorisation, settled before the approval arrives.
      await runCaptureScheduler(gateway.services);
      answer.open({ outcome: 'approved', authorisationCode: 'LATE00', networkReference });
      assert.equal((await submitted).statusCode, 303);
      acquirer.next = null;
      return p;
    };
    const payment = async (id: string) => (await gateway.app.inject({ method: 'GET', url: `/payment/${id}`, headers: { 'x-secret-key': key } })).json();
    const events = async (id: string) =>
      (await gateway.services.ctx.database.db.selectFrom('events').select('type').where('payment_id', '=', id).orderBy('sequence').execute()).map((e) => e.type);
    const releasesOf = (id: string, reason: 'late_approval' | 'unconfirmed_authorisation' = 'late_approval') =>
      gateway.services.ctx.database.db.selectFrom('releases').selectAll().where('payment_id', '=', id).where('reason', '=', reason).execute();
    /** Whether any of the payment's card (number or CVC) is still kept. */
    const cardKept = async (id: string) => (await gateway.services.ctx.database.db.selectFrom('card_secrets').select('payment_id').where('payment_id', '=', id).executeTakeFirst()) !== undefined;

    it('authorises once when the confirm form is submitted twice at the same time', async () => {
      acquirer.next = null;
      const p = await create();
      const page = await openPage(gateway.app, p.redirect_url);
      const before = acquirer.calls;
      const answers = await Promise.all([post(gateway.app, page, 'confirm'), post(gateway.app, page, 'confirm'), post(gateway.app, page, 'confirm')]);
      assert.deepEqual(answers.map((a) => a.statusCode), [303, 303, 303]);
      assert.equal(acquirer.calls - before, 1);
      assert.equal((await payment(p.id)).status, 'captured');
      assert.deepEqual(await events(p.id), ['payment.created', 'payment.authorised', 'payment.captured']);
    });

    it('does not let the page expire while the acquirer is answering', async () => {
      const p = await create();
      const page = await openPage(gateway.app, p.redirect_url);
      const { answer, called } = holdAuthorisations();
      // The customer confirms in the last second of the page's life…
      clock.advance(gateway.services.ctx.config.hostedPageTtlMs - 1_000);
      const submitted = post(gateway.app, page, 'confirm');
      await called.opened;
      // …and the page's time runs out while the acquirer is still answering.
      clock.advance(2_000);
      await sweepExpired(gateway.services);
      const meanwhile = await gateway.app.inject({ method: 'GET', url: page.path });
      assert.match(meanwhile.body, /Processing your payment/);
      assert.equal((await payment(p.id)).status, 'requires_action');

      answer.open({ outcome: 'approved', authorisationCode: 'A1B2C3', networkReference: '123456789012345' });
      const done = await submitted;
      assert.equal(done.statusCode, 303);
      assert.equal((await merchantReturnAfter(gateway.app, done)).searchParams.get('status'), 'captured');
      const final = await payment(p.id);
      assert.equal(final.status, 'captured');
      assert.equal(final.authorisation_code, 'A1B2C3');
      assert.equal(await cardKept(p.id), false);
    });

    it('expires a payment stuck in processing once the grace has passed, erasing its CVC', async () => {
      const p = await create();
      const page = await openPage(gateway.app, p.redirect_url);
      const answer = gate<AuthoriseResult>();
      acquirer.next = () => answer.opened;
      const submitted = post(gateway.app, page, 'confirm');
      await eventually(async () => (await gateway.services.ctx.database.db.selectFrom('checkout_sessions').select('state').where('payment_id', '=', p.id).executeTakeFirst())?.state === 'processing', 'the claim');
      clock.advance(gateway.services.ctx.config.hostedPageTtlMs + AUTHORISATION_GRACE_MS + 1);
      assert.equal(await sweepExpired(gateway.services), 1);
      assert.equal((await payment(p.id)).status, 'expired');
      assert.equal(await cardKept(p.id), false);
      // Its process may have died after an approval, and after the capture asked at once: the
      // authorisation is reversed and the capture refunded (the one with nothing to release ends nothing_held).
      const reversals = (await releasesOf(p.id, 'unconfirmed_authorisation')).map((r) => [r.action, r.network_reference]).sort();
      assert.deepEqual(reversals, [['refund', null], ['void', null]]);
      // A verdict that arrives after that is not recorded over the expiry, and captured money is given back.
      answer.open({ outcome: 'approved', authorisationCode: 'LATE00', networkReference: '1' });
      assert.equal((await submitted).statusCode, 303);
      assert.equal((await payment(p.id)).status, 'expired');
      const [queued] = await releasesOf(p.id);
      assert.equal(queued?.action, 'refund', 'captured at once, so refunded');
      assert.equal(queued.reason, 'late_approval');
      await runCaptureScheduler(gateway.services);
      assert.deepEqual(acquirer.released.filter((r) => r.endsWith(p.id)).sort(), [`refund ${p.id}`, `void ${p.id}`]);
      assert.equal((await releasesOf(p.id))[0]!.status, 'succeeded');
    });

    it('keeps asking for a late approval back until the acquirer gives it, under the same refund reference', async () => {
      const p = await approvedTooLate('2');
      const asked = acquirer.releaseRequests.length;

      acquirer.releaseNext = async () => {
        throw new Error('ECONNRESET');
      };
      await runCaptureScheduler(gateway.services);
      let [release] = await releasesOf(p.id);
      assert.equal(release!.status, 'pending');
      assert.match(String(release!.last_error), /unreachable/);
      // Not again before its backoff...
      await runCaptureScheduler(gateway.services);
      assert.equal(acquirer.releaseRequests.length, asked + 1);

      // ...then refused once, then given.
      clock.advance(61_000);
      acquirer.releaseNext = async () => ({ outcome: 'failed', code: 'try_later', message: 'Refunds open after settlement.' });
      await runCaptureScheduler(gateway.services);
      assert.equal((await releasesOf(p.id))[0]!.status, 'pending');
      clock.advance(2 * 61_000);
      await runCaptureScheduler(gateway.services);
      [release] = await releasesOf(p.id);
      assert.equal(release!.status, 'succeeded');
      assert.equal(release!.attempts, 3);
      const sent = acquirer.releaseRequests.slice(asked);
      assert.equal(sent.length, 3);
      assert.deepEqual(new Set(sent.map((r) => r.refundId)), new Set([release!.id]), 'one refund reference, so the acquirer refunds once');
      assert.equal(sent[0]!.networkReference, '2');
    });

    it('asks again for a release whose process died during the call, and keeps only one answer', async () => {
      const p = await approvedTooLate('3');

      const stuck = gate<SimpleResult>();
      acquirer.releaseNext = () => stuck.opened;
      const dying = runCaptureScheduler(gateway.services);
      const refunds = () => acquirer.releaseRequests.filter((r) => r.paymentId === p.id && r.refundId !== undefined);
      // The expiry's own refund was asked (and found nothing taken) before the approval came.
      const earlier = refunds().length;
      await eventually(async () => refunds().length === earlier + 1, 'the first ask');
      clock.advance(CLAIM_LEASE_MS + 1);
      await runCaptureScheduler(gateway.services);
      assert.equal((await releasesOf(p.id))[0]!.status, 'succeeded');
      // The first holder's late answer is not recorded over the one that took over.
      stuck.open({ outcome: 'pending', message: 'still thinking' });
      await dying;
      const [release] = await releasesOf(p.id);
      assert.equal(release!.status, 'succeeded');
      assert.equal(refunds().length, earlier + 2);
    });

    it('voids a late approval whose authorisation the expiry found nothing to reverse for', async () => {
      const { p, answer, submitted } = await expiredWhileAsking({ capture: 'manual' });
      // The acquirer had not recorded the slow authorisation yet when the reversal reached it.
      acquirer.releaseNext = async () => ({ outcome: 'failed', code: 'not_found', message: 'No such authorisation.' });
      await runCaptureScheduler(gateway.services);
      assert.equal((await releasesOf(p.id, 'unconfirmed_authorisation'))[0]!.status, 'nothing_held');
      answer.open({ outcome: 'approved', authorisationCode: 'LATE05', networkReference: '5' });
      await submitted;
      acquirer.next = null;
      const [late] = await releasesOf(p.id);
      assert.deepEqual([late?.action, late?.network_reference], ['void', '5']);
      await runCaptureScheduler(gateway.services);
      assert.equal((await releasesOf(p.id))[0]!.status, 'succeeded');
    });

    it('gives up releasing after the retry window and says so', async () => {
      const p = await approvedTooLate('4');
      const refuse = async (): Promise<SimpleResult> => ({ outcome: 'failed', code: 'refund_refused', message: 'No.' });
      acquirer.releaseNext = refuse;
      await runCaptureScheduler(gateway.services);
      assert.equal((await releasesOf(p.id))[0]!.status, 'pending');
      clock.advance(RELEASE_RETRY.windowMs);
      acquirer.releaseNext = refuse;
      await runCaptureScheduler(gateway.services);
      const [release] = await releasesOf(p.id);
      assert.equal(release!.status, 'failed');
      assert.match(String(release!.last_error), /refund_refused/);
    });

    it('records a throwing acquirer as failed, with no internals shown', async () => {
      acquirer.next = async () => {
        throw new Error('ECONNRESET 10.0.0.7:443 secret-acquirer-host');
      };
      const p = await create();
      const done = await post(gateway.app, await openPage(gateway.app, p.redirect_url), 'confirm');
      assert.equal((await merchantReturnAfter(gateway.app, done)).searchParams.get('status'), 'failed');
      const final = await payment(p.id);
      assert.equal(final.status, 'failed');
      assert.doesNotMatch(JSON.stringify(final), /ECONNRESET|10\.0\.0\.7/);
      // The call may have reached the acquirer: whatever it approved is reversed, by our payment id.
      acquirer.next = null;
      await runCaptureScheduler(gateway.services);
      const reversal = acquirer.releaseRequests.find((r) => r.paymentId === p.id);
      assert.equal(acquirer.released.filter((r) => r === `void ${p.id}`).length, 1);
      assert.equal(reversal?.networkReference, null);
      const [release] = await releasesOf(p.id, 'unconfirmed_authorisation');
      assert.equal(release?.reason, 'unconfirmed_authorisation');
      assert.equal(release.status, 'succeeded');
      assert.equal(await cardKept(p.id), false);
      const outcome = await gateway.app.inject({ method: 'GET', url: new URL(p.redirect_url).pathname });
      assert.match(outcome.body, /could not be processed/);
      assert.doesNotMatch(outcome.body, /ECONNRESET/);
    });

    it('never reports an unmapped or pending answer as a success', async () => {
      acquirer.next = async () => ({ outcome: 'pending', message: 'The acquirer has not decided.' });
      const p = await create();
      await post(gateway.app, await openPage(gateway.app, p.redirect_url), 'confirm');
      assert.equal((await payment(p.id)).status, 'failed');
      acquirer.next = null;
      // An acquirer that refuses the reversal holds nothing for it: not asked again.
      acquirer.releaseNext = async () => ({ outcome: 'failed', code: 'not_found', message: 'No such authorisation.' });
      await runCaptureScheduler(gateway.services);
      const [release] = await releasesOf(p.id, 'unconfirmed_authorisation');
      assert.equal(release?.action, 'void');
      assert.equal(release.status, 'nothing_held');
    });

    it("signs a finished page's return with the time the payment changed, however late the page is opened again", async () => {
      const p = await create();
      const page = await openPage(gateway.app, p.redirect_url);
      const done = await post(gateway.app, page, 'confirm');
      assert.equal(done.statusCode, 303);
      const redirected = await merchantReturnAfter(gateway.app, done);
      assert.equal(redirected.searchParams.get('timestamp'), String(Math.floor(clock.now() / 1000)));
      clock.advance(3_600_000);
      const later = await gateway.app.inject({ method: 'GET', url: page.path });
      assert.equal(later.statusCode, 200);
      const link = new URL(/id="return" href="([^"]+)"/.exec(later.body)![1]!.replaceAll('&amp;', '&'));
      assert.equal(link.searchParams.get('status'), 'captured');
      // The moment it was captured, an hour ago: the merchant's 600-second check refuses it.
      assert.equal(link.searchParams.get('timestamp'), redirected.searchParams.get('timestamp'));
      assert.equal(link.searchParams.get('signature'), redirected.searchParams.get('signature'));
    });

    it('shows a finished page with the amount the customer was charged, not the larger one authorised', async () => {
      const p = await create(undefined, { amount: 1000, currency: 'KWD', capture: 'manual' });
      const page = await openPage(gateway.app, p.redirect_url);
      assert.match(page.html, /KWD 1\.000/);
      assert.equal((await post(gateway.app, page, 'confirm')).statusCode, 303);
      const shownAmount = async () => /class="amount"><span class="sr-only">Amount: <\/span>([^<]*)</.exec((await gateway.app.inject({ method: 'GET', url: page.path })).body)?.[1];
      assert.equal(await shownAmount(), 'KWD 1.000', 'authorised, nothing taken yet');
      const capture = await gateway.app.inject({ method: 'POST', url: `/payment/${p.id}/capture`, headers: { 'x-secret-key': key, 'content-type': 'application/json' }, payload: '{"amount":600}' });
      assert.equal(capture.json().status, 'partially_captured');
      // The rest was released: the customer paid KWD 0.600, as their receipt says.
      assert.equal(await shownAmount(), 'KWD 0.600');
      const refund = await gateway.app.inject({ method: 'POST', url: `/payment/${p.id}/refund`, headers: { 'x-secret-key': key, 'content-type': 'application/json' }, payload: '{"amount":600}' });
      assert.equal(refund.json().status, 'succeeded');
      assert.equal(await shownAmount(), 'KWD 0.600');
    });

    it('answers a malformed, forged or borrowed token exactly like an unknown one', async () => {
      acquirer.next = null;
      const p = await create();
      const other = await create();
      const page = await openPage(gateway.app, p.redirect_url);
      const split = (url: string) => {
        const token = new URL(url).pathname.slice('/pay/'.length);
        return { token, id: token.slice(0, token.indexOf('-')), mac: token.slice(token.indexOf('-') + 1) };
      };
      const { token, id, mac } = split(p.redirect_url);
      const flipped = (mac[0] === 'A' ? 'B' : 'A') + mac.slice(1);
      // The page's answer with its per-response nonce taken out.
      const answer = async (method: 'GET' | 'POST', url: string) => {
        const res = await gateway.app.inject({
          method,
          url,
          ...(method === 'POST' ? { headers: { cookie: page.cookie, 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams({ csrf: page.csrf }).toString() } : {}),
        });
        const nonce = /nonce="([^"]+)"/.exec(res.body)?.[1] ?? 'none';
        return { status: res.statusCode, type: res.headers['content-type'], csp: String(res.headers['content-security-policy']).replaceAll(nonce, 'N'), cookie: res.headers['set-cookie'], body: res.body.replaceAll(nonce, 'N') };
      };
      const unknown = 'A'.repeat(43);
      const expected = { GET: await answer('GET', `/pay/${unknown}`), POST: await answer('POST', `/pay/${unknown}/cancel`) };
      assert.equal(expected.GET.status, 404);
      assert.match(expected.GET.body, /Payment not found/);
      assert.deepEqual(expected.POST, expected.GET);
      const bad = [`${id}-${flipped}`, `${id}-${split(other.redirect_url).mac}`, `${other.id}-${mac}`, token.slice(0, -1), `${token}A`, id, `${id}${mac}`, `${id}_${mac}`, `${id}--${mac}`, `${mac}-${id}`];
      for (const t of bad) {
        assert.deepEqual(await answer('GET', `/pay/${t}`), expected.GET, `GET ${t}`);
        for (const action of ['confirm', 'challenge', 'cancel']) assert.deepEqual(await answer('POST', `/pay/${t}/${action}`), expected.POST, `POST ${t}/${action}`);
      }
      assert.equal((await payment(p.id)).status, 'requires_action');
      assert.equal((await payment(other.id)).status, 'requires_action');
      assert.equal((await answer('GET', `/pay/${token}`)).status, 200);
    });

    it('shows the same page URL on the payment while it awaits the customer, and none after', async () => {
      acquirer.next = null;
      const p = await create();
      assert.equal((await payment(p.id)).redirect_url, p.redirect_url);
      await post(gateway.app, await openPage(gateway.app, p.redirect_url), 'cancel');
      const after = await payment(p.id);
      assert.equal(after.status, 'cancelled');
      assert.equal(after.redirect_url, null);
    });

    it('records the approval when the automatic capture throws or is pending, and asks again after the lease', async () => {
      acquirer.next = null;
      for (const answer of [() => Promise.reject(new Error('connection reset')), () => Promise.resolve<SimpleResult>({ outcome: 'pending', message: 'queued' })]) {
        acquirer.captureNext = answer;
        const p = await create();
        const done = await post(gateway.app, await openPage(gateway.app, p.redirect_url), 'confirm');
        assert.equal(done.statusCode, 303, done.body);
        assert.equal((await merchantReturnAfter(gateway.app, done)).searchParams.get('status'), 'capturing');
        assert.equal((await payment(p.id)).status, 'capturing');
        assert.equal(await cardKept(p.id), false);
        // The capture may have happened: the claim is kept and settled by the scheduler, never voided meanwhile.
        assert.equal((await gateway.app.inject({ method: 'POST', url: `/payment/${p.id}/void`, headers: { 'x-secret-key': key, 'content-type': 'application/json' }, payload: '{}' })).statusCode, 409);
        clock.advance(CLAIM_LEASE_MS);
        await runCaptureScheduler(gateway.services);
        assert.equal((await payment(p.id)).status, 'captured');
      }
    });

    it('tells the customer in words, never a status code, while the acquirer captures or voids', async () => {
      acquirer.next = null;
      const shown = async (path: string) => {
        const res = await gateway.app.inject({ method: 'GET', url: path });
        assert.equal(res.statusCode, 200);
        return /role="status"><strong>([^<]*)<\/strong>([^<]*)</.exec(res.body)?.slice(1).join('') ?? res.body;
      };
      acquirer.captureNext = () => Promise.resolve<SimpleResult>({ outcome: 'pending', message: 'queued' });
      const capturing = await create();
      const page = await openPage(gateway.app, capturing.redirect_url);
      await post(gateway.app, page, 'confirm');
      assert.equal((await payment(capturing.id)).status, 'capturing');
      assert.equal(await shown(page.path), 'Payment approved. Your payment has been approved.');
      clock.advance(CLAIM_LEASE_MS);
      await runCaptureScheduler(gateway.services);

      const voiding = await create(undefined, { capture: 'manual' });
      const manual = await openPage(gateway.app, voiding.redirect_url);
      await post(gateway.app, manual, 'confirm');
      const held = gate<SimpleResult>();
      acquirer.releaseNext = () => held.opened;
      const voided = gateway.app.inject({ method: 'POST', url: `/payment/${voiding.id}/void`, headers: { 'x-secret-key': key, 'content-type': 'application/json' }, payload: '{}' });
      await eventually(async () => (await payment(voiding.id)).status === 'voiding', 'the void claim');
      assert.doesNotMatch(await shown(manual.path), /voiding|Status:/);
      assert.match(await shown(manual.path), /^Payment being cancelled\. The merchant is cancelling this payment\.$/);
      held.open({ outcome: 'succeeded' });
      assert.equal((await voided).statusCode, 200);
    });

    it('checks no more codes than the attempts allow, however many arrive at once', async () => {
      acquirer.next = null;
      const p = await create('4000000000003220');
      const page = await openPage(gateway.app, p.redirect_url);
      const guesses = await Promise.all(Array.from({ length: 12 }, (_, i) => post(gateway.app, page, 'challenge', { otp: String(5000 + i) })));
      assert.ok(guesses.every((g) => g.statusCode === 303));
      const right = await post(gateway.app, page, 'challenge', { otp: SANDBOX_CHALLENGE_CODE });
      assert.equal(right.statusCode, 303);
      const after = await payment(p.id);
      assert.equal(after.status, 'declined', `after ${MAX_CHALLENGE_ATTEMPTS} wrong codes the right one must not authorise`);
      assert.equal(after.decline_code, 'authentication_failed');
    });

    it('asks again for a challenge code sent empty, without using an attempt', async () => {
      acquirer.next = null;
      const p = await create('4000000000003220');
      const page = await openPage(gateway.app, p.redirect_url);
      for (const otp of ['', '   ']) {
        const empty = await post(gateway.app, page, 'challenge', { otp });
        assert.equal(empty.statusCode, 303);
        assert.equal(empty.headers.location, `${page.path}?error=no_code`);
      }
      const shown = await gateway.app.inject({ method: 'GET', url: `${page.path}?error=no_code`, headers: { cookie: page.cookie } });
      assert.match(shown.body, /Enter the code your bank sent you/);
      const token = page.path.split('/').pop()!;
      assert.equal((await gateway.services.checkout.load(token))!.attemptsLeft, MAX_CHALLENGE_ATTEMPTS);
      assert.equal((await payment(p.id)).status, 'requires_action');
    });

    it('does not let a second tab cancel a payment whose confirm is already at the acquirer', async () => {
      const p = await create();
      const page = await openPage(gateway.app, p.redirect_url);
      const { answer, called } = holdAuthorisations();
      const released = acquirer.released.length;
      // The second tab's cancel read the page while it was still open, just before the confirm claimed it.
      const token = page.path.split('/').pop()!;
      const seenByOtherTab = (await gateway.services.checkout.load(token))!;
      const confirming = post(gateway.app, page, 'confirm');
      await called.opened;
      await gateway.services.checkout.cancel(token, seenByOtherTab);
      answer.open({ outcome: 'approved', authorisationCode: 'A1B2C3', networkReference: '123456789012345' });
      assert.equal((await merchantReturnAfter(gateway.app, await confirming)).searchParams.get('status'), 'captured');
      assert.equal((await payment(p.id)).status, 'captured');
      assert.equal(acquirer.released.length, released, 'nothing had to be given back');
      assert.deepEqual([...(await releasesOf(p.id)), ...(await releasesOf(p.id, 'unconfirmed_authorisation'))], []);
      acquirer.next = null;
    });

    it('answers a CSRF field whose bytes differ in length from the cookie with 403, not 500', async () => {
      const p = await create();
      const page = await openPage(gateway.app, p.redirect_url);
      const res = await gateway.app.inject({
        method: 'POST',
        url: `${page.path}/confirm`,
        headers: { cookie: `tz_csrf=${'e'.repeat(24)}`, 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ csrf: 'é'.repeat(24) }).toString(),
      });
      assert.equal(res.statusCode, 403, res.body);
    });

    it('answers a form post it cannot read with a page for the customer, not JSON', async () => {
      const p = await create();
      const page = await openPage(gateway.app, p.redirect_url);
      const sent: Array<[Record<string, string>, string, number]> = [
        [{ 'content-type': 'text/plain' }, 'csrf=x', 415],
        [{ 'content-type': 'application/json' }, '', 400],
        [{ 'content-type': 'application/x-www-form-urlencoded' }, `csrf=${'x'.repeat(5000)}`, 413],
      ];
      for (const [headers, payload, status] of sent) {
        const res = await gateway.app.inject({ method: 'POST', url: `${page.path}/confirm`, headers: { cookie: page.cookie, ...headers }, payload });
        assert.equal(res.statusCode, status, res.body);
        assert.match(String(res.headers['content-type']), /^text\/html/, res.body);
        assert.match(String(res.headers['content-security-policy']), /default-src 'none'/);
        assert.match(res.body, /Reload the payment page/);
        assert.match(res.body, new RegExp(`href="${page.path}"`));
      }
      assert.equal((await payment(p.id)).status, 'requires_action');
      for (const path of ['/pay/not.a.token', '/pay/not!a!token/confirm', '/pay/%zz', `/pay/${'t'.repeat(300)}`]) {
        const res = await gateway.app.inject({ method: path.endsWith('confirm') ? 'POST' : 'GET', url: path });
        assert.equal(res.statusCode, 404, res.body);
        assert.match(res.body, /Payment not found/);
      }
    });

    it('keeps the challenge when a frictionless confirm is forged for a challenge card', async () => {
      const p = await create('4000000000003220');
      const page = await openPage(gateway.app, p.redirect_url);
      const before = acquirer.calls;
      const forged = await post(gateway.app, page, 'confirm');
      assert.equal(forged.statusCode, 303);
      assert.equal(new URL(String(forged.headers.location), 'http://x').pathname, page.path);
      assert.equal(acquirer.calls, before);
      assert.equal((await payment(p.id)).status, 'requires_action');
    });
  });
}

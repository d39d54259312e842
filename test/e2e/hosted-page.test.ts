import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { DIALECTS, exampleBody, freePort, startTestGateway, type TestGateway } from '../support/gateway.js';
import { createPayment, launchBrowser, openTab, returnPageOutcome } from '../support/browser.js';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createMerchant, merchantReturnAfter } from '../support/http.js';

const SCREENSHOT = process.env.CHECKOUT_SCREENSHOT ?? '/tmp/checkout.png';

describe('hosted payment page in Chromium', () => {
  let browser: Browser;
  before(async () => {
    browser = await launchBrowser();
  });
  after(() => browser?.close());

  for (const dialect of DIALECTS) {
    describe(dialect, () => {
      let t: TestGateway;
      before(async () => {
        t = await startTestGateway({ dialect });
        await t.listen();
      });
      after(() => t?.close());

      const db = () => t.gateway.services.ctx.database.db;
      const payment = async (id: string) => (await t.request({ method: 'GET', url: `/payment/${id}` })).json();
      const eventTypes = async (id: string) =>
        (await db().selectFrom('events').select('type').where('payment_id', '=', id).orderBy('sequence').execute()).map((e) => e.type);
      const cvcSealed = async (id: string) => (await db().selectFrom('card_secrets').select('cvc_ct').where('payment_id', '=', id).executeTakeFirst())?.cvc_ct != null;

      it('frictionless 4242…: back on the return page with a valid signature, then captured', async () => {
        const { id, redirectUrl } = await createPayment(t, { number: '4242424242424242' });
        assert.equal(await cvcSealed(id), true);
        const tab = await openTab(browser);
        try {
          const res = await tab.page.goto(redirectUrl);
          assert.equal(res?.status(), 200);
          const back = await returnPageOutcome(tab.page);
          assert.equal(back.url.origin + back.url.pathname, `${t.config.publicUrl}/sandbox/return`);
          assert.equal(back.verdict, 'valid');
          assert.equal(back.paymentId, id);
          assert.equal(back.status, 'captured');
          assert.equal(back.url.searchParams.get('reference'), 'merchant_txn_ref');
          assert.match(back.url.searchParams.get('timestamp')!, /^\d{10}$/);
          assert.match(back.url.searchParams.get('signature')!, /^[0-9a-f]{64}$/);
          assert.deepEqual(tab.console.filter((m) => /Content Security Policy|Refused/.test(m)), []);
        } finally {
          await tab.close();
        }
        const p = await payment(id);
        assert.equal(p.status, 'captured');
        assert.equal(p.amount_captured, 100);
        assert.match(p.authorisation_code, /^[0-9A-F]{6}$/);
        assert.match(p.network_reference, /^\d{15}$/);
        assert.equal(p.redirect_url, null);
        assert.equal(await cvcSealed(id), false);
        assert.deepEqual(await eventTypes(id), ['payment.created', 'payment.authorised', 'payment.captured']);
      });

      it('a tampered return is shown as not verified', async () => {
        const { id, redirectUrl } = await createPayment(t, { number: '5555555555554444' });
        const tab = await openTab(browser);
        try {
          await tab.page.goto(redirectUrl);
          const back = await returnPageOutcome(tab.page);
          assert.equal(back.verdict, 'valid');
          back.url.searchParams.set('status', 'refunded');
          await tab.page.goto(back.url.toString());
          assert.equal(await tab.page.locator('#signature-verdict').getAttribute('data-verdict'), 'invalid');
        } finally {
          await tab.close();
        }
        assert.equal((await payment(id)).status, 'captured');
      });

      it('challenge 4000 0000 0000 3220 with the sandbox code is captured', async () => {
        const { id, redirectUrl } = await createPayment(t, { number: '4000000000003220' });
        const tab = await openTab(browser);
        try {
          await tab.page.goto(redirectUrl);
          const otp = tab.page.locator('input[name="otp"]');
          await otp.waitFor();
          assert.equal(await tab.page.getByLabel('Verification code').count(), 1);
          assert.match((await tab.page.locator('main').textContent())!, /Sandbox Shop[\s\S]*USD 1\.00[\s\S]*3220[\s\S]*1234/);
          assert.ok(!(await tab.page.content()).includes('4000000000003220'));
          // Nothing of the card beyond its last 4 (and brand): not its expiry either.
          assert.doesNotMatch((await tab.page.locator('main').textContent())!, /Expires|\b\d{2}\/\d{4}\b/);
          assert.equal(await otp.getAttribute('aria-invalid'), null);
          // What a screen reader reads: the amount under its name (not a name that stands in for it), the card's end in words, not four bullets.
          const summary = await tab.page.locator('main').ariaSnapshot();
          assert.match(summary, /- paragraph: "?Amount: USD 1\.00"?\n/, summary);
          assert.match(summary, /- definition: Visa ending in 3220\n/, summary);
          if (dialect === DIALECTS[0]) await tab.page.screenshot({ path: SCREENSHOT, fullPage: true });
          await otp.fill('1234');
          await tab.page.getByRole('button', { name: /verify/i }).click();
          const back = await returnPageOutcome(tab.page);
          assert.equal(back.verdict, 'valid');
          assert.equal(back.status, 'captured');
        } finally {
          await tab.close();
        }
        assert.equal((await payment(id)).status, 'captured');
      });

      it('three wrong codes decline the payment with authentication_failed', async () => {
        const { id, redirectUrl } = await createPayment(t, { number: '4000000000003220' });
        const tab = await openTab(browser);
        try {
          await tab.page.goto(redirectUrl);
          for (const left of [2, 1]) {
            await tab.page.locator('input[name="otp"]').fill('0000');
            await tab.page.getByRole('button', { name: /verify/i }).click();
            await tab.page.waitForURL(/error=wrong_code/);
            assert.match((await tab.page.getByRole('alert').textContent())!, new RegExp(`${left} attempts? left`));
            // The field itself says it was wrong, and points at why: an alert there on load is often not read out.
            const field = tab.page.getByLabel('Verification code');
            assert.equal(await field.getAttribute('aria-invalid'), 'true');
            assert.deepEqual((await field.getAttribute('aria-describedby'))!.split(' '), ['otp-error', 'otp-hint']);
            assert.equal((await payment(id)).status, 'requires_action');
          }
          await tab.page.locator('input[name="otp"]').fill('9999');
          await tab.page.getByRole('button', { name: /verify/i }).click();
          const back = await returnPageOutcome(tab.page);
          assert.equal(back.status, 'declined');
          assert.equal(back.verdict, 'valid');
        } finally {
          await tab.close();
        }
        const p = await payment(id);
        assert.equal(p.status, 'declined');
        assert.equal(p.decline_code, 'authentication_failed');
        assert.equal(p.retry_advice, 'retry_with_new_details');
        assert.equal(await cvcSealed(id), false);
      });

      it('4000 0084 0000 1629 passes the challenge and is then declined', async () => {
        const { id, redirectUrl } = await createPayment(t, { number: '4000008400001629' });
        const tab = await openTab(browser);
        try {
          await tab.page.goto(redirectUrl);
          await tab.page.locator('input[name="otp"]').fill('1234');
          await tab.page.getByRole('button', { name: /verify/i }).click();
          assert.equal((await returnPageOutcome(tab.page)).status, 'declined');
        } finally {
          await tab.close();
        }
        const p = await payment(id);
        assert.equal(p.status, 'declined');
        assert.equal(p.decline_code, 'do_not_honor');
        assert.equal(p.retry_advice, 'do_not_retry');
      });

      it('the cancel button cancels the payment', async () => {
        const { id, redirectUrl } = await createPayment(t, { number: '4000000000003220' });
        const tab = await openTab(browser);
        try {
          await tab.page.goto(redirectUrl);
          await tab.page.getByRole('button', { name: /cancel/i }).click();
          const back = await returnPageOutcome(tab.page);
          assert.equal(back.status, 'cancelled');
          assert.equal(back.verdict, 'valid');
        } finally {
          await tab.close();
        }
        assert.equal((await payment(id)).status, 'cancelled');
        assert.equal(await cvcSealed(id), false);
        assert.deepEqual(await eventTypes(id), ['payment.created', 'payment.cancelled']);
      });

      it('expires after HOSTED_PAGE_TTL: the page says so and the CVC is erased', async () => {
        const { id, redirectUrl } = await createPayment(t, { number: '4000000000003220' });
        const tab = await openTab(browser);
        try {
          await tab.page.goto(redirectUrl);
          await tab.page.locator('input[name="otp"]').waitFor();
          assert.equal(await cvcSealed(id), true);
          t.clock.advance(t.config.hostedPageTtlMs + 1);
          await tab.page.reload();
          assert.match((await tab.page.locator('[role="status"]').textContent())!, /expired/i);
          assert.equal(await tab.page.locator('input[name="otp"]').count(), 0);
        } finally {
          await tab.close();
        }
        const p = await payment(id);
        assert.equal(p.status, 'expired');
        assert.equal(p.redirect_url, null);
        assert.deepEqual(await db().selectFrom('card_secrets').selectAll().where('payment_id', '=', id).execute(), [], 'the card ends with its page');
      });

      it('reopening a finished page shows the outcome and never charges again', async () => {
        const { id, redirectUrl } = await createPayment(t, { number: '4242424242424242' });
        const tab = await openTab(browser);
        try {
          await tab.page.goto(redirectUrl);
          await returnPageOutcome(tab.page);
          const events = await eventTypes(id);

          await tab.page.goBack();
          await tab.page.goto(redirectUrl);
          await tab.page.waitForLoadState('load');
          assert.equal(new URL(tab.page.url()).pathname, new URL(redirectUrl).pathname);
          assert.match((await tab.page.locator('[role="status"]').textContent())!, /complete/i);
          const back = tab.page.getByRole('link', { name: /return to sandbox shop/i });
          assert.match((await back.getAttribute('href'))!, /\/sandbox\/return\?payment_id=/);

          // A double submit from the old form is answered with the outcome, not a second charge.
          const csrf = await tab.page.context().cookies().then((c) => c.find((x) => x.name === 'tz_csrf')?.value);
          const replay = await tab.page.request.post(`${redirectUrl}/confirm`, { form: { csrf: csrf! }, maxRedirects: 0 });
          assert.equal(replay.status(), 303);
          assert.equal(replay.headers()['location'], `${new URL(redirectUrl).pathname}?return=1`);

          await back.click();
          assert.equal((await returnPageOutcome(tab.page)).verdict, 'valid');
          assert.deepEqual(await eventTypes(id), events);
        } finally {
          await tab.close();
        }
      });

      it('serves its pages with strict security headers and no inline script without a nonce', async () => {
        const { redirectUrl } = await createPayment(t, { number: '4000000000003220' });
        const tab = await openTab(browser);
        try {
          const res = await tab.page.goto(redirectUrl);
          const h = res!.headers();
          const csp = h['content-security-policy']!;
          const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)?.[1];
          assert.ok(nonce, csp);
          assert.ok(!csp.includes('unsafe-inline'), csp);
          assert.ok(!csp.includes('unsafe-eval'), csp);
          assert.match(csp, /frame-ancestors 'none'/);
          assert.match(csp, /default-src 'none'/);
          assert.match(csp, /base-uri 'none'/);
          // The forms end on the page itself (decision 0020): no other origin may receive a form, nor its CSRF field.
          assert.match(csp, /form-action 'self';/);
          assert.equal(h['x-frame-options'], 'DENY');
          assert.equal(h['referrer-policy'], 'same-origin');
          assert.equal(h['cache-control'], 'no-store');
          assert.equal(h['x-content-type-options'], 'nosniff');
          const cookie = (await res!.headerValue('set-cookie'))!;
          assert.match(cookie, /HttpOnly/);
          assert.match(cookie, /SameSite=Lax/);
          const html = await tab.page.content();
          for (const tag of html.match(/<(script|style)\b[^>]*>/g) ?? []) assert.ok(tag.includes(`nonce`), `${tag} has no nonce`);
          // A second load gets a new nonce.
          const again = await tab.page.reload();
          assert.notEqual(/'nonce-([^']+)'/.exec(again!.headers()['content-security-policy']!)?.[1], nonce);
        } finally {
          await tab.close();
        }
      });

      it('refuses POSTs without the CSRF cookie and field with a 403 page, charging nothing', async () => {
        const { id, redirectUrl } = await createPayment(t, { number: '4000000000003220' });
        const tab = await openTab(browser);
        try {
          await tab.page.goto(redirectUrl);
          const csrf = await tab.page.locator('input[name="csrf"]').first().inputValue();
          const noCookie = await fetch(`${redirectUrl}/challenge`, { method: 'POST', body: new URLSearchParams({ csrf, otp: '1234' }), redirect: 'manual' });
          assert.equal(noCookie.status, 403);
          assert.match(noCookie.headers.get('content-type')!, /text\/html/);
          const refusal = await noCookie.text();
          assert.match(refusal, /could not verify/);
          assert.match(refusal, new RegExp(`href="${new URL(redirectUrl).pathname}">Back to the payment page`));
          const noField = await tab.page.request.post(`${redirectUrl}/challenge`, { form: { otp: '1234' }, maxRedirects: 0 });
          assert.equal(noField.status(), 403);
          const wrongField = await tab.page.request.post(`${redirectUrl}/cancel`, { form: { csrf: csrf.slice(1) + 'x' }, maxRedirects: 0 });
          assert.equal(wrongField.status(), 403);
          assert.match(wrongField.headers()['content-security-policy']!, /frame-ancestors 'none'/);
        } finally {
          await tab.close();
        }
        assert.equal((await payment(id)).status, 'requires_action');
        assert.deepEqual(await eventTypes(id), ['payment.created']);
      });

      it('lets a customer whose browser keeps no cookie pay, and still refuses a form another site posts', async () => {
        // Without JavaScript, which would confirm a frictionless payment before the test acts.
        const paid = await createPayment(t, { number: '4242424242424242' });
        const tab = await openTab(browser, { javaScriptEnabled: false });
        try {
          await tab.page.goto(paid.redirectUrl);
          // Cookies blocked: the page's cookie is not kept, the form still carries its field.
          await tab.context.clearCookies();
          await tab.page.getByRole('button', { name: /^Pay USD 1\.00$/ }).click();
          assert.equal((await returnPageOutcome(tab.page)).status, 'captured');
        } finally {
          await tab.close();
        }

        const planted = await createPayment(t, { number: '4242424242424242' });
        const again = await openTab(browser, { javaScriptEnabled: false });
        try {
          const { hostname, pathname } = new URL(planted.redirectUrl);
          await again.context.addCookies([{ name: 'tz_csrf', value: '', domain: hostname, path: pathname }]);
          await again.page.goto(planted.redirectUrl);
          await again.page.getByRole('button', { name: /^Pay USD 1\.00$/ }).click();
          assert.equal((await returnPageOutcome(again.page)).status, 'captured', 'an empty cookie is replaced, not matched');
        } finally {
          await again.close();
        }

        const target = await createPayment(t, { number: '4242424242424242' });
        const elsewhere = createServer((_req, res) => {
          res.setHeader('content-type', 'text/html');
          res.end(`<form method="post" action="${target.redirectUrl}/cancel"><input name="csrf" value="x"></form><script>document.forms[0].submit()</script>`);
        });
        await new Promise<void>((resolve) => elsewhere.listen(0, '127.0.0.1', resolve));
        const attacked = await openTab(browser);
        try {
          const answered = attacked.page.waitForResponse((r) => r.url().endsWith('/cancel'));
          await attacked.page.goto(`http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}/`);
          assert.equal((await answered).status(), 403);
        } finally {
          await attacked.close();
          elsewhere.close();
        }
        assert.equal((await payment(target.id)).status, 'requires_action');
      });

      it('shows a not-found page for an unknown token', async () => {
        const tab = await openTab(browser);
        try {
          const res = await tab.page.goto(`${t.config.publicUrl}/pay/${'A'.repeat(43)}`);
          assert.equal(res?.status(), 404);
          assert.match((await tab.page.locator('h1').textContent())!, /not found/i);
        } finally {
          await tab.close();
        }
      });

      it("answers every other address under a page's URL with a page of its own, never the API's JSON", async () => {
        const { id, redirectUrl } = await createPayment(t, { number: '4242424242424242' });
        const pageHeaders = (h: Record<string, string>, what: string) => {
          assert.match(h['content-type']!, /^text\/html/, what);
          assert.match(h['content-security-policy']!, /frame-ancestors 'none'/, what);
          assert.equal(h['x-frame-options'], 'DENY', what);
          assert.equal(h['referrer-policy'], 'same-origin', what);
          assert.equal(h['cache-control'], 'no-store', what);
        };
        const tab = await openTab(browser);
        try {
          // A form's address typed again (or copied from the 403 page's address bar) leads to the page itself.
          await tab.page.goto(`${redirectUrl}/confirm`);
          assert.equal((await returnPageOutcome(tab.page)).status, 'captured');

          const stray = await tab.page.goto(`${redirectUrl}/receipt`);
          assert.equal(stray?.status(), 404);
          pageHeaders(stray!.headers(), 'GET /receipt');
          assert.match((await tab.page.locator('h1').textContent())!, /not found/i);
        } finally {
          await tab.close();
        }
        for (const [method, url, status] of [['POST', redirectUrl, 405], ['PUT', `${redirectUrl}/cancel`, 405], ['DELETE', `${redirectUrl}/x`, 404]] as const) {
          const res = await fetch(url, { method, redirect: 'manual' });
          assert.equal(res.status, status, `${method} ${url}`);
          pageHeaders(Object.fromEntries(res.headers), `${method} ${url}`);
          if (status === 405) assert.match(await res.text(), new RegExp(`href="${new URL(redirectUrl).pathname}"`));
        }
        assert.equal((await payment(id)).status, 'captured');
      });

      it('works without JavaScript: one click on Pay', async () => {
        const { id, redirectUrl } = await createPayment(t, { number: '4242424242424242' });
        const tab = await openTab(browser, { javaScriptEnabled: false });
        try {
          await tab.page.goto(redirectUrl);
          assert.equal((await payment(id)).status, 'requires_action');
          await tab.page.getByRole('button', { name: /^Pay USD 1\.00$/ }).click();
          assert.equal((await returnPageOutcome(tab.page)).status, 'captured');
        } finally {
          await tab.close();
        }
      });

      it("a page the merchant withdrew (void) before making another cannot be paid: the customer's old tab goes back cancelled", async () => {
        const { id, redirectUrl } = await createPayment(t, { number: '4242424242424242' });
        // Without scripts the page waits for Pay, as a tab left open does.
        const tab = await openTab(browser, { javaScriptEnabled: false });
        try {
          await tab.page.goto(redirectUrl);
          const withdrawn = await t.request({ method: 'POST', url: `/payment/${id}/void`, payload: {} });
          assert.equal(withdrawn.statusCode, 200, withdrawn.body);
          assert.equal(withdrawn.json().status, 'cancelled');
          await tab.page.getByRole('button', { name: /^Pay USD 1\.00$/ }).click();
          const back = await returnPageOutcome(tab.page);
          assert.equal(back.status, 'cancelled');
          assert.equal(back.verdict, 'valid');
        } finally {
          await tab.close();
        }
        assert.deepEqual(await eventTypes(id), ['payment.created', 'payment.cancelled']);
      });

      describe('the test card table', { concurrency: 3 }, () => {
        const cases: Array<[string, string, string, string | null, string | null]> = [
          ['5555555555554444', 'Mastercard', 'captured', null, null],
          ['2223003122003222', 'Mastercard 2-series', 'captured', null, null],
          ['378282246310005', 'Amex', 'captured', null, null],
          ['4000000000000002', 'do_not_honor', 'declined', 'do_not_honor', 'do_not_retry'],
          ['4000000000009995', 'insufficient_funds', 'declined', 'insufficient_funds', 'retry_later'],
          ['4000000000000069', 'expired_card', 'declined', 'expired_card', 'retry_with_new_details'],
          ['4000000000000127', 'incorrect_cvc', 'declined', 'incorrect_cvc', 'retry_with_new_details'],
          ['4000000000000119', 'processing error', 'failed', null, null],
          ['6011111111111117', 'any other valid card', 'captured', null, null],
        ];
        for (const [number, what, status, declineCode, advice] of cases) {
          it(`${number} (${what}) ends ${status}`, async () => {
            const { id, redirectUrl } = await createPayment(t, { number });
            const tab = await openTab(browser);
            try {
              await tab.page.goto(redirectUrl);
              const back = await returnPageOutcome(tab.page);
              assert.equal(back.status, status);
              assert.equal(back.verdict, 'valid');
              // The page from before the redirect tells the customer too.
              await tab.page.goto(redirectUrl);
              const notice = (await tab.page.locator('[role="status"]').textContent())!;
              assert.match(notice, status === 'captured' ? /complete/i : status === 'failed' ? /could not be processed/i : /declined/i);
            } finally {
              await tab.close();
            }
            const p = await payment(id);
            assert.equal(p.status, status);
            assert.equal(p.decline_code, declineCode);
            assert.equal(p.retry_advice, advice);
            if (status === 'captured') assert.ok(p.authorisation_code && p.network_reference);
            if (status === 'failed') assert.ok(p.failure_message);
            assert.equal(await cvcSealed(id), false);
          });
        }
      });

      describe("a merchant's own site on another origin", () => {
        // The merchant's pages: /return redirects on to /thanks on another origin (as http to
        // https or apex to www do), /checkout links to a payment page as a shop's button would.
        let shop: Server;
        let shopOrigin = '';
        const hits: string[] = [];
        before(async () => {
          shop = createServer((req, res) => {
            const url = new URL(req.url!, 'http://shop');
            hits.push(url.pathname);
            if (url.pathname === '/return') {
              res.writeHead(302, { location: `http://127.0.0.1:${(shop.address() as AddressInfo).port}/thanks${url.search}` }).end();
            } else if (url.pathname === '/checkout') {
              res.writeHead(200, { 'content-type': 'text/html' }).end(`<a id="pay" href="${url.searchParams.get('to')}">Pay</a>`);
            } else {
              res.writeHead(200, { 'content-type': 'text/html' }).end('<h1 id="thanks">Thank you</h1>');
            }
          });
          await new Promise<void>((resolve) => shop.listen(0, '127.0.0.1', resolve));
          // localhost: another site than the gateway's 127.0.0.1.
          shopOrigin = `http://localhost:${(shop.address() as AddressInfo).port}`;
        });
        after(() => new Promise<void>((resolve) => shop?.close(() => resolve())));

        let merchants = 0;
        const pay = async (number: string) => {
          const merchant = await createMerchant(t, `own-site-${dialect}-${++merchants}`, { returnUrls: [`${shopOrigin}/return`] });
          const res = await t.app.inject({
            method: 'POST',
            url: '/payment/authorise',
            headers: { 'x-secret-key': merchant.key.secret_key, 'content-type': 'application/json' },
            payload: JSON.stringify(await exampleBody({ channel: merchant.channel.reference, return_url: `${shopOrigin}/return`, payment_method: { number, cvc: '123' } })),
          });
          assert.equal(res.statusCode, 201, res.body);
          return { ...res.json<{ id: string; redirect_url: string }>(), key: merchant.key.secret_key };
        };

        for (const number of ['4242424242424242', '4000000000003220']) {
          it(`${number}: a return URL that redirects on brings the customer to the merchant's last page`, async () => {
            const p = await pay(number);
            const tab = await openTab(browser);
            try {
              await tab.page.goto(p.redirect_url);
              if (number.endsWith('3220')) {
                await tab.page.locator('#otp').fill('1234');
                await tab.page.getByRole('button', { name: /verify/i }).click();
              }
              await tab.page.waitForURL(/\/thanks\?/);
              const landed = new URL(tab.page.url());
              assert.deepEqual([landed.searchParams.get('payment_id'), landed.searchParams.get('status')], [p.id, 'captured']);
              assert.deepEqual(tab.console.filter((m) => /Content Security Policy|form-action|Refused/.test(m)), []);
            } finally {
              await tab.close();
            }
          });
        }

        it("a second tab opened from the merchant's site leaves the first one able to pay", async () => {
          const p = await pay('4000000000003220');
          const tab = await openTab(browser);
          try {
            const fromShop = async (page: typeof tab.page) => {
              await page.goto(`${shopOrigin}/checkout?to=${encodeURIComponent(p.redirect_url)}`);
              await page.locator('#pay').click();
              await page.locator('#otp').waitFor();
            };
            await fromShop(tab.page);
            const second = await tab.context.newPage();
            await fromShop(second);
            await tab.page.locator('#otp').fill('1234');
            await tab.page.getByRole('button', { name: /verify/i }).click();
            await tab.page.waitForURL(/\/thanks\?/);
            assert.equal(new URL(tab.page.url()).searchParams.get('status'), 'captured');
          } finally {
            await tab.close();
          }
          const final = await t.app.inject({ method: 'GET', url: `/payment/${p.id}`, headers: { 'x-secret-key': p.key } });
          assert.equal(final.json().status, 'captured');
        });
      });

      it('redirects only to a URL still registered on the channel', async () => {
        const shop = await createMerchant(t, `redirects-${dialect}`, { returnUrls: ['https://shop.example/a', 'https://shop.example/b'] });
        const res = await t.app.inject({
          method: 'POST',
          url: '/payment/authorise',
          headers: { 'x-secret-key': shop.key.secret_key, 'content-type': 'application/json' },
          payload: JSON.stringify(await exampleBody({ channel: shop.channel.reference, return_url: 'https://shop.example/b' })),
        });
        assert.equal(res.statusCode, 201, res.body);
        const { redirect_url: redirectUrl } = res.json();
        await t.gateway.services.merchants.updateChannel(shop.channel.reference, { returnUrls: ['https://shop.example/a'] });
        const path = new URL(redirectUrl).pathname;
        const page = await t.app.inject({ method: 'GET', url: path });
        const cookie = String(page.headers['set-cookie']).split(';')[0]!;
        const csrf = /name="csrf" value="([^"]+)"/.exec(page.body)![1]!;
        const done = await t.app.inject({ method: 'POST', url: `${path}/confirm`, headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' }, payload: `csrf=${encodeURIComponent(csrf)}` });
        const location = await merchantReturnAfter(t.app, done);
        assert.equal(location.origin + location.pathname, 'https://shop.example/a');
        assert.equal(location.searchParams.get('status'), 'captured');
        assert.match(String(page.headers['content-security-policy']), /form-action 'self';/);
      });
    });
  }
});

describe('hosted payment page on an address Chromium does not count as secure (plain http, not loopback)', () => {
  it('lets a customer whose browser keeps no cookie pay, on the Origin its form sends', async () => {
    const port = await freePort();
    // A sandbox reached by a name over plain http: no Sec-Fetch-Site is sent there, so the
    // form's Origin is all that says it came from the page.
    const t = await startTestGateway({ env: { PUBLIC_URL: `http://pay.test:${port}` } });
    await t.gateway.app.listen({ host: '127.0.0.1', port });
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--host-resolver-rules=MAP pay.test 127.0.0.1'],
    });
    try {
      const paid = await createPayment(t, { number: '4242424242424242' });
      const tab = await openTab(browser, { javaScriptEnabled: false });
      try {
        await tab.page.goto(paid.redirectUrl);
        await tab.context.clearCookies();
        const answered = tab.page.waitForResponse((r) => r.request().method() === 'POST');
        await tab.page.getByRole('button', { name: /^Pay USD 1\.00$/ }).click();
        const post = await answered;
        assert.equal((await post.request().allHeaders())['sec-fetch-site'], undefined, 'the case under test: no Sec-Fetch-Site');
        assert.equal(post.status(), 303, 'taken, not the 403 page');
        assert.equal((await returnPageOutcome(tab.page)).status, 'captured');
      } finally {
        await tab.close();
      }
    } finally {
      await browser.close();
      await t.close();
    }
  });
});

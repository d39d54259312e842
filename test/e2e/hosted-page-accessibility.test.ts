import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { after, before, describe, it } from 'node:test';
import type { Browser, Page } from 'playwright-core';
import { exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { createPayment, launchBrowser, openTab, returnPageOutcome } from '../support/browser.js';
import { createMerchant } from '../support/http.js';

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

interface Finding {
  id: string;
  impact: string | null;
  targets: string[];
}

/** axe-core's WCAG 2.1 A/AA rules on the page as it stands: evaluated over DevTools, so the page's CSP does not refuse it. */
async function seriousViolations(page: Page): Promise<Finding[]> {
  await page.evaluate(AXE_SOURCE);
  const found = await page.evaluate(async () => {
    type Axe = { run(ctx: unknown, opts: unknown): Promise<{ violations: Array<{ id: string; impact: string | null; nodes: Array<{ target: string[] }> }> }> };
    const axe = (globalThis as unknown as { axe: Axe }).axe;
    const result = await axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } });
    return result.violations.map((v) => ({ id: v.id, impact: v.impact, targets: v.nodes.flatMap((n) => n.target.map(String)) }));
  });
  return found.filter((f) => f.impact === 'serious' || f.impact === 'critical');
}

/** WCAG contrast ratio of two computed `rgb(...)` colours. */
function contrast(a: string, b: string): number {
  const lum = (rgb: string) => {
    const [r, g, bl] = rgb.match(/[\d.]+/g)!.slice(0, 3).map((v) => Number(v) / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4)) as [number, number, number];
    return 0.2126 * r + 0.7152 * g + 0.0722 * bl;
  };
  const [hi, lo] = [lum(a), lum(b)].sort((x, y) => y - x) as [number, number];
  return (hi + 0.05) / (lo + 0.05);
}

// The pages' markup and style do not depend on the database: one dialect keeps this file fast.
describe('hosted payment page accessibility (WCAG 2.1 AA) in Chromium', () => {
  let browser: Browser;
  let t: TestGateway;
  let shop: Awaited<ReturnType<typeof createMerchant>>;
  before(async () => {
    browser = await launchBrowser();
    t = await startTestGateway();
    await t.listen();
    shop = await createMerchant(t, 'a11y');
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  /** A payment on the test's own channel; returns its page URL. */
  const pay = async (number: string, extra: Record<string, unknown> = {}) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/payment/authorise',
      headers: { 'x-secret-key': shop.key.secret_key, 'content-type': 'application/json' },
      payload: JSON.stringify(await exampleBody({ channel: 'a11y', return_url: 'https://shop.example/return', payment_method: { number, cvc: '123' }, ...extra })),
    });
    assert.equal(res.statusCode, 201, res.body);
    return res.json<{ id: string; redirect_url: string }>();
  };

  it('reflows at 320 CSS px (400 % zoom of 1280): no horizontal scroll with the largest amount and long unbroken names', async () => {
    await t.gateway.services.merchants.updateChannel('a11y', { name: 'Supercalifragilisticexpialidocious-Haberdashery-and-Emporium-of-Everything-Online-Ltd' });
    try {
      const big = { amount: 999999999999, reference: 'R'.repeat(128) };
      const challenge = await pay('4000000000003220', big);
      const finished = await pay('4000000000003220', big);
      await t.gateway.services.checkout.cancel(new URL(finished.redirect_url).pathname.split('/')[2]!);
      const tab = await openTab(browser);
      try {
        await tab.page.setViewportSize({ width: 320, height: 640 });
        for (const url of [challenge.redirect_url, `${challenge.redirect_url}?error=wrong_code`, finished.redirect_url]) {
          await tab.page.goto(url);
          const [scroll, client] = await tab.page.evaluate(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth]);
          assert.ok(scroll <= client, `${new URL(url).search || new URL(url).pathname.slice(-6)}: ${scroll} px wide in a ${client} px viewport`);
        }
      } finally {
        await tab.close();
      }
    } finally {
      await t.gateway.services.merchants.updateChannel('a11y', { name: 'Shop a11y' });
    }
  });

  it("says in advance how long the page stays open (WCAG 2.2.1), with and without JavaScript", async () => {
    const ttlMinutes = t.config.hostedPageTtlMs / 60_000;
    const challenge = await pay('4000000000003220');
    const frictionless = await pay('4242424242424242');
    const tab = await openTab(browser);
    const noScript = await openTab(browser, { javaScriptEnabled: false });
    try {
      await tab.page.goto(challenge.redirect_url);
      const limit = tab.page.locator('#time-limit');
      assert.match((await limit.textContent())!, new RegExp(`open for ${ttlMinutes} more minutes`));
      // Before the field in reading order, so it is heard before the customer starts.
      assert.ok(await tab.page.evaluate(() => document.getElementById('time-limit')!.compareDocumentPosition(document.getElementById('otp')!) & Node.DOCUMENT_POSITION_FOLLOWING));
      t.clock.advance(t.config.hostedPageTtlMs - 4.5 * 60_000);
      await tab.page.reload();
      assert.match((await limit.textContent())!, /open for 4 more minutes/);
      t.clock.advance(4 * 60_000);
      await tab.page.reload();
      assert.match((await limit.textContent())!, /open for less than a minute/);

      await noScript.page.goto(frictionless.redirect_url);
      assert.match((await noScript.page.locator('#time-limit').textContent())!, /open for less than a minute/);
    } finally {
      await tab.close();
      await noScript.close();
    }
  });

  it('works with the keyboard alone: focus starts in the field, Tab reaches each button with a visible focus, Enter submits', async () => {
    const { id, redirectUrl } = await createPayment(t, { number: '4000000000003220' });
    const tab = await openTab(browser);
    try {
      await tab.page.goto(redirectUrl);
      const focused = () =>
        tab.page.evaluate(() => {
          const el = document.activeElement as HTMLElement;
          const style = getComputedStyle(el);
          return { name: el.id || el.textContent!.trim(), outline: style.outlineStyle, outlineWidth: parseFloat(style.outlineWidth) };
        });
      assert.equal((await focused()).name, 'otp');
      const seen: string[] = [];
      for (let i = 0; i < 2; i++) {
        await tab.page.keyboard.press('Tab');
        const f = await focused();
        seen.push(f.name);
        assert.ok(f.outline !== 'none' && f.outlineWidth > 0, `${f.name}: no visible focus (${f.outline} ${f.outlineWidth}px)`);
      }
      assert.deepEqual(seen, ['Verify and pay', 'Cancel payment']);
      await tab.page.keyboard.press('Shift+Tab');
      await tab.page.keyboard.press('Shift+Tab');
      assert.equal((await focused()).name, 'otp');
      await tab.page.keyboard.type('1234');
      await tab.page.keyboard.press('Enter');
      assert.equal((await returnPageOutcome(tab.page)).status, 'captured');
    } finally {
      await tab.close();
    }
    assert.equal((await t.request({ method: 'GET', url: `/payment/${id}` })).json().status, 'captured');
  });

  it("shows the field's edge at 3:1 against the card, and its focus at 3:1 too (WCAG 1.4.11)", async () => {
    const { redirect_url } = await pay('4000000000003220');
    const tab = await openTab(browser);
    try {
      await tab.page.goto(redirect_url);
      const colours = (focus: boolean) =>
        tab.page.evaluate((focus) => {
          const field = document.getElementById('otp')!;
          if (focus) field.focus();
          else field.blur();
          const style = getComputedStyle(field);
          return { border: style.borderTopColor, card: getComputedStyle(field.closest('.card')!).backgroundColor };
        }, focus);
      for (const focus of [false, true]) {
        const c = await colours(focus);
        assert.ok(contrast(c.border, c.card) >= 3, `${focus ? 'focused' : 'unfocused'} field edge ${c.border} on ${c.card}: ${contrast(c.border, c.card).toFixed(2)}:1`);
      }
    } finally {
      await tab.close();
    }
  });

  it('has no serious or critical axe-core finding on any page the customer can see', async () => {
    const db = t.gateway.services.ctx.database.db;
    const token = (url: string) => new URL(url).pathname.split('/')[2]!;
    const challenge = await pay('4000000000003220');
    const frictionless = await pay('4242424242424242');
    const processing = await pay('4000000000003220');
    await db.updateTable('checkout_sessions').set({ state: 'processing' }).where('payment_id', '=', processing.id).execute();
    const outcomes = await Promise.all(['4242424242424242', '4000000000000002', '4000000000003220'].map((n) => pay(n)));
    await t.gateway.services.checkout.complete(token(outcomes[0]!.redirect_url));
    await t.gateway.services.checkout.complete(token(outcomes[1]!.redirect_url));
    await t.gateway.services.checkout.cancel(token(outcomes[2]!.redirect_url));
    const refused = await fetch(`${challenge.redirect_url}/challenge`, { method: 'POST', body: new URLSearchParams({ csrf: 'x', otp: '1' }), redirect: 'manual' });
    const notAllowed = await fetch(challenge.redirect_url, { method: 'POST', redirect: 'manual' });
    const pages: Array<[string, string | Promise<string>]> = [
      ['challenge', challenge.redirect_url],
      ['wrong code', `${challenge.redirect_url}?error=wrong_code`],
      ['no code', `${challenge.redirect_url}?error=no_code`],
      ['frictionless', frictionless.redirect_url],
      ['processing', processing.redirect_url],
      ['captured', outcomes[0]!.redirect_url],
      ['declined', outcomes[1]!.redirect_url],
      ['cancelled', outcomes[2]!.redirect_url],
      ['not found', `${t.config.publicUrl}/pay/${'A'.repeat(43)}`],
      ['403', refused.text()],
      ['405', notAllowed.text()],
    ];
    const tab = await openTab(browser);
    let suspended = false;
    try {
      // The frictionless page submits itself: a 204 to its form leaves it on screen.
      await tab.page.route(`${frictionless.redirect_url}/confirm`, (route) => route.fulfill({ status: 204 }));
      for (const [what, where] of pages) {
        if (what === 'frictionless') {
          const held = tab.page.waitForResponse((r) => r.status() === 204);
          await tab.page.goto(where as string, { waitUntil: 'commit' });
          await held;
        } else if (typeof where === 'string') await tab.page.goto(where);
        else await tab.page.setContent(await where);
        assert.deepEqual(await seriousViolations(tab.page), [], what);
      }
      await t.gateway.services.merchants.suspendMerchant(shop.merchantId, 'accessibility test');
      suspended = true;
      await tab.page.goto(challenge.redirect_url);
      assert.match((await tab.page.title()), /cannot be completed/);
      // Its heading says so too: a suspended merchant's page offers no payment to make.
      assert.deepEqual(await tab.page.locator('h1').allTextContents(), ['Payment cannot be completed']);
      assert.deepEqual(await seriousViolations(tab.page), [], 'suspended');
    } finally {
      await tab.close();
      if (suspended) await t.gateway.services.merchants.resumeMerchant(shop.merchantId);
    }
  });

  it('does not reload a page being processed where scripts run, and goes on once the bank has answered', async () => {
    const db = t.gateway.services.ctx.database.db;
    const p = await pay('4000000000003220');
    await db.updateTable('checkout_sessions').set({ state: 'processing' }).where('payment_id', '=', p.id).execute();
    const tab = await openTab(browser);
    try {
      await tab.page.goto(p.redirect_url);
      assert.match((await tab.page.locator('#processing').textContent())!, /Processing your payment/);
      assert.equal(await tab.page.locator('meta[http-equiv="refresh"]').count(), 0);
      assert.match((await tab.page.locator('#processing-hint').textContent())!, /checks again every 3 seconds/);
      await tab.page.evaluate(() => Object.assign(globalThis, { loadedOnce: true }));
      await new Promise((r) => setTimeout(r, 4_000));
      assert.equal(await tab.page.evaluate(() => (globalThis as { loadedOnce?: boolean }).loadedOnce), true, 'the page reloaded itself');
      // Answered (here: the page handed back to the customer): the page moves on by itself.
      await db.updateTable('checkout_sessions').set({ state: 'open' }).where('payment_id', '=', p.id).execute();
      await tab.page.locator('#otp').waitFor({ timeout: 8_000 });
      assert.deepEqual(tab.console.filter((m) => /Content Security Policy|Refused/.test(m)), []);
    } finally {
      await tab.close();
    }
  });

  it('names a wrong or missing code in the title, which a screen reader reads first as the page loads', async () => {
    const { redirect_url } = await pay('4000000000003220');
    const tab = await openTab(browser);
    try {
      await tab.page.goto(redirect_url);
      assert.equal(await tab.page.title(), 'Verify your payment');
      await tab.page.goto(`${redirect_url}?error=wrong_code`);
      assert.equal(await tab.page.title(), 'Error: wrong code – Verify your payment');
      await tab.page.goto(`${redirect_url}?error=no_code`);
      assert.equal(await tab.page.title(), 'Error: no code entered – Verify your payment');
    } finally {
      await tab.close();
    }
  });

  it('warns, in an assertive live region, a minute before the page closes where scripts run', async () => {
    const { redirect_url } = await pay('4000000000003220');
    const tab = await openTab(browser);
    try {
      t.clock.advance(t.config.hostedPageTtlMs - 61_500);
      await tab.page.goto(redirect_url);
      const warning = tab.page.locator('#time-warning');
      // The live region is there from the start: text put into it is read out, a region added with its text often is not.
      assert.equal(await warning.getAttribute('aria-live'), 'assertive');
      assert.equal(await warning.textContent(), '');
      await tab.page.waitForFunction(() => document.getElementById('time-warning')!.textContent !== '', undefined, { timeout: 5_000 });
      assert.match((await warning.textContent())!, /closes in less than a minute/);
    } finally {
      await tab.close();
    }
  });

  it("heads a finished payment's page with what happened, not the Pay heading of the payment still to make", async () => {
    const token = (url: string) => new URL(url).pathname.split('/')[2]!;
    const cancelled = await pay('4000000000003220');
    await t.gateway.services.checkout.cancel(token(cancelled.redirect_url));
    const declined = await pay('4000000000000002');
    await t.gateway.services.checkout.complete(token(declined.redirect_url));
    const expired = await pay('4000000000003220');
    t.clock.advance(t.config.hostedPageTtlMs + 1_000);
    const tab = await openTab(browser);
    try {
      for (const [p, heading] of [
        [cancelled, 'Payment cancelled'],
        [declined, 'Payment declined'],
        [expired, 'Payment link expired'],
      ] as const) {
        await tab.page.goto(p.redirect_url);
        assert.deepEqual(await tab.page.locator('h1').allTextContents(), [heading]);
        // Whom it was for is still on the page, under the heading.
        assert.match((await tab.page.locator('.merchant').textContent())!, /Shop a11y/);
      }
      // One paid in the browser, found again with Back from the merchant's site.
      const paid = await pay('4000000000003220');
      await tab.page.route('https://shop.example/**', (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<title>Shop</title>' }));
      await tab.page.goto(paid.redirect_url);
      assert.deepEqual(await tab.page.locator('h1').allTextContents(), ['Pay Shop a11y']);
      await tab.page.locator('#otp').fill('1234');
      await tab.page.getByRole('button', { name: 'Verify and pay' }).click();
      await tab.page.waitForURL(/^https:\/\/shop\.example\/return\?/);
      // Back from the merchant's page: the payment page says what happened, and stays.
      await tab.page.goBack();
      assert.equal(new URL(tab.page.url()).pathname, new URL(paid.redirect_url).pathname);
      assert.deepEqual(await tab.page.locator('h1').allTextContents(), ['Payment complete']);
    } finally {
      await tab.close();
    }
  });

  it('never refreshes a page being processed without JavaScript (WCAG 2.2.1): the customer presses Check now, then goes on', async () => {
    const db = t.gateway.services.ctx.database.db;
    const p = await pay('4000000000003220');
    await db.updateTable('checkout_sessions').set({ state: 'processing' }).where('payment_id', '=', p.id).execute();
    const tab = await openTab(browser, { javaScriptEnabled: false });
    try {
      await tab.page.route('https://shop.example/**', (route) => route.fulfill({ status: 200, contentType: 'text/html', body: '<title>Shop</title>' }));
      await tab.page.goto(p.redirect_url);
      assert.match((await tab.page.locator('#processing').textContent())!, /Processing your payment/);
      assert.equal(await tab.page.locator('meta[http-equiv="refresh"]').count(), 0);
      // Says what there is to do, and promises no checking the page does not do without scripts.
      const text = (await tab.page.locator('.card').textContent())!;
      assert.doesNotMatch(text, /checks again|every \d+ seconds/);
      assert.match(text, /Press Check now/);
      // The bank answers (here: the page handed back, then cancelled): the customer's press takes them on.
      await db.updateTable('checkout_sessions').set({ state: 'open' }).where('payment_id', '=', p.id).execute();
      await t.gateway.services.checkout.cancel(new URL(p.redirect_url).pathname.split('/')[2]!);
      await tab.page.getByRole('link', { name: 'Check now' }).click();
      await tab.page.waitForURL(/^https:\/\/shop\.example\/return\?/);
      assert.equal(new URL(tab.page.url()).searchParams.get('status'), 'cancelled');
    } finally {
      await tab.close();
    }
  });
});

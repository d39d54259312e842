import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { launchBrowser, openTab } from '../support/browser.js';
import { createMerchant } from '../support/http.js';

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
});

import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { launchBrowser } from '../support/browser.js';
import { paidPayment, waitFor } from '../webhooks/support.js';

// The quick start's "open the inbox in a browser" (decision 0031): the browser asks for the key.
describe('the sandbox inbox in Chromium', () => {
  let browser: Browser;
  let t: TestGateway;
  let base: string;
  before(async () => {
    browser = await launchBrowser();
    t = await startTestGateway({ workers: true, env: { DISPATCH_POLL_MS: '50' } });
    base = await t.listen();
    await paidPayment(t, { reference: 'inbox-browser' });
    const mail = join(t.dataDir, 'mail');
    await waitFor('the e-mails', () => existsSync(mail) && readdirSync(mail).filter((n) => n.endsWith('.eml')).length >= 2);
  });
  after(async () => {
    await browser?.close();
    await t?.close();
  });

  it('challenges a browser that gives no key, and shows it nothing', async () => {
    // Headless Chromium cannot show the sign-in box a person would get: its request context reads the answer.
    const context = await browser.newContext();
    try {
      const res = await context.request.get(`${base}/sandbox/inbox`);
      assert.equal(res.status(), 401);
      assert.match(res.headers()['www-authenticate'] ?? '', /^Basic realm="[^"]+"/);
      const text = await res.text();
      assert.ok(!text.includes('merchant@sandbox.test'), text);
      assert.ok(!text.includes('inbox-browser'), text);
    } finally {
      await context.close();
    }
  });

  it('lists and opens the messages once signed in with the secret key as the password', async () => {
    const context = await browser.newContext({ httpCredentials: { username: 'me', password: t.credentials.secret_key } });
    context.setDefaultTimeout(15_000);
    try {
      const page = await context.newPage();
      const res = await page.goto(`${base}/sandbox/inbox`);
      assert.equal(res?.status(), 200);
      const link = page.locator('#inbox a', { hasText: 'captured' });
      await link.click();
      await page.waitForURL(/\/sandbox\/inbox\/del_[0-9a-f]{32}\.eml$/);
      assert.match((await page.locator('#subject').textContent()) ?? '', /captured: USD 1\.00 \(inbox-browser\)/);
      assert.equal(await page.locator('#to').textContent(), 'merchant@sandbox.test');
    } finally {
      await context.close();
    }
  });
});

import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core';
import { exampleBody, type TestGateway } from './gateway.js';

/** Debian's Chromium, never a downloaded one; one per test file, a fresh context per flow. */
export function launchBrowser(): Promise<Browser> {
  return chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
}

export interface CustomerTab {
  context: BrowserContext;
  page: Page;
  /** Console messages, so a test can assert the page broke no CSP rule. */
  console: string[];
  close(): Promise<void>;
}

export async function openTab(browser: Browser, opts: { javaScriptEnabled?: boolean } = {}): Promise<CustomerTab> {
  const context = await browser.newContext({ javaScriptEnabled: opts.javaScriptEnabled ?? true });
  context.setDefaultTimeout(15_000);
  const page = await context.newPage();
  const messages: string[] = [];
  page.on('console', (m) => messages.push(`${m.type()}: ${m.text()}`));
  return { context, page, console: messages, close: () => context.close() };
}

/** What the sandbox return page shows once the customer is back "on the merchant's site". */
export async function returnPageOutcome(page: Page): Promise<{ url: URL; verdict: string | null; status: string | null; paymentId: string | null }> {
  await page.waitForURL(/\/sandbox\/return\?/);
  return {
    url: new URL(page.url()),
    verdict: await page.locator('#signature-verdict').getAttribute('data-verdict'),
    status: await page.locator('#status').textContent(),
    paymentId: await page.locator('#payment-id').textContent(),
  };
}

/** Polls `fn` until it returns something truthy or the deadline passes. */
export async function eventually<T>(fn: () => Promise<T | undefined | null | false>, what: string, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Creates a payment with the spec's example and the given card; returns its id and page URL. */
export async function createPayment(t: TestGateway, card: { number: string; cvc?: string }, overrides: Record<string, unknown> = {}): Promise<{ id: string; redirectUrl: string }> {
  const body = await exampleBody({ payment_method: { number: card.number, cvc: card.cvc ?? (card.number.startsWith('3') ? '1234' : '123') }, ...overrides });
  const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: body });
  if (res.statusCode !== 201) throw new Error(`authorise answered ${res.statusCode}: ${res.body}`);
  const p = res.json<{ id: string; redirect_url: string }>();
  return { id: p.id, redirectUrl: p.redirect_url };
}

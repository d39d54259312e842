import type { RequestSpec } from 'autocannon';
import { type Body, bodyFactory } from './bodies.js';
import { Samples } from './load.js';

/** Which later features exist on the running gateway; absent ones are reported, not crashed on. */
export interface Features {
  capture: boolean;
  webhooks: boolean;
  listPayments: boolean;
}

export function jsonHeaders(key: string): Record<string, string> {
  return { 'content-type': 'application/json', 'x-secret-key': key };
}

async function routeExists(url: string, key: string, method: string, path: string, body?: string): Promise<boolean> {
  const res = await fetch(url + path, { method, headers: body === undefined ? { 'x-secret-key': key } : jsonHeaders(key), ...(body === undefined ? {} : { body }) });
  const text = await res.text();
  if (res.status !== 404) return true;
  try {
    return (JSON.parse(text) as { code?: string }).code !== 'route_not_found';
  } catch {
    return true;
  }
}

export async function probeFeatures(url: string, key: string): Promise<Features> {
  const none = 'pay_00000000000000000000000000000000';
  return {
    capture: await routeExists(url, key, 'POST', `/payment/${none}/capture`, '{}'),
    webhooks: await routeExists(url, key, 'GET', '/webhook-endpoints'),
    listPayments: await routeExists(url, key, 'GET', '/payments?limit=1'),
  };
}

/** Whole customer journeys counted as they finish, with their end-to-end time. */
export class FlowTally {
  done = 0;
  readonly latencies = new Samples();
  readonly failures: Record<string, number> = {};

  fail(reason: string): void {
    this.failures[reason] = (this.failures[reason] ?? 0) + 1;
  }

  get failed(): number {
    return Object.values(this.failures).reduce((a, b) => a + b, 0);
  }
}

function header(headers: Record<string, string | string[]>, name: string): string | undefined {
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === name) return Array.isArray(v) ? v[0] : v;
  return undefined;
}

interface FlowContext {
  t0?: number;
  id?: string;
  page?: string;
  cookie?: string;
  csrf?: string;
  /** Where the confirm's 303 sent the browser on the gateway. */
  landing?: string;
}

/** Gateways before the page-landing return (decision 0020) sent the confirm's 303 straight to the merchant. */
const NO_LANDING = '/healthz';

/**
 * The customer-initiated flow over HTTP, as a browser and the merchant's server would
 * drive it: authorise → GET the hosted page (CSRF cookie + form field) → POST confirm
 * (303 to the page, decision 0020) → GET that page, which sends the customer to the merchant
 * → capture when the payment was authorised with capture "manual". A step that fails ends
 * that journey (autocannon starts the next one). For a checkout from before decision 0020,
 * whose 303 went to the merchant, the landing step asks /healthz instead, so `bench:ab` can
 * still compare across it (one near-free request a journey on that side).
 */
export function citFlow(key: string, runId: string, manualCapture: boolean, tally: FlowTally): RequestSpec[] {
  const body = bodyFactory(runId, (b: Body) => ({ ...b, capture: manualCapture ? 'manual' : 'auto' }), { distinctCustomers: true });
  const json = jsonHeaders(key);
  const wanted = manualCapture ? 'authorised' : 'captured';
  let n = 0;
  const finish = (c: FlowContext) => {
    tally.done++;
    tally.latencies.add(performance.now() - c.t0!);
  };
  const steps: RequestSpec[] = [
    {
      method: 'POST',
      path: '/payment/authorise',
      headers: json,
      setupRequest: (req, ctx) => {
        (ctx as FlowContext).t0 = performance.now();
        return { ...req, method: 'POST', path: '/payment/authorise', headers: json, body: body(n++) };
      },
      onResponse: (status, text, ctx) => {
        const c = ctx as FlowContext;
        if (status !== 201) return tally.fail(`authorise ${status}`);
        const payment = JSON.parse(text) as { id: string; redirect_url: string | null };
        if (!payment.redirect_url) return tally.fail('authorise without redirect_url');
        c.id = payment.id;
        c.page = new URL(payment.redirect_url).pathname;
      },
    },
    {
      method: 'GET',
      setupRequest: (req, ctx) => {
        const c = ctx as FlowContext;
        return c.page ? { ...req, method: 'GET', path: c.page, headers: {}, body: '' } : null;
      },
      onResponse: (status, text, ctx, headers) => {
        const c = ctx as FlowContext;
        const cookie = /tz_csrf=([^;]+)/.exec(header(headers, 'set-cookie') ?? '')?.[1];
        const csrf = /name="csrf" value="([^"]+)"/.exec(text)?.[1];
        if (status !== 200 || !cookie || !csrf) {
          c.page = undefined;
          return tally.fail(`hosted page ${status}`);
        }
        c.cookie = cookie;
        c.csrf = csrf;
      },
    },
    {
      method: 'POST',
      setupRequest: (req, ctx) => {
        const c = ctx as FlowContext;
        if (!c.page || !c.csrf) return null;
        return {
          ...req,
          method: 'POST',
          path: `${c.page}/confirm`,
          headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `tz_csrf=${c.cookie}` },
          body: `csrf=${encodeURIComponent(c.csrf)}`,
        };
      },
      onResponse: (status, _text, ctx, headers) => {
        const c = ctx as FlowContext;
        const location = header(headers, 'location') ?? '';
        const direct = /[?&]status=([a-z_]+)/.exec(location)?.[1];
        if (status === 303 && direct === wanted) c.landing = NO_LANDING;
        else if (status === 303 && direct === undefined && location.startsWith('/pay/')) c.landing = location;
        else {
          c.id = undefined;
          return tally.fail(`confirm ${status} → ${direct ?? (location || 'no location')}`);
        }
      },
    },
    {
      method: 'GET',
      setupRequest: (req, ctx) => {
        const c = ctx as FlowContext;
        return c.landing ? { ...req, method: 'GET', path: c.landing, headers: {}, body: '' } : null;
      },
      onResponse: (status, text, ctx) => {
        const c = ctx as FlowContext;
        const outcome = c.landing === NO_LANDING ? wanted : /id="return" href="[^"]*?(?:\?|&amp;)status=([a-z_]+)/.exec(text)?.[1];
        if (status !== 200 || outcome !== wanted) {
          c.id = undefined;
          return tally.fail(`landing ${status} → ${outcome ?? 'no status'}`);
        }
        if (!manualCapture) finish(c);
      },
    },
  ];
  if (manualCapture) {
    steps.push({
      method: 'POST',
      setupRequest: (req, ctx) => {
        const c = ctx as FlowContext;
        return c.id ? { ...req, method: 'POST', path: `/payment/${c.id}/capture`, headers: json, body: '{}' } : null;
      },
      onResponse: (status, text, ctx) => {
        const c = ctx as FlowContext;
        const captured = status >= 200 && status < 300 && (JSON.parse(text) as { status?: string }).status === 'captured';
        if (!captured) return tally.fail(`capture ${status}`);
        finish(c);
      },
    });
  }
  return steps;
}

/** One CIT journey by fetch (for setting up a stored card); returns the payment id or why it failed. */
export async function oneCit(url: string, key: string, body: string): Promise<{ id: string } | { error: string }> {
  const a = await fetch(`${url}/payment/authorise`, { method: 'POST', headers: jsonHeaders(key), body });
  const payment = (await a.json()) as { id: string; redirect_url: string | null; code?: string };
  if (a.status !== 201 || !payment.redirect_url) return { error: `authorise ${a.status} ${payment.code ?? ''}`.trim() };
  const page = await fetch(payment.redirect_url);
  const cookie = /tz_csrf=([^;]+)/.exec(page.headers.get('set-cookie') ?? '')?.[1];
  const csrf = /name="csrf" value="([^"]+)"/.exec(await page.text())?.[1];
  if (!cookie || !csrf) return { error: `hosted page ${page.status}` };
  const confirm = await fetch(`${payment.redirect_url}/confirm`, {
    method: 'POST',
    redirect: 'manual',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `tz_csrf=${cookie}` },
    body: `csrf=${encodeURIComponent(csrf)}`,
  });
  if (confirm.status !== 303) return { error: `confirm ${confirm.status}` };
  return { id: payment.id };
}

/** Payment sub-types a subsequent merchant-initiated charge may be named by; the first the gateway accepts is used. */
const MIT_SUB_TYPES = ['recurring-subsequent', 'recurring', 'unscheduled-subsequent', 'unscheduled'];

export type MitSetup = { ok: true; body: (n: number) => string; subType: string } | { ok: false; reason: string };

/**
 * Merchant-initiated payments need a stored card: one CIT with store_for_future_use
 * (the spec's example already asks for it) must come back with a `pm_…` token.
 */
export async function setupMit(url: string, key: string, runId: string): Promise<MitSetup> {
  const initial = await oneCit(url, key, bodyFactory(`${runId}-initial`)(0));
  if ('error' in initial) return { ok: false, reason: `the initial CIT failed: ${initial.error}` };
  const got = await fetch(`${url}/payment/${initial.id}`, { headers: { 'x-secret-key': key } });
  const payment = (await got.json()) as { payment_method?: { token?: string | null }; network_reference?: string | null };
  const token = payment.payment_method?.token;
  if (!token) return { ok: false, reason: 'no stored-card token (payment_method.token) after a CIT with store_for_future_use (issue 6)' };
  let last = '';
  for (const subType of MIT_SUB_TYPES) {
    const body = bodyFactory(`${runId}-mit`, (b: Body) => {
      const { device_info: _d, ...rest } = b;
      return {
        ...rest,
        payment_method: { type: 'token', token },
        payment_data: { payment_type: 'mit', payment_sub_type: subType, credential_on_file: true, industry_usage: 'none', previous_payment_id: initial.id },
      };
    });
    const res = await fetch(`${url}/payment/authorise`, { method: 'POST', headers: jsonHeaders(key), body: body(0) });
    const r = (await res.json()) as { status?: string; code?: string; detail?: string };
    if (res.status === 201 && (r.status === 'authorised' || r.status === 'captured')) return { ok: true, body: (n) => body(n + 1), subType };
    last = `HTTP ${res.status} ${r.status ?? r.code ?? ''}: ${r.detail ?? ''}`.trim();
  }
  return { ok: false, reason: `a token MIT was not accepted (${last})` };
}

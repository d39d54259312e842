import { randomBytes } from 'node:crypto';
import type { FastifyReply } from 'fastify';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function esc(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

/** Tagged template whose interpolations are escaped unless already marked safe. */
export class Safe {
  constructor(readonly html: string) {}
  toString(): string {
    return this.html;
  }
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Safe {
  let out = strings[0]!;
  values.forEach((v, i) => {
    const piece = Array.isArray(v) ? v.map((x) => (x instanceof Safe ? x.html : esc(x))).join('') : v instanceof Safe ? v.html : esc(v);
    out += piece + strings[i + 1]!;
  });
  return new Safe(out);
}

export function newNonce(): string {
  return randomBytes(16).toString('base64');
}

const STYLE = `
:root{--fg:#14213d;--muted:#5c677d;--line:#d9dee7;--accent:#1d4ed8;--ok:#15803d;--bad:#b91c1c;--bg:#f5f7fb}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:28rem;margin:2rem auto;padding:0 1rem}
.card{background:#fff;border:1px solid var(--line);border-radius:12px;padding:1.5rem;box-shadow:0 1px 3px rgba(0,0,0,.05)}
h1{font-size:1.25rem;margin:0 0 .25rem;overflow-wrap:anywhere}.merchant{color:var(--muted);margin:0 0 1rem;overflow-wrap:anywhere}
.amount{font-size:2rem;font-weight:600;margin:.5rem 0;overflow-wrap:anywhere}
dl{display:grid;grid-template-columns:auto 1fr;gap:.25rem 1rem;margin:1rem 0}dt{color:var(--muted)}dd{margin:0;font-variant-numeric:tabular-nums;overflow-wrap:anywhere}
label{display:block;font-weight:600;margin:1rem 0 .25rem}
input[type=text]{width:100%;font-size:1.25rem;padding:.6rem .75rem;border:1px solid var(--muted);border-radius:8px;letter-spacing:.2em}
input[type=text]:focus{outline:3px solid #93c5fd;border-color:var(--accent)}
.actions{display:flex;gap:.75rem;margin-top:1.25rem;flex-wrap:wrap}
button,.button{appearance:none;border:0;border-radius:8px;padding:.7rem 1.2rem;font:inherit;font-weight:600;cursor:pointer;text-decoration:none;display:inline-block;max-width:100%;overflow-wrap:anywhere}
.primary{background:var(--accent);color:#fff}.secondary{background:#e8ecf3;color:var(--fg)}
.notice{padding:.75rem 1rem;border-radius:8px;margin:1rem 0}.notice.ok{background:#dcfce7;color:var(--ok)}.notice.bad{background:#fee2e2;color:var(--bad)}.notice.info{background:#e0e7ff}
.sr-only{position:absolute;width:1px;height:1px;margin:-1px;padding:0;overflow:hidden;clip:rect(0,0,0,0);white-space:nowrap;border:0}
.hint{color:var(--muted);font-size:.9rem}footer{text-align:center;color:var(--muted);font-size:.8rem;margin-top:1rem}
`;

export function page(title: string, nonce: string, body: Safe, extraHead: Safe = new Safe(''), wide = false): string {
  const style = wide ? STYLE.replace('max-width:28rem', 'max-width:60rem') : STYLE;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="referrer" content="same-origin"><link rel="icon" href="data:,"><title>${title}</title><style nonce="${nonce}">${new Safe(style)}</style>${extraHead}</head>
<body><main>${body}<footer>Secured by tZero Pay</footer></main></body></html>`.html;
}

/**
 * Headers every gateway page carries: no framing, no caching, no referrer leaking the
 * page token to another origin, and a CSP that allows only this response's nonce for style
 * and script. `same-origin`, not `no-referrer`: under `no-referrer` a browser sends its form's
 * POST with `Origin: null`, and a customer whose browser keeps no cookie and sends no
 * Sec-Fetch-Site (plain http, older browsers) could never pay (plugins/checkout.ts). Forms
 * post to this origin only: the hosted page's forms end on the page, which then sends the
 * customer on by script (decision 0020), so no merchant origin needs to receive a form.
 * `connect-src 'self'`: the processing page asks its own URL whether the bank has answered.
 */
export function securePageHeaders(reply: FastifyReply, nonce: string): FastifyReply {
  return reply
    .header('content-type', 'text/html; charset=utf-8')
    .header(
      'content-security-policy',
      `default-src 'none'; style-src 'nonce-${nonce}'; script-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'`,
    )
    .header('x-frame-options', 'DENY')
    .header('referrer-policy', 'same-origin')
    .header('cache-control', 'no-store')
    .header('x-content-type-options', 'nosniff');
}

import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import { DomainError } from '../../domain/errors.js';
import { html, newNonce, page, Safe, securePageHeaders } from '../pages/html.js';
import { passagesFor } from '../error-types.js';
import { statusTitle } from '../problem.js';

interface OpenApiOperation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: unknown[];
  parameters?: Array<{ name: string; in: string; required?: boolean; description?: string }>;
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { description?: string }>;
}

/** Descriptions use Markdown backticks for code; everything else stays escaped text. */
function prose(text: string | undefined): Safe[] {
  return (text ?? '').split(/(`[^`]+`)/).map((part) => (part.startsWith('`') && part.endsWith('`') ? html`<code>${part.slice(1, -1)}</code>` : html`${part}`));
}

const ErrorTypeParams = Type.Object({ code: Type.String({ pattern: '^[a-z][a-z0-9_]*$', maxLength: 64 }) });

const DOCS_STYLE = 'section.card{margin-top:1rem}section.card h2{font-size:1.1rem;margin:0 0 .5rem}nav ul{columns:2;padding-left:1.2rem}pre{overflow:auto;font-size:.8rem;background:#f5f7fb;padding:.75rem;border-radius:8px}';

/** The OpenAPI document generated from the route schemas, and a readable page built from it. */
export const docsRoutes = (): FastifyPluginAsync => async (app) => {
  // Public and the same for everyone until the gateway is upgraded: caches may keep it a while.
  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) =>
    reply.header('content-type', 'application/json; charset=utf-8').header('cache-control', 'public, max-age=300').send(JSON.stringify(app.swagger())),
  );

  /**
   * What a problem's `type` resolves to (decision 0034): where the documents this gateway
   * ships and its OpenAPI document name the code, read from them, so the page says what
   * they say. JSON for a client library; HTML for a browser that asks for it.
   */
  app.get<{ Params: { code: string } }>('/errors/:code', { schema: { hide: true, params: ErrorTypeParams } }, async (request, reply) => {
    const { code } = request.params;
    const passages = passagesFor(code, app.swagger() as Parameters<typeof passagesFor>[1]);
    if (passages.length === 0) throw new DomainError(404, 'error_type_not_found', `no error code "${code}" is documented on this gateway; see /docs`, '/params/code');
    const statuses = [...new Set(passages.flatMap((p) => (p.status === undefined ? [] : [p.status])))].sort((a, b) => a - b);
    void reply.header('cache-control', 'public, max-age=300').header('vary', 'accept');
    if (!/\btext\/html\b/.test(request.headers.accept ?? '')) {
      const type = app.problemTypeBase + code;
      return reply
        .header('content-type', 'application/json; charset=utf-8')
        .send(JSON.stringify({ object: 'error_type', type, code, statuses: statuses.map((status) => ({ status, title: statusTitle(status) })), documented: passages }));
    }
    const nonce = newNonce();
    securePageHeaders(reply, nonce);
    return reply.send(
      page(
        `Error ${code}`,
        nonce,
        html`<h1><code>${code}</code></h1><p>${statuses.map((s) => `${s} ${statusTitle(s)}`).join(', ')}</p>
${passages.map((p) => html`<section class="card"><h2>${p.source}${p.section ? ` — ${p.section}` : ''}${p.status ? ` (${p.status})` : ''}</h2><p>${prose(p.text)}</p></section>`)}
<p>The API reference: <a href="/docs">/docs</a>, <a href="/openapi.json">/openapi.json</a>.</p>`,
        html`<style nonce="${nonce}">${DOCS_STYLE}</style>`,
        true,
      ),
    );
  });

  app.get('/docs', { schema: { hide: true } }, async (_request, reply) => {
    const spec = app.swagger() as { info: { title: string; description?: string }; paths: Record<string, Record<string, OpenApiOperation>> };
    const sections: Safe[] = [];
    const index: Safe[] = [];
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const anchor = `${method}-${path.replace(/[^A-Za-z0-9]+/g, '-')}`;
        const body = op.requestBody?.content?.['application/json']?.schema;
        const params = (op.parameters ?? []).filter((p) => p.in !== 'path');
        index.push(html`<li><a href="#${anchor}"><code>${method.toUpperCase()} ${path}</code></a></li>`);
        sections.push(html`<section class="card" id="${anchor}">
<h2><code>${method.toUpperCase()} ${path}</code></h2><p>${op.summary ?? ''}${op.security?.length ? ' — needs X-Secret-Key.' : ''}</p>
${op.description ? html`<p class="hint">${prose(op.description)}</p>` : html``}
${params.length ? html`<dl>${params.map((p) => html`<dt><code>${p.name}</code> (${p.in}${p.required ? ', required' : ''})</dt><dd>${prose(p.description)}</dd>`)}</dl>` : html``}
${body ? html`<details><summary>Request body schema</summary><pre>${JSON.stringify(body, null, 2)}</pre></details>` : html``}
<p class="hint">Responses: ${Object.keys(op.responses ?? {}).join(', ')}</p></section>`);
      }
    }
    const nonce = newNonce();
    securePageHeaders(reply, nonce);
    return reply.send(
      page(
        'tZero Pay API reference',
        nonce,
        html`<h1>${spec.info.title}</h1><p>${prose(spec.info.description)}</p><p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p><nav aria-label="Endpoints"><ul>${index}</ul></nav>${sections}`,
        html`<style nonce="${nonce}">${DOCS_STYLE}</style>`,
        true,
      ),
    );
  });
};

import type { FastifyPluginAsync } from 'fastify';
import { html, newNonce, page, Safe, securePageHeaders } from '../pages/html.js';

interface OpenApiOperation {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: unknown[];
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { description?: string }>;
}

/** The OpenAPI document generated from the route schemas, and a readable page built from it. */
export const docsRoutes = (): FastifyPluginAsync => async (app) => {
  app.get('/openapi.json', { schema: { hide: true } }, async (_request, reply) => reply.header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(app.swagger())));

  app.get('/docs', { schema: { hide: true } }, async (_request, reply) => {
    const spec = app.swagger() as { info: { title: string; description?: string }; paths: Record<string, Record<string, OpenApiOperation>> };
    const sections: Safe[] = [];
    for (const [path, methods] of Object.entries(spec.paths)) {
      for (const [method, op] of Object.entries(methods)) {
        const body = op.requestBody?.content?.['application/json']?.schema;
        sections.push(html`<section class="card" id="${method}-${path}">
<h2><code>${method.toUpperCase()} ${path}</code></h2><p>${op.summary ?? ''}${op.security?.length ? ' — needs X-Secret-Key.' : ''}</p>
${op.description ? html`<p class="hint">${op.description}</p>` : html``}
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
        html`<h1>${spec.info.title}</h1><p>${spec.info.description ?? ''}</p><p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>${sections}`,
        undefined,
        true,
      ),
    );
  });
};

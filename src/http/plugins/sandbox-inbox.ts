import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { Services } from '../../app/services.js';
import { MAIL_DIR } from '../../adapters/mail/mailer.js';
import { EML_NAME, listInbox, readMessage } from '../../adapters/mail/eml-inbox.js';
import { html, newNonce, page, securePageHeaders } from '../pages/html.js';

const NameParams = Type.Object({ name: Type.String({ pattern: EML_NAME.source }) });

/**
 * Sandbox only: the e-mails the gateway would have sent, read back from the .eml files
 * under DATA_DIR/mail/ (written when SMTP_URL is not set), so a newcomer sees them
 * without running a mail server.
 */
export const sandboxInboxRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    const { config } = services.ctx;
    if (config.mode !== 'sandbox') return;
    const dir = join(config.dataDir, MAIL_DIR);

    const Page = { description: 'A page for a browser, linking each message.', content: { 'text/html': { schema: { type: 'string' } } } };
    app.get('/sandbox/inbox', { schema: { tags: ['sandbox'], summary: 'Sandbox inbox: e-mails written as .eml files', response: { 200: Page } } }, async (_request, reply) => {
      const entries = listInbox(dir);
      const nonce = newNonce();
      securePageHeaders(reply, nonce);
      const note = config.smtpUrl
        ? html`<p class="notice info">SMTP_URL is set: new e-mails go to the SMTP server, not here.</p>`
        : html`<p class="hint">Messages are written to ${dir} because SMTP_URL is not set.</p>`;
      const rows = entries.map(
        (e) => html`<tr><td><a href="/sandbox/inbox/${e.name}">${e.subject}</a></td><td>${e.to}</td><td>${e.date}</td></tr>`,
      );
      const body = entries.length
        ? html`<table id="inbox"><thead><tr><th align="left">Subject</th><th align="left">To</th><th align="left">Date</th></tr></thead><tbody>${rows}</tbody></table>`
        : html`<p id="empty">No e-mails yet. Complete a sandbox payment and they appear here.</p>`;
      return reply.send(page('Sandbox inbox', nonce, html`<div class="card"><h1>Sandbox inbox</h1>${note}${body}</div>`, undefined, true));
    });

    app.get<{ Params: { name: string } }>('/sandbox/inbox/:name', { schema: { hide: true, params: NameParams } }, async (request, reply) => {
      const message = readMessage(dir, request.params.name);
      const nonce = newNonce();
      securePageHeaders(reply, nonce);
      if (!message) return reply.code(404).send(page('Not found', nonce, html`<div class="card"><h1>No such message</h1><p><a href="/sandbox/inbox">Back to the inbox</a></p></div>`));
      return reply.send(
        page(
          message.subject,
          nonce,
          html`<div class="card"><p><a href="/sandbox/inbox">← Inbox</a></p><h1 id="subject">${message.subject}</h1>
<dl><dt>From</dt><dd>${message.from}</dd><dt>To</dt><dd id="to">${message.to}</dd><dt>Date</dt><dd>${message.date}</dd></dl>
<pre id="text" style="white-space:pre-wrap">${message.text}</pre>
<p class="hint"><a href="/sandbox/inbox/${message.name}/raw">Raw message</a> (the exact bytes, HTML part included)</p></div>`,
          undefined,
          true,
        ),
      );
    });

    app.get<{ Params: { name: string } }>('/sandbox/inbox/:name/raw', { schema: { hide: true, params: NameParams } }, async (request, reply) => {
      const message = readMessage(dir, request.params.name);
      reply.header('x-content-type-options', 'nosniff').header('cache-control', 'no-store');
      if (!message) return reply.code(404).header('content-type', 'text/plain; charset=utf-8').send('no such message\n');
      return reply.header('content-type', 'text/plain; charset=utf-8').send(message.raw);
    });
  };

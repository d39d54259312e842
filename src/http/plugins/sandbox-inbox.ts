import { join } from 'node:path';
import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../app/services.js';
import { newestReadableMessages, readableMessage } from '../../app/inbox-scope.js';
import { MAIL_DIR } from '../../adapters/mail/mailer.js';
import { EML_NAME, inboxEntries, readMessage } from '../../adapters/mail/eml-inbox.js';
import { presentedKey } from '../auth.js';
import { problem, sendProblem } from '../problem.js';
import { ProblemRef } from '../schemas/common.js';
import { html, newNonce, page, securePageHeaders } from '../pages/html.js';

const NameParams = Type.Object({ name: Type.String({ pattern: EML_NAME.source }) });

/** The newest messages the inbox lists. */
const LISTED = 200;

const REALM = 'Basic realm="tZero Pay sandbox inbox: your secret key is the password", charset="UTF-8"';
const SIGN_IN =
  "the inbox shows the e-mails of the merchant whose secret key you give: sign in with any user name and the key as the password (the sandbox's own key is secret_key in sandbox-credentials.json in the gateway's data directory), or send it in X-Secret-Key";

/**
 * The key a browser sends once it has asked for one: HTTP Basic's password, or its user name
 * when the password is empty (`curl -u sk_test_…:`).
 */
function basicAuthKey(authorization: string | undefined): string | undefined {
  const encoded = /^basic\s+([A-Za-z0-9+/]+=*)\s*$/i.exec(authorization ?? '')?.[1];
  if (encoded === undefined) return undefined;
  const decoded = Buffer.from(encoded, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon === -1) return undefined;
  return (decoded.slice(colon + 1) || decoded.slice(0, colon)).trim();
}

/**
 * Sandbox only: the e-mails the gateway would have sent, read back from the .eml files
 * under DATA_DIR/mail/ (written when SMTP_URL is not set), so a newcomer sees them
 * without running a mail server. They hold customers' addresses and payment details, and a
 * hosted sandbox serves several merchants: each route asks for a secret key and shows that
 * merchant's messages only, of the key's mode (decision 0031). A browser asks for the key
 * itself (HTTP Basic, the key as password); the API's headers are taken too.
 */
export const sandboxInboxRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    const { config, database } = services.ctx;
    if (config.mode !== 'sandbox') return;
    const dir = join(config.dataDir, MAIL_DIR);

    app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
      const found = await services.merchants.authenticate(basicAuthKey(request.headers.authorization) ?? presentedKey(request));
      if (found) {
        request.merchantId = found.merchantId;
        request.secretKeyId = found.keyId;
        request.keyMode = found.mode;
        return;
      }
      // One answer for a missing and a wrong key, as the API gives. A browser shows its sign-in
      // box for the Basic challenge, and this text if the box is dismissed.
      reply.header('www-authenticate', REALM);
      return sendProblem(reply, problem(request, 401, 'unauthorized', SIGN_IN, '/headers/authorization'));
    });

    /** The message if the request's key may read it; another merchant's is missing alike. */
    async function ownMessage(request: FastifyRequest<{ Params: { name: string } }>) {
      const readable = await readableMessage(database.db, request.merchantId, request.keyMode, request.params.name);
      return readable === null ? null : readMessage(dir, readable);
    }

    const Page = { description: 'A page for a browser, linking each message.', content: { 'text/html': { schema: { type: 'string' } } } };
    const SignIn = {
      description: 'No secret key, or not a valid one (`unauthorized`): a browser asks for the key itself.',
      headers: { 'WWW-Authenticate': { type: 'string', description: 'HTTP Basic: any user name, the secret key as the password.' } },
      content: { 'application/json': { schema: ProblemRef } },
    };
    const summary = "Sandbox inbox: your merchant's e-mails, written as .eml files";
    const security: Array<Record<string, string[]>> = [{ secretKey: [] }, { inboxBasic: [] }];
    app.get('/sandbox/inbox', { schema: { tags: ['sandbox'], summary, security, response: { 200: Page, 401: SignIn } } }, async (request, reply) => {
      const entries = inboxEntries(dir, await newestReadableMessages(database.db, request.merchantId, request.keyMode, dir, LISTED));
      const nonce = newNonce();
      securePageHeaders(reply, nonce);
      const note = config.smtpUrl
        ? html`<p class="notice info">SMTP_URL is set: new e-mails go to the SMTP server, not here.</p>`
        : html`<p class="hint">The e-mails of this merchant${request.keyMode ? ` about its ${request.keyMode} channels` : ''}, written to ${dir} because SMTP_URL is not set.</p>`;
      const rows = entries.map(
        (e) => html`<tr><td><a href="/sandbox/inbox/${e.name}">${e.subject}</a></td><td>${e.to}</td><td>${e.date}</td></tr>`,
      );
      const body = entries.length
        ? html`<table id="inbox"><thead><tr><th align="left">Subject</th><th align="left">To</th><th align="left">Date</th></tr></thead><tbody>${rows}</tbody></table>`
        : html`<p id="empty">No e-mails yet. Complete a sandbox payment and they appear here.</p>`;
      return reply.send(page('Sandbox inbox', nonce, html`<div class="card"><h1>Sandbox inbox</h1>${note}${body}</div>`, undefined, true));
    });

    app.get<{ Params: { name: string } }>('/sandbox/inbox/:name', { schema: { hide: true, params: NameParams } }, async (request, reply) => {
      const message = await ownMessage(request);
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
      const message = await ownMessage(request);
      reply.header('x-content-type-options', 'nosniff').header('cache-control', 'no-store');
      if (!message) return reply.code(404).header('content-type', 'text/plain; charset=utf-8').send('no such message\n');
      return reply.header('content-type', 'text/plain; charset=utf-8').send(message.raw);
    });
  };

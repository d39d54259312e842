import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync } from 'fastify';
import type { Services } from '../../app/services.js';
import { RETURN_TOLERANCE_SECONDS, checkReturn } from '../../app/checkout.js';
import { SANDBOX_CHALLENGE_CODE, TEST_CARDS } from '../../adapters/acquirers/sandbox/test-cards.js';
import { html, newNonce, page, securePageHeaders } from '../pages/html.js';
import { redactCardNumbers } from '../../domain/card-number-in-text.js';

const ReturnQuery = Type.Object({
  payment_id: Type.Optional(Type.String({ maxLength: 64 })),
  reference: Type.Optional(Type.String({ maxLength: 128 })),
  status: Type.Optional(Type.String({ maxLength: 32 })),
  timestamp: Type.Optional(Type.String({ maxLength: 16 })),
  signature: Type.Optional(Type.String({ maxLength: 128 })),
});

const TestCardList = Type.Object({
  object: Type.Literal('list'),
  challenge_code: Type.String({ description: 'The code that passes a 3-D Secure challenge on the payment page.' }),
  data: Type.Array(
    Type.Object({
      number: Type.String(),
      brand: Type.String(),
      authentication: Type.Union([Type.Literal('frictionless'), Type.Literal('challenge')]),
      outcome: Type.String(),
    }),
  ),
  other_cards: Type.String(),
});

const VERDICTS = {
  valid: 'The signature is valid: this return came from tZero Pay.',
  invalid: 'The signature could not be verified: do not trust this status.',
  expired: `The signature is genuine but more than ${RETURN_TOLERANCE_SECONDS / 60} minutes old: the documented check refuses it, so do not trust this status.`,
  unknown: 'The signature could not be verified: do not trust this status.',
} as const;

/** Sandbox-only helpers: the test card table and a return page that checks the signature like a merchant would. */
export const sandboxRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    if (services.ctx.config.mode !== 'sandbox') return;

    app.get(
      '/sandbox/test-cards',
      { schema: { tags: ['sandbox'], summary: 'Test cards and the outcome each one produces', response: { 200: TestCardList } } },
      async () => ({
        object: 'list',
        challenge_code: SANDBOX_CHALLENGE_CODE,
        data: TEST_CARDS.map((c) => ({ number: c.number, brand: c.brand, authentication: c.flow, outcome: c.description })),
        other_cards: 'Any other valid card number is approved frictionlessly.',
      }),
    );

    app.get<{ Querystring: Record<string, string | undefined> }>('/sandbox/return', { schema: { hide: true, querystring: ReturnQuery } }, async (request, reply) => {
      const q = request.query;
      let verdict: 'valid' | 'invalid' | 'expired' | 'unknown' = 'unknown';
      if (q.payment_id && q.signature && q.timestamp && q.status !== undefined) {
        const row = await services.ctx.database.db
          .selectFrom('payments')
          .innerJoin('channels', 'channels.id', 'payments.channel_id')
          .select(['channels.id as channel_id', 'channels.return_secret_ct'])
          .where('payments.id', '=', q.payment_id)
          .executeTakeFirst();
        if (row) {
          const secret = services.ctx.vault.openString(row.channel_id, row.return_secret_ct);
          const sent = { payment_id: q.payment_id, reference: q.reference ?? '', status: q.status, timestamp: q.timestamp, signature: q.signature };
          verdict = checkReturn(secret, sent, services.ctx.clock.now());
        } else {
          verdict = 'invalid';
        }
      }
      const nonce = newNonce();
      securePageHeaders(reply, nonce);
      const tone = verdict === 'valid' ? 'ok' : 'bad';
      // The page shows its query, which anyone can write into a link: never a card number.
      const shown = (value: string | undefined) => redactCardNumbers(value || '—');
      return reply.send(
        page(
          'Sandbox return page',
          nonce,
          html`<div class="card"><h1>Back on the merchant's site</h1>
<p class="merchant">This is the sandbox channel's return page. A real merchant checks the signature the same way before trusting the status.</p>
<dl><dt>Payment</dt><dd id="payment-id">${shown(q.payment_id)}</dd><dt>Reference</dt><dd>${shown(q.reference)}</dd>
<dt>Status</dt><dd id="status">${shown(q.status)}</dd><dt>Signature</dt><dd id="signature-verdict" data-verdict="${verdict}">${verdict}</dd></dl>
<p class="notice ${tone}" role="status">${VERDICTS[verdict]}</p>
<p class="hint">Always confirm with GET /payment/{id} or the callback before shipping goods.</p></div>`,
        ),
      );
    });
  };

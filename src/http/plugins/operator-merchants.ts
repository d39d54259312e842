import { Type } from '@sinclair/typebox';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Actor } from '../../app/audit.js';
import type { Services } from '../../app/services.js';
import { optionalJsonBody, sendOperatorJson as sendJson } from '../json-reply.js';
import { EmptyBody, StrictObject } from '../schemas/common.js';

const MerchantParams = Type.Object({ merchantId: Type.String({ maxLength: 64 }) });
const SuspendBody = StrictObject({ reason: Type.String({ description: 'For operators (1-500 characters, no card numbers): the merchant is never shown it.' }) });

/**
 * Merchants for the operator API: the same list and suspension as the CLI's `merchant list`,
 * `merchant suspend` and `merchant resume`, for a risk team's console that has a token but
 * no shell on the gateway's hosts. Audited as the token's owner.
 */
export const operatorMerchantRoutes =
  (services: Services, operatorActor: (request: FastifyRequest) => Actor): FastifyPluginAsync =>
  async (app) => {
    const hidden = { hide: true, tags: ['operator'] };
    const merchants = (request: FastifyRequest) => services.merchants.actingAs(operatorActor(request));

    app.get('/operator/merchants', { schema: hidden }, async (_request, reply) => sendJson(reply, 200, { object: 'list', data: await services.merchants.listMerchants() }));

    app.get<{ Params: { merchantId: string } }>('/operator/merchants/:merchantId', { schema: { ...hidden, params: MerchantParams } }, async (request, reply) =>
      sendJson(reply, 200, await services.merchants.showMerchant(request.params.merchantId)),
    );

    app.post<{ Params: { merchantId: string }; Body: { reason: string } }>(
      '/operator/merchants/:merchantId/suspend',
      { schema: { ...hidden, params: MerchantParams, body: SuspendBody } },
      async (request, reply) => {
        await merchants(request).suspendMerchant(request.params.merchantId, request.body.reason);
        return sendJson(reply, 200, await services.merchants.showMerchant(request.params.merchantId));
      },
    );

    app.post<{ Params: { merchantId: string } }>(
      '/operator/merchants/:merchantId/resume',
      { ...optionalJsonBody, schema: { ...hidden, params: MerchantParams, body: EmptyBody } },
      async (request, reply) => {
        await merchants(request).resumeMerchant(request.params.merchantId);
        return sendJson(reply, 200, await services.merchants.showMerchant(request.params.merchantId));
      },
    );
  };

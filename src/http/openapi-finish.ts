import type { SwaggerTransformObject } from '@fastify/swagger';

interface Operation {
  security?: Array<Record<string, string[]>>;
  responses?: Record<string, { content?: Record<string, unknown> }>;
}

/**
 * What the routes' schemas cannot say in the served OpenAPI document: errors are sent as
 * `application/problem+json` (src/http/problem.ts), and the secret key is accepted as a
 * bearer token as well as in X-Secret-Key (src/http/auth.ts).
 */
export const finishOpenApi: SwaggerTransformObject = (document) => {
  if (!('openapiObject' in document)) return document.swaggerObject;
  const doc = document.openapiObject;
  const schemes = (doc.components ??= {}).securitySchemes ?? {};
  doc.components.securitySchemes = { ...schemes, bearer: { type: 'http', scheme: 'bearer', description: 'The same secret key, as Authorization: Bearer sk_….' } };
  for (const item of Object.values(doc.paths ?? {})) {
    for (const op of Object.values(item ?? {}) as Operation[]) {
      if (!op || typeof op !== 'object' || !op.responses) continue;
      if (op.security?.some((s) => 'secretKey' in s)) op.security = [...op.security, { bearer: [] }];
      for (const [status, response] of Object.entries(op.responses)) {
        const json = response.content?.['application/json'];
        if (Number(status) >= 400 && json) response.content = { 'application/problem+json': json };
      }
    }
  }
  return doc;
};

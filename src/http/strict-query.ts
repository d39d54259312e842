import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';

const NO_QUERY = Type.Object({}, { additionalProperties: false });

/** The operator API's routes (src/http/plugins/compliance.ts, metrics.ts): hidden from the OpenAPI, so they name no security. */
const isOperatorRoute = (schema: { tags?: unknown }) => Array.isArray(schema.tags) && schema.tags.includes('operator');

/**
 * Unknown fields are refused everywhere in the API, query parameters included: an API
 * route that names none takes none (`?expand=` or `?limit=` where there is no such thing
 * is a 400 naming it, not silently ignored). The operator API's too: a filter it does not
 * have would otherwise answer the whole, unfiltered list as if filtered. Pages and probes
 * keep their own rules.
 */
export function refuseUnnamedQueryParameters(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (!route.schema || route.schema.querystring) return;
    if (!('security' in route.schema) && !isOperatorRoute(route.schema)) return;
    route.schema = { ...route.schema, querystring: NO_QUERY };
  });
}

import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';

const NO_QUERY = Type.Object({}, { additionalProperties: false });

/**
 * Unknown fields are refused everywhere in the API, query parameters included: an API
 * route that names none takes none (`?expand=` or `?limit=` where there is no such thing
 * is a 400 naming it, not silently ignored). Pages and probes keep their own rules.
 */
export function refuseUnnamedQueryParameters(app: FastifyInstance): void {
  app.addHook('onRoute', (route) => {
    if (!route.schema || route.schema.querystring || !('security' in route.schema)) return;
    route.schema = { ...route.schema, querystring: NO_QUERY };
  });
}

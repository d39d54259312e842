import FindMyWay from 'find-my-way';
import type { FastifyInstance } from 'fastify';

/**
 * The methods a path takes, for 405 answers: Fastify's router is asked for one method at a
 * time, so a path known under another method would otherwise look unknown. A second router
 * holds every registered route, per method as Fastify's does (a static route beside a
 * parametric one resolves per method alike), and is only consulted once Fastify has found
 * nothing.
 */
export function trackAllowedMethods(app: FastifyInstance, maxParamLength: number): (url: string) => string[] {
  const routes: Array<[string, string]> = [];
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) routes.push([method, route.url]);
  });
  let router: FindMyWay.Instance<FindMyWay.HTTPVersion.V1> | undefined;
  let methods: string[] = [];
  return (url) => {
    if (!router) {
      router = FindMyWay({ maxParamLength });
      for (const [method, path] of routes) router.on(method as FindMyWay.HTTPMethod, path, () => undefined);
      methods = [...new Set(routes.map(([method]) => method))].sort();
    }
    return methods.filter((method) => router!.find(method as FindMyWay.HTTPMethod, url) !== null);
  };
}

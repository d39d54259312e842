import FindMyWay from 'find-my-way';
import type { FastifyInstance } from 'fastify';

/**
 * The methods each route path takes, for 405 answers: Fastify's router is asked for one
 * method at a time, so a path known under another method would otherwise look unknown.
 * A second router holds every registered path (same matching rules as Fastify's)
 * and is only consulted once Fastify has found nothing.
 */
export function trackAllowedMethods(app: FastifyInstance, maxParamLength: number): (url: string) => string[] {
  const paths = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const methods = paths.get(route.url) ?? new Set<string>();
    for (const method of [route.method].flat()) methods.add(method);
    paths.set(route.url, methods);
  });
  let router: FindMyWay.Instance<FindMyWay.HTTPVersion.V1> | undefined;
  const build = () => {
    const built = FindMyWay({ maxParamLength });
    for (const [path, methods] of paths) {
      const allow = [...methods].sort();
      built.on('GET', path, () => undefined, { allow });
    }
    return built;
  };
  return (url) => {
    router ??= build();
    const found = router.find('GET', url);
    return found ? ((found.store as { allow: string[] }).allow ?? []) : [];
  };
}

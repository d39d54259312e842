import type { FastifyPluginAsync } from 'fastify';
import { databaseReadiness } from './health.js';
import type { Gauge } from '../../app/metrics.js';
import type { Services } from '../../app/services.js';

/** The database's part of a scrape: whether it answers, and how far callbacks and e-mails are behind. */
async function databaseGauges(services: Services): Promise<Gauge[]> {
  const up = { name: 'tzero_database_up', help: 'Whether the database answered this scrape and can be written, as /readyz checks (1), or not (0).' };
  try {
    // Bounded as /readyz is: a silent database must show as 0 within the scrape's timeout,
    // not as a failed scrape that loses every other figure of the outage.
    const behind = await databaseReadiness(services);
    return [
      { ...up, value: 1 },
      { name: 'tzero_deliveries_behind_seconds', help: 'How long the oldest callback or e-mail due to go out has waited (0: none).', value: behind },
    ];
  } catch {
    return [{ ...up, value: 0 }];
  }
}

/** GET /operator/metrics, inside the operator API (its token, its listener). */
export const metricsRoute =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    app.get('/operator/metrics', { schema: { hide: true, tags: ['operator'] } }, async (_request, reply) => {
      const text = services.ctx.metrics.render(await databaseGauges(services));
      return reply.header('content-type', 'text/plain; version=0.0.4; charset=utf-8').send(text);
    });
  };

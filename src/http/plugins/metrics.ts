import type { FastifyPluginAsync } from 'fastify';
import { databaseReadiness } from './health.js';
import type { Gauge } from '../../app/metrics.js';
import type { Services } from '../../app/services.js';

/** How long the scrape waits for the compliance queue's query once the database has answered. */
const QUEUE_WITHIN_MS = 3_000;

/** The review queue's gauges, or none when its query fails or outlasts QUEUE_WITHIN_MS: the scrape's other figures still go out. */
async function reviewQueueGauges(services: Services): Promise<Gauge[]> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('the compliance review queue query did not answer in time')), QUEUE_WITHIN_MS);
  });
  const query = services.compliance.reviewQueue();
  query.catch(() => {});
  try {
    const review = await Promise.race([query, late]);
    return [
      { name: 'tzero_compliance_documents_pending', help: "Merchants' PCI DSS documents waiting for an operator's review.", value: review.pending },
      { name: 'tzero_compliance_oldest_pending_document_age_seconds', help: 'How long the oldest document waiting for review has waited (0: none).', value: review.oldestAgeSeconds },
    ];
  } catch {
    return [];
  } finally {
    clearTimeout(timer);
  }
}

/** The database's part of a scrape: whether it answers, how far callbacks and e-mails are behind, the review queue. */
async function databaseGauges(services: Services): Promise<Gauge[]> {
  const up = { name: 'tzero_database_up', help: 'Whether the database answered this scrape and can be written, as /readyz checks (1), or not (0).' };
  let behind: number;
  try {
    // Bounded as /readyz is: a silent database must show as 0 within the scrape's timeout,
    // not as a failed scrape that loses every other figure of the outage.
    behind = await databaseReadiness(services);
  } catch {
    return [{ ...up, value: 0 }];
  }
  return [
    { ...up, value: 1 },
    { name: 'tzero_deliveries_behind_seconds', help: 'How long the oldest callback or e-mail due to go out has waited (0: none).', value: behind },
    ...(await reviewQueueGauges(services)),
  ];
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

import { Type } from '@sinclair/typebox';
import { sql } from 'kysely';
import type { FastifyPluginAsync } from 'fastify';
import { deliveriesBehindSeconds } from '../../app/delivery-backlog.js';
import type { Services } from '../../app/services.js';
import type { AppSurface } from '../app.js';
import { DATABASE_RETRY_AFTER_S, problem, sendProblem } from '../problem.js';
import { problemResponses } from '../schemas/common.js';

/** How long /readyz waits for the database before it answers 503. */
const READY_WITHIN_MS = 3_000;

/** What the payment listener tells anyone: whether to send this process traffic, nothing of its inside. */
const Ready = Type.Object({ status: Type.Literal('ready') });

/** The operator listener's (OPERATOR_PORT): which database, and how far deliveries are behind. */
const OperatorReady = Type.Object({
  status: Type.Literal('ready'),
  database: Type.Union([Type.Literal('sqlite'), Type.Literal('postgres')]),
  deliveries_behind_seconds: Type.Integer({
    minimum: 0,
    description: 'How long the oldest callback or e-mail due to go out has waited (0: none). It does not make the gateway unready: payments go on while deliveries catch up.',
  }),
});

/**
 * How far deliveries are behind, once the database has answered and can be written; rejects
 * within READY_WITHIN_MS otherwise. A database gone silent is told within seconds, not after
 * the query's own deadline (15 s, database.ts) or the prober's (or scraper's) timeout.
 */
async function checkDatabase(services: Services, backlog: boolean): Promise<number | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`the database did not answer within ${READY_WITHIN_MS} ms`)), READY_WITHIN_MS);
    });
    const check = (async () => {
      await sql`select 1`.execute(services.ctx.database.db);
      await services.ctx.database.writable();
      return backlog ? deliveriesBehindSeconds(services.ctx) : undefined;
    })();
    check.catch(() => {});
    return await Promise.race([check, late]);
  } finally {
    clearTimeout(timer);
  }
}

interface Outage {
  since: number;
  failedChecks: number;
}

/** Per process (its services), shared by /readyz on every listener and the metrics scrape. */
const outages = new WeakMap<Services, Outage>();

/**
 * checkDatabase, with an outage logged when it starts and when it ends (with how many checks
 * it failed): probers and scrapers ask every few seconds, and a warning with a stack at each
 * would bury everything else in the log. The delivery backlog is read for those who may see it.
 */
export async function databaseReadiness(services: Services): Promise<number>;
export async function databaseReadiness(services: Services, backlog: false): Promise<undefined>;
export async function databaseReadiness(services: Services, backlog = true): Promise<number | undefined> {
  const { log } = services.ctx;
  try {
    const behind = await checkDatabase(services, backlog);
    const outage = outages.get(services);
    if (outage) {
      outages.delete(services);
      log.info({ unready_ms: Date.now() - outage.since, failed_checks: outage.failedChecks }, 'ready again: the database answers and can be written');
    }
    return behind;
  } catch (error) {
    const outage = outages.get(services);
    if (outage) outage.failedChecks++;
    else {
      outages.set(services, { since: Date.now(), failedChecks: 1 });
      log.warn({ err: error }, 'not ready: the database does not answer or cannot be written; logged again when it is back');
    }
    throw error;
  }
}

/**
 * On the payment listener, which anyone reaches, /readyz says ready or not; the database's kind
 * and the delivery backlog are the operator's (its listener, and the metrics): decision 0031.
 */
export const healthRoutes =
  (services: Services, surface: AppSurface): FastifyPluginAsync =>
  async (app) => {
    const operator = surface === 'operator';
    app.get(
      '/healthz',
      { schema: { tags: ['operations'], summary: 'The process is up', response: { 200: Type.Object({ status: Type.Literal('ok') }) } } },
      async () => ({ status: 'ok' as const }),
    );

    app.get('/readyz', { schema: { tags: ['operations'], summary: 'The database answers', response: { 200: operator ? OperatorReady : Ready, ...problemResponses(503) } } }, async (request, reply) => {
      try {
        if (!operator) {
          await databaseReadiness(services, false);
          return { status: 'ready' };
        }
        const behind = await databaseReadiness(services);
        return { status: 'ready', database: services.ctx.database.dialect, deliveries_behind_seconds: behind };
      } catch {
        return sendProblem(reply.header('retry-after', String(DATABASE_RETRY_AFTER_S)), problem(request, 503, 'database_unavailable', 'the database is not reachable, or cannot be written'));
      }
    });
  };

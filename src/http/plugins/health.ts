import { sql } from 'kysely';
import type { FastifyPluginAsync } from 'fastify';
import type { Services } from '../../app/services.js';
import { problem, sendProblem } from '../problem.js';

export const healthRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    app.get('/healthz', { schema: { tags: ['operations'], summary: 'The process is up' } }, async () => ({ status: 'ok' }));

    app.get('/readyz', { schema: { tags: ['operations'], summary: 'The database answers' } }, async (request, reply) => {
      try {
        await sql`select 1`.execute(services.ctx.database.db);
        return { status: 'ready', database: services.ctx.database.dialect };
      } catch (error) {
        request.log.warn({ err: error }, 'readiness check failed');
        return sendProblem(reply, problem(request, 503, 'database_unavailable', 'the database is not reachable'));
      }
    });
  };

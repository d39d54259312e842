import Fastify from 'fastify';

/**
 * Baseline A: the HTTP limit of this machine for the same request. A bare Fastify route
 * that parses the JSON body and sends it back, no logger, no schema, no database.
 */
const app = Fastify({ logger: false });
app.post('/echo', async (request) => request.body);
const port = Number(process.env.PORT ?? 0);
await app.listen({ host: '127.0.0.1', port });
process.stdout.write(`echo listening on ${port}\n`);
process.once('SIGTERM', () => void app.close().then(() => process.exit(0)));

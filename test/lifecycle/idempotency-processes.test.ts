import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { freePort, startTestGateway, type TestGateway } from '../support/gateway.js';
import { startServer, type ServerProcess } from '../support/process.js';
import { authorisedPayment, countAcquirerCalls, getPayment } from '../lifecycle/helpers.js';

/**
 * The same request with the same Idempotency-Key sent to two gateway processes (a real
 * child process and this one) on one PostgreSQL database: a client retry behind a load
 * balancer. Documented (docs/lifecycle.md): "a retry while it runs ... or in another
 * gateway process replays that answer ... and never moves money a second time"; a duplicate
 * still in flight is 409 idempotency_key_in_use. The retry is checked against the business
 * rules before its key, so it is answered with an error about the first request's effect.
 */
describe('Idempotency-Key retry racing the first request in another process (postgres)', () => {
  let t: TestGateway;
  let child: ServerProcess;
  let here: string;
  before(async () => {
    t = await startTestGateway({ dialect: 'postgres' });
    here = await t.listen();
    // Slows this process's acquirer calls a little, so the two requests overlap.
    countAcquirerCalls([t.gateway]);
    const port = String(await freePort());
    child = await startServer({ PORT: port, PUBLIC_URL: `http://127.0.0.1:${port}`, DATA_DIR: t.dataDir, DATABASE_URL: t.config.databaseUrl!, WORKERS: 'false', LOG_LEVEL: 'silent' });
  });
  after(async () => {
    await child?.stop();
    await t?.close();
  });

  const send = (base: string, url: string, key: string) =>
    fetch(base + url, { method: 'POST', headers: { 'x-secret-key': t.credentials.secret_key, 'idempotency-key': key } }).then(async (r) => ({
      status: r.status,
      replayed: r.headers.get('idempotent-replayed'),
      body: (await r.json()) as { code?: string },
    }));

  for (const action of ['refund', 'capture', 'void'] as const) {
    it(`${action}: the retry replays or is told the key is in use, never a business-rule error`, async () => {
      const seen: string[] = [];
      for (let round = 0; round < 8; round++) {
        const p = await authorisedPayment(t, { amount: 1000 });
        if (action === 'refund') {
          const c = await send(here, `/payment/${p.id}/capture`, `cap-${p.id}`);
          assert.equal(c.status, 200);
        }
        const key = `${action}-${p.id}`;
        const [a, b] = await Promise.all([send(here, `/payment/${p.id}/${action}`, key), send(child.baseUrl, `/payment/${p.id}/${action}`, key)]);
        for (const r of [a, b]) seen.push(`${r.status} ${r.status >= 400 ? r.body.code : r.replayed ? 'replayed' : 'first'}`);
        const final = await getPayment(t, p.id);
        assert.ok(final.amount_refunded <= final.amount_captured);
      }
      const bad = seen.filter((s) => /^4/.test(s) && !s.endsWith('idempotency_key_in_use'));
      assert.deepEqual(bad, [], `answers: ${seen.join(', ')}`);
    });
  }
});

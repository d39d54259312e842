import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { sandboxCredentialsFile } from '../../src/server.js';
import { DIALECTS, exampleBody, freePort } from '../support/gateway.js';
import { freshPostgresDatabase } from '../support/postgres.js';
import { startServer } from '../support/process.js';

/**
 * The promise the group commit makes: a 201 is sent only for a payment that is written, so a
 * gateway killed (SIGKILL, no shutdown) under a full authorise load has lost none it
 * acknowledged, and each request that was in flight, sent again with its Idempotency-Key,
 * makes exactly one payment (the first one's answer if it was written, a new one if not).
 */
for (const dialect of DIALECTS) {
  describe(`gateway killed under authorise load (${dialect})`, () => {
    it('keeps every acknowledged payment, and a retry of each unanswered one makes exactly one', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'tzero-crash-load-'));
      const database = dialect === 'postgres' ? await freshPostgresDatabase() : null;
      const port = String(await freePort());
      const env = { PORT: port, PUBLIC_URL: `http://127.0.0.1:${port}`, DATA_DIR: dataDir, LOG_LEVEL: 'warn', ...(database ? { DATABASE_URL: database.url } : {}) };
      let server = await startServer(env);
      try {
        const { secret_key: key } = JSON.parse(readFileSync(sandboxCredentialsFile({ dataDir, databaseUrl: database?.url }), 'utf8')) as { secret_key: string };
        const authorise = async (reference: string) => {
          const res = await fetch(`${server.baseUrl}/payment/authorise`, {
            method: 'POST',
            headers: { 'x-secret-key': key, 'content-type': 'application/json', 'idempotency-key': reference },
            body: JSON.stringify(await exampleBody({ reference, amount: 1000 + reference.length })),
          });
          return { status: res.status, body: (await res.json()) as { id?: string; code?: string } };
        };

        const acknowledged = new Map<string, string>();
        const unanswered: string[] = [];
        let killed = false;
        const lane = async (n: number) => {
          for (let i = 0; !killed; i++) {
            const reference = `load-${n}-${i}`;
            try {
              const res = await authorise(reference);
              assert.equal(res.status, 201, JSON.stringify(res.body));
              acknowledged.set(reference, res.body.id!);
            } catch (error) {
              if (!killed) throw error;
              unanswered.push(reference);
            }
          }
        };
        const lanes = Array.from({ length: 24 }, (_, n) => lane(n));
        while (acknowledged.size < 300) await new Promise((resolve) => setTimeout(resolve, 20));
        killed = true;
        server.child.kill('SIGKILL');
        await Promise.all(lanes);
        const dead = server.child;
        if (dead.exitCode === null && dead.signalCode === null) await new Promise((resolve) => dead.once('exit', resolve));

        server = await startServer(env);
        for (const [reference, id] of acknowledged) {
          const res = await fetch(`${server.baseUrl}/payment/${id}`, { headers: { 'x-secret-key': key } });
          assert.equal(res.status, 200, `${reference} was acknowledged as ${id} before the kill`);
          const payment = (await res.json()) as { reference: string; amount: number; status: string };
          assert.deepEqual([payment.reference, payment.amount, payment.status], [reference, 1000 + reference.length, 'requires_action']);
        }
        assert.ok(unanswered.length > 0, 'requests were in flight at the kill');
        for (const reference of [...unanswered, ...acknowledged.keys()]) {
          const retry = await authorise(reference);
          assert.equal(retry.status, 201, `${reference}: ${JSON.stringify(retry.body)}`);
          if (acknowledged.has(reference)) assert.equal(retry.body.id, acknowledged.get(reference), `${reference} replays its acknowledged payment`);
          const list = await fetch(`${server.baseUrl}/payments?reference=${reference}`, { headers: { 'x-secret-key': key } });
          const ids = ((await list.json()) as { data: Array<{ id: string }> }).data.map((p) => p.id);
          assert.deepEqual(ids, [retry.body.id], `${reference}: one payment`);
        }
      } finally {
        await server.stop();
        await database?.drop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
}

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { DIALECTS, freePort, readExample } from '../support/gateway.js';
import { startServer, type ServerProcess } from '../support/process.js';
import { sandboxCredentialsFile } from '../../src/server.js';

/** Sets the gateway process's file size limit (RLIMIT_FSIZE): at 0 no write to any file gets through, as on a full disk. */
const limitFileSize = (pid: number, bytes: number | 'unlimited') => execFileSync('prlimit', [`--pid=${pid}`, `--fsize=${bytes}:`]);

/**
 * The gateway on SQLite whose files cannot be written (a full disk): payments are refused
 * with a 503 and Retry-After, none is acknowledged that was not committed, and writing
 * resumes by itself once there is room again.
 */
if (DIALECTS.includes('sqlite')) {
  describe('a SQLite file that cannot be written (sqlite)', () => {
    let dataDir: string;
    let server: ServerProcess | undefined;
    let key: string;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'tzero-full-'));
      server = await startServer({ DATA_DIR: dataDir, PORT: String(await freePort()) });
      key = (JSON.parse(readFileSync(sandboxCredentialsFile({ dataDir, databaseUrl: undefined }), 'utf8')) as { secret_key: string }).secret_key;
    });
    after(async () => {
      await server?.stop().catch(() => {});
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    const authorise = async (idempotencyKey: string) =>
      fetch(`${server!.baseUrl}/payment/authorise`, {
        method: 'POST',
        headers: { 'x-secret-key': key, 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
        body: JSON.stringify(await readExample()),
      });

    it('answers 503 with Retry-After while writes fail, and takes payments again once they succeed', async () => {
      const before = await authorise('before');
      assert.equal(before.status, 201, await before.clone().text());
      const kept = ((await before.json()) as { id: string }).id;

      limitFileSize(server!.child.pid!, 0);
      let refused: Response;
      try {
        refused = await authorise('during');
        const text = await refused.text();
        assert.equal(refused.status, 503, text);
        assert.match(String(refused.headers.get('content-type')), /application\/problem\+json/);
        assert.equal((JSON.parse(text) as { code: string }).code, 'database_unavailable');
        assert.match(String(refused.headers.get('retry-after')), /^\d+$/);
        // A write with reads inside it (on the main connection, not the writer thread) too.
        const endpoint = await fetch(`${server!.baseUrl}/webhook-endpoints`, {
          method: 'POST',
          headers: { 'x-secret-key': key, 'content-type': 'application/json' },
          body: JSON.stringify({ url: 'https://shop.example/hooks', events: ['*'] }),
        });
        assert.equal(endpoint.status, 503, await endpoint.text());
        // What was committed before can still be read.
        const read = await fetch(`${server!.baseUrl}/payment/${kept}`, { headers: { 'x-secret-key': key } });
        assert.equal(read.status, 200);
        // Readiness says so too, though the database still answers reads.
        const ready = await fetch(`${server!.baseUrl}/readyz`);
        assert.equal(ready.status, 503);
        assert.equal(((await ready.json()) as { code: string }).code, 'database_unavailable');
      } finally {
        limitFileSize(server!.child.pid!, 'unlimited');
      }
      // Ready again as soon as there is room, before any request has written.
      assert.equal((await fetch(`${server!.baseUrl}/readyz`)).status, 200);

      // The same request again, under its key, now goes through: it was not recorded before.
      const retried = await authorise('during');
      assert.equal(retried.status, 201, await retried.clone().text());
      const after = await authorise('after');
      assert.equal(after.status, 201, await after.clone().text());
      assert.ok(server!.output().includes('database unavailable'), 'the operator reads why in the log');

      await server!.stop();
      server = undefined;
      const db = new SQLite(join(dataDir, 'gateway.sqlite'), { readonly: true });
      try {
        assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
        assert.equal(db.prepare('select count(*) from payments').pluck().get(), 3);
      } finally {
        db.close();
      }
    });
  });
}

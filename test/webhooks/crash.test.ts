import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { statementCache } from '../../src/adapters/storage/sqlite-connection.js';
import { sandboxCredentialsFile } from '../../src/server.js';
import { DIALECTS, exampleBody, freePort } from '../support/gateway.js';
import { freshPostgresDatabase } from '../support/postgres.js';
import { Receiver, waitFor } from './support.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The real gateway as a separate process: `node --import tsx src/cli/main.ts serve`. */
function spawnGateway(env: Record<string, string>): { proc: ChildProcess; output: () => string } {
  let output = '';
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', 'serve'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  proc.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  return { proc, output: () => output };
}

async function waitReady(base: string, gateway: { proc: ChildProcess; output: () => string }): Promise<void> {
  await waitFor(
    `the gateway at ${base} to answer /readyz`,
    async () => {
      if (gateway.proc.exitCode !== null) assert.fail(`the gateway exited (${gateway.proc.exitCode}):\n${gateway.output()}`);
      try {
        return (await fetch(`${base}/readyz`)).ok;
      } catch {
        return false;
      }
    },
    90_000,
  );
}

async function kill(proc: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.kill(signal);
  await exited;
}

/** Finishes the payment the way a browser does: GET the page for its CSRF cookie and field, then POST confirm. */
async function confirmOnHostedPage(redirectUrl: string): Promise<void> {
  const page = await fetch(redirectUrl);
  assert.equal(page.status, 200);
  const cookie = /tz_csrf=([^;]+)/.exec(page.headers.get('set-cookie') ?? '')?.[1];
  const csrf = /name="csrf" value="([^"]+)"/.exec(await page.text())?.[1];
  assert.ok(cookie && csrf, 'the page hands out a CSRF cookie and field');
  const res = await fetch(`${redirectUrl}/confirm`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: `tz_csrf=${cookie}` },
    body: new URLSearchParams({ csrf }).toString(),
    redirect: 'manual',
  });
  assert.equal(res.status, 303);
}

async function recordedEventIds(dialect: string, dataDir: string, databaseUrl: string | undefined): Promise<string[]> {
  if (dialect === 'sqlite') {
    const db = new SQLite(join(dataDir, 'gateway.sqlite'), { readonly: true });
    try {
      // Read as the gateway reads its file: ids are stored as bytes (stored-values.ts).
      return (statementCache(db)('select id from events order by id').all([]) as Array<{ id: string }>).map((r) => r.id);
    } finally {
      db.close();
    }
  }
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    return (await client.query<{ id: string }>('select id from events order by id')).rows.map((r) => r.id);
  } finally {
    await client.end();
  }
}

for (const dialect of DIALECTS) {
  describe(`gateway killed mid-flow (${dialect})`, () => {
    it('delivers every recorded event after a SIGKILL and a restart, correctly signed', async (t) => {
      const dataDir = mkdtempSync(join(tmpdir(), 'tzero-crash-'));
      const database = dialect === 'postgres' ? await freshPostgresDatabase() : null;
      const receiver = await new Receiver().start();
      const port = await freePort();
      const base = `http://127.0.0.1:${port}`;
      const env: Record<string, string> = {
        PATH: process.env.PATH ?? '',
        HOME: process.env.HOME ?? tmpdir(),
        DATA_DIR: dataDir,
        HOST: '127.0.0.1',
        PORT: String(port),
        PUBLIC_URL: base,
        WORKERS: 'true',
        LOG_LEVEL: 'warn',
        // Short timeout, so the leases a killed process held run out within seconds.
        WEBHOOK_TIMEOUT_MS: '1000',
        DISPATCH_POLL_MS: '100',
        ...(database ? { DATABASE_URL: database.url } : {}),
      };
      let gateway = spawnGateway(env);
      try {
        await waitReady(base, gateway);
        const { secret_key: key } = JSON.parse(readFileSync(sandboxCredentialsFile({ dataDir, databaseUrl: database?.url }), 'utf8')) as { secret_key: string };
        const api = (path: string, body: unknown) =>
          fetch(`${base}${path}`, { method: 'POST', headers: { 'x-secret-key': key, 'content-type': 'application/json' }, body: JSON.stringify(body) });
        const endpoint = await api('/webhook-endpoints', { url: receiver.url, events: ['*'] });
        assert.equal(endpoint.status, 201);
        receiver.secrets = [((await endpoint.json()) as { secret: string }).secret];
        // The receiver holds every callback open, so at the kill each event is either not
        // yet fanned out, queued, or in flight under a lease the dead process held.
        receiver.mode = 'hang';

        const payments: Array<{ id: string; redirect_url: string }> = [];
        for (let i = 0; i < 8; i++) {
          const res = await api('/payment/authorise', await exampleBody({ reference: `crash-${i}` }));
          assert.equal(res.status, 201);
          payments.push((await res.json()) as { id: string; redirect_url: string });
        }
        // Six are finished on the hosted page (authorised + captured); two stay open.
        await Promise.all(payments.slice(0, 6).map((p) => confirmOnHostedPage(p.redirect_url)));
        await kill(gateway.proc, 'SIGKILL');
        assert.equal(receiver.received.length, 0, 'nothing was acknowledged before the kill');
        const heldAtKill = receiver.requests;
        receiver.mode = 'ok';

        const recorded = await recordedEventIds(dialect, dataDir, database?.url);
        assert.equal(recorded.length, 8 + 6 * 2, 'created for each payment, authorised and captured for the six finished');
        gateway = spawnGateway(env);
        await waitReady(base, gateway);
        await waitFor('every recorded event at the receiver', () => recorded.every((id) => receiver.ids().has(id)), 90_000);

        assert.equal(receiver.invalid.length, 0, 'every signature verified');
        const ids = receiver.ids();
        assert.deepEqual([...ids.keys()].filter((id) => !recorded.includes(id)), [], 'nothing that was not recorded');
        for (const r of receiver.received) {
          const paymentIds = payments.map((p) => p.id);
          assert.ok(paymentIds.includes(r.payload.data.object.id));
        }
        const duplicates = [...ids.values()].reduce((n, c) => n + c - 1, 0);
        t.diagnostic(`${recorded.length} events recorded, ${heldAtKill} callbacks in flight at the kill, ${ids.size} delivered after the restart, ${duplicates} duplicates`);
      } finally {
        await kill(gateway.proc, 'SIGTERM');
        await receiver.stop();
        await database?.drop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
}

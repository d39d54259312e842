import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import pino from 'pino';
import { randomBytes } from 'node:crypto';
import { ConfigError, loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/adapters/storage/database.js';
import { Vault } from '../../src/adapters/vault/envelope.js';
import { checkKeks } from '../../src/app/kek-check.js';
import { createGateway, ensureSandboxCredentials, type Gateway } from '../../src/server.js';
import { DIALECTS, freePort } from '../support/gateway.js';
import { runCli, startServer } from '../support/process.js';
import { freshPostgresDatabase } from '../support/postgres.js';

// Several gateways on one database, as an operator scaling out runs them.
if (DIALECTS.includes('postgres')) {
  describe('several gateways starting at once on one empty database (postgres)', () => {
    it('all start on the one sandbox the first of them creates', async () => {
      const pgdb = await freshPostgresDatabase();
      const dataDir = mkdtempSync(join(tmpdir(), 'tzero-several-'));
      const gateways: Gateway[] = [];
      try {
        const config = loadConfig({ DATA_DIR: dataDir, DATABASE_URL: pgdb.url, WORKERS: 'false', LOG_LEVEL: 'silent' });
        for (let i = 0; i < 3; i++) gateways.push(await createGateway(config, pino({ level: 'silent' })));
        // Their first boots reach the sandbox's creation together, each seeing no merchant yet.
        const booted = await Promise.allSettled(gateways.map((g) => ensureSandboxCredentials(g.services)));
        assert.deepEqual(booted.filter((b) => b.status === 'rejected'), [], 'no gateway fails to start');
        const created = booted.flatMap((b) => (b.status === 'fulfilled' && b.value.created ? [b.value.credentials!] : []));
        assert.equal(created.length, 1, 'one of them creates the sandbox');

        const db = gateways[0]!.services.ctx.database.db;
        assert.deepEqual((await db.selectFrom('merchants').select('id').execute()).map((m) => m.id), [created[0]!.merchant_id], 'the others leave no merchant of theirs behind');
        assert.equal((await db.selectFrom('channels').select('id').execute()).length, 1);
        const file = booted.find((b) => b.status === 'fulfilled')!.value.file;
        assert.deepEqual(JSON.parse(readFileSync(file, 'utf8')), created[0]);
      } finally {
        await Promise.all(gateways.map((g) => g.close()));
        await pgdb.drop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });

    it('with different new vault keys: one passes the boot check, the other is refused naming the key it lacks', async () => {
      const pgdb = await freshPostgresDatabase();
      const dataDir = mkdtempSync(join(tmpdir(), 'tzero-several-'));
      const hmac = randomBytes(32).toString('base64');
      const configs = ['k2', 'k3'].map((kek) => loadConfig({ DATA_DIR: dataDir, DATABASE_URL: pgdb.url, VAULT_KEK: `${kek}:${randomBytes(32).toString('base64')}`, HMAC_KEY: hmac }));
      // Each with its own pool, as two processes: both reach the check together, after their migrations.
      const databases = await Promise.all(configs.map((c) => openDatabase({ databaseUrl: c.databaseUrl, dataDir })));
      try {
        const checked = await Promise.allSettled(configs.map((c, i) => checkKeks(databases[i]!.db, c.keks, new Vault(c.keks, c.hmacKey), c.hmacKey, Date.now())));
        const passed = configs.filter((_, i) => checked[i]!.status === 'fulfilled').map((c) => c.keks.active.id);
        assert.equal(passed.length, 1, 'only one of them may start: each would seal what the other cannot open');
        const refused = checked.find((s) => s.status === 'rejected')!.reason as Error;
        assert.ok(refused instanceof ConfigError, String(refused));
        assert.match(refused.message, new RegExp(`key-encrypting key id "${passed[0]}" is not configured`));
        const ids = await databases[0]!.db.selectFrom('vault_keys').select('kek_id').execute();
        assert.deepEqual(ids.map((r) => r.kek_id), passed, 'the refused one registered nothing');
      } finally {
        await Promise.all(databases.map((d) => d.close()));
        await pgdb.drop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
}

if (DIALECTS.includes('sqlite')) {
  describe('a second gateway on the same SQLite data directory (sqlite)', () => {
    it('is refused with a message naming the directory, while the first serves on and operator commands work beside it', async () => {
      const dataDir = mkdtempSync(join(tmpdir(), 'tzero-several-'));
      const first = await startServer({ PORT: String(await freePort()), DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
      try {
        const second = await startServer({ PORT: String(await freePort()), DATA_DIR: dataDir, LOG_LEVEL: 'warn' }).then(
          async (s) => {
            await s.stop();
            return null;
          },
          (error: Error) => error.message,
        );
        assert.ok(second !== null, 'the second gateway did not start');
        assert.match(second, new RegExp(`another gateway \\(or database scrub or restore\\) is already running on DATA_DIR ${dataDir}`));

        const credentials = JSON.parse(readFileSync(join(dataDir, 'sandbox-credentials.json'), 'utf8')) as { merchant_id: string; secret_key: string };
        const created = await runCli(['key', 'create', '--merchant', credentials.merchant_id, '--json'], { DATA_DIR: dataDir });
        assert.equal(created.code, 0, created.stderr);
        const key = JSON.parse(created.stdout) as { secret_key: string };
        const res = await fetch(`${first.baseUrl}/payments`, { headers: { 'x-secret-key': key.secret_key } });
        assert.equal(res.status, 200);
        // Except the one that rewrites the file under the gateway.
        const scrub = await runCli(['database', 'scrub'], { DATA_DIR: dataDir });
        assert.equal(scrub.code, 2, scrub.stdout);
        assert.match(scrub.stderr, /database scrub rewrites its file: stop the gateway first/);
        assert.doesNotMatch(scrub.stderr, /settings are environment variables/, 'nothing in the settings is wrong');
        assert.equal(await first.stop(), 0);

        const again = await startServer({ PORT: String(await freePort()), DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
        assert.equal(await again.stop(), 0, 'the directory is free again once the first gateway stopped');
      } finally {
        await first.stop().catch(() => {});
        rmSync(dataDir, { recursive: true, force: true });
      }
    });
  });
}

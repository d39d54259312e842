import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { luhnValid } from '../../src/domain/card.js';
import { findTestCard } from '../../src/adapters/acquirers/sandbox/test-cards.js';
import { sandboxCredentialsFile } from '../../src/server.js';
import { exampleBody, freePort, readExample } from '../support/gateway.js';
import { runCli, startServer, type ServerProcess } from '../support/process.js';

/** A Luhn-valid number in no test table: finding it in a file means it was written there in clear. */
function canaryPan(): string {
  for (;;) {
    let body = '4';
    while (body.length < 15) body += String(randomInt(10));
    for (let d = 0; d <= 9; d++) if (luhnValid(body + d) && !findTestCard(body + d)) return body + d;
  }
}

/**
 * A sealed value as SQLite stores it (stored-values.ts): a tag byte, then its 12-byte IV and
 * 16-byte GCM tag, 28 random bytes no other value has.
 */
const footprint = (sealed: Buffer) => sealed.subarray(1, 29);

describe('database backup of a running SQLite gateway', () => {
  it('copies it under authorise load; the copy boots in a fresh DATA_DIR and serves what it held, and holds no erased card or clear PAN', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tzero-backup-'));
    const restoreDir = mkdtempSync(join(tmpdir(), 'tzero-restore-'));
    const backup = join(mkdtempSync(join(tmpdir(), 'tzero-backup-out-')), 'gateway-backup.sqlite');
    const port = String(await freePort());
    let server: ServerProcess | null = await startServer({ PORT: port, PUBLIC_URL: `http://127.0.0.1:${port}`, DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
    let restored: ServerProcess | null = null;
    try {
      const { secret_key: key } = JSON.parse(readFileSync(sandboxCredentialsFile({ dataDir, databaseUrl: undefined }), 'utf8')) as { secret_key: string };
      const call = async (base: string, method: string, path: string, body?: unknown, idempotencyKey?: string) => {
        const res = await fetch(`${base}${path}`, {
          method,
          headers: { 'x-secret-key': key, ...(body ? { 'content-type': 'application/json' } : {}), ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}) },
          ...(body ? { body: JSON.stringify(body) } : {}),
        });
        return { status: res.status, body: (await res.json()) as { id?: string; status?: string; reference?: string } };
      };

      // Payments whose page ends before the backup: their cards are erased (decision 0016).
      const erasedPans = Array.from({ length: 5 }, canaryPan);
      const voided: string[] = [];
      for (const [i, number] of erasedPans.entries()) {
        const res = await call(server.baseUrl, 'POST', '/payment/authorise', await exampleBody({ reference: `erased-${i}`, payment_method: { number } }));
        assert.equal(res.status, 201, JSON.stringify(res.body));
        voided.push(res.body.id!);
      }
      const live = new SQLite(join(dataDir, 'gateway.sqlite'), { readonly: true });
      const erased = (live.prepare('select wrapped_dek, pan_ct, cvc_ct from card_secrets').raw().all() as Buffer[][]).flat().map(footprint);
      live.close();
      assert.equal(erased.length, 15, 'a sealed number, CVC and data key for each');
      for (const id of voided) assert.equal((await call(server.baseUrl, 'POST', `/payment/${id}/void`, {})).status, 200);

      const acknowledged: Array<{ reference: string; id: string; sent: number; at: number }> = [];
      let stopped = false;
      const lane = async (n: number) => {
        for (let i = 0; !stopped; i++) {
          const reference = `load-${n}-${i}`;
          const sent = Date.now();
          const res = await call(server!.baseUrl, 'POST', '/payment/authorise', await exampleBody({ reference }), reference);
          assert.equal(res.status, 201, JSON.stringify(res.body));
          acknowledged.push({ reference, id: res.body.id!, sent, at: Date.now() });
        }
      };
      const lanes = Array.from({ length: 8 }, (_, n) => lane(n));
      while (acknowledged.length < 100) await new Promise((resolve) => setTimeout(resolve, 20));
      const started = Date.now();
      const before = acknowledged.length;
      const result = await runCli(['database', 'backup', backup, '--json'], { DATA_DIR: dataDir });
      const finished = Date.now();
      const during = acknowledged.length - before;
      while (acknowledged.filter((p) => p.sent > finished).length < 20) await new Promise((resolve) => setTimeout(resolve, 20));
      stopped = true;
      await Promise.all(lanes);
      assert.equal(result.code, 0, result.stderr);
      assert.ok(during > 0, 'the gateway kept answering while the backup ran');
      assert.deepEqual(JSON.parse(result.stdout), { database: join(dataDir, 'gateway.sqlite'), file: backup, bytes: statSync(backup).size });
      assert.equal(statSync(backup).mode & 0o777, 0o600);
      const check = new SQLite(backup, { readonly: true });
      assert.equal(check.pragma('integrity_check', { simple: true }), 'ok');
      check.close();

      const bytes = readFileSync(backup);
      assert.deepEqual(erased.filter((f) => bytes.includes(f)), [], 'an erased card value is in the backup');
      const examplePan = ((await readExample()).payment_method as { number: string }).number;
      const text = bytes.toString('latin1');
      assert.deepEqual([...erasedPans, examplePan].filter((pan) => text.includes(pan)), [], 'a clear card number is in the backup');

      // A second backup never replaces the first.
      const again = await runCli(['database', 'backup', backup], { DATA_DIR: dataDir });
      assert.equal(again.code, 1);
      assert.match(again.stderr, /already exists.*\[backup_file_exists\]/);
      assert.ok(readFileSync(backup).equals(bytes), 'the existing backup is unchanged');

      await server.stop();
      server = null;

      // Restore: the file as the data directory's database, beside the keys it was sealed under.
      copyFileSync(backup, join(restoreDir, 'gateway.sqlite'));
      for (const f of ['sandbox-keys.json', 'sandbox-credentials.json']) copyFileSync(join(dataDir, f), join(restoreDir, f));
      const restorePort = String(await freePort());
      restored = await startServer({ PORT: restorePort, PUBLIC_URL: `http://127.0.0.1:${restorePort}`, DATA_DIR: restoreDir, LOG_LEVEL: 'warn' });
      for (const p of acknowledged.filter((a) => a.at < started)) {
        const got = await call(restored.baseUrl, 'GET', `/payment/${p.id}`);
        assert.equal(got.status, 200, `${p.reference} was answered before the backup began`);
        assert.deepEqual([got.body.reference, got.body.status], [p.reference, 'requires_action']);
      }
      for (const id of voided) assert.equal((await call(restored.baseUrl, 'GET', `/payment/${id}`)).body.status, 'cancelled');
      // Asked for after the copy was done: its snapshot cannot hold them.
      for (const p of acknowledged.filter((a) => a.sent > finished)) assert.equal((await call(restored.baseUrl, 'GET', `/payment/${p.id}`)).status, 404, `${p.reference} came after the backup`);
      const after = await call(restored.baseUrl, 'POST', '/payment/authorise', await exampleBody({ reference: 'after-restore' }));
      assert.equal(after.status, 201, JSON.stringify(after.body));
    } finally {
      await server?.stop();
      await restored?.stop();
      for (const dir of [dataDir, restoreDir, join(backup, '..')]) rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('database backup of a file written before decision 0017', () => {
  it('leaves out its free space, where cards erased back then still are', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tzero-backup-residue-'));
    const backup = join(dataDir, 'backup.sqlite');
    try {
      // As an earlier version left it: rows deleted without secure_delete, their bytes in free space.
      const marker = randomBytes(28);
      const old = new SQLite(join(dataDir, 'gateway.sqlite'));
      old.pragma('journal_mode = WAL');
      old.pragma('secure_delete = OFF');
      old.exec('CREATE TABLE erased (v BLOB); CREATE TABLE kept (v TEXT)');
      const insert = old.prepare('INSERT INTO erased (v) VALUES (?)');
      for (let i = 0; i < 200; i++) insert.run(Buffer.concat([marker, randomBytes(100)]));
      old.exec("DELETE FROM erased; INSERT INTO kept VALUES ('still here')");
      old.pragma('wal_checkpoint(TRUNCATE)');
      old.close();
      assert.ok(readFileSync(join(dataDir, 'gateway.sqlite')).includes(marker), 'control: the deleted rows are in the file');

      const result = await runCli(['database', 'backup', backup], { DATA_DIR: dataDir });
      assert.equal(result.code, 0, result.stderr);
      assert.match(result.stdout, /The keys are not in it: keep VAULT_KEK, VAULT_OLD_KEKS and HMAC_KEY, or .*sandbox-keys\.json/);
      assert.equal(readFileSync(backup).includes(marker), false, 'the erased rows were copied into the backup');
      const copy = new SQLite(backup, { readonly: true });
      assert.deepEqual(copy.prepare('select v from kept').all(), [{ v: 'still here' }]);
      copy.close();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('database backup refuses', () => {
  it('on PostgreSQL, pointing to pg_dump, without connecting', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tzero-backup-pg-'));
    const backup = join(dataDir, 'backup.sqlite');
    try {
      // Nothing listens on port 1: a connection attempt would fail with another message.
      const result = await runCli(['database', 'backup', backup], { DATA_DIR: dataDir, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /pg_dump.*\[backup_needs_sqlite\]/);
      assert.equal(existsSync(backup), false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('when DATA_DIR holds no database, making neither it nor the backup', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tzero-backup-none-'));
    const backup = join(dataDir, 'backup.sqlite');
    try {
      const result = await runCli(['database', 'backup', backup, '--json'], { DATA_DIR: dataDir });
      assert.equal(result.code, 1);
      assert.equal(JSON.parse(result.stderr).error.code, 'database_not_found');
      assert.equal(existsSync(backup), false);
      assert.equal(existsSync(join(dataDir, 'gateway.sqlite')), false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('when the file cannot be written, leaving nothing there', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tzero-backup-unwritable-'));
    try {
      const gateway = new SQLite(join(dataDir, 'gateway.sqlite'));
      gateway.exec('CREATE TABLE t (v TEXT)');
      gateway.close();
      const result = await runCli(['database', 'backup', join(dataDir, 'missing', 'backup.sqlite')], { DATA_DIR: dataDir });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /could not back up .*gateway\.sqlite to .*missing\/backup\.sqlite \(nothing was left there\): ENOENT.*\[backup_failed\]/);
      assert.equal(existsSync(join(dataDir, 'missing')), false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('without a file to write to, or with two', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tzero-backup-usage-'));
    try {
      writeFileSync(join(dataDir, 'gateway.sqlite'), '');
      for (const args of [['database', 'backup'], ['database', 'backup', 'a.sqlite', 'b.sqlite']]) {
        const result = await runCli(args, { DATA_DIR: dataDir });
        assert.equal(result.code, 2, args.join(' '));
        assert.match(result.stderr, /the file to write the backup to/);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

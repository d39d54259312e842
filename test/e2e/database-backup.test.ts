import assert from 'node:assert/strict';
import { randomBytes, randomInt } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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

describe('database restore', () => {
  it("puts a backup in place of a crashed gateway's database, its WAL set aside with it, and the gateway serves the backup", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tzero-restore-'));
    const backup = join(mkdtempSync(join(tmpdir(), 'tzero-restore-out-')), 'backup.sqlite');
    const database = join(dataDir, 'gateway.sqlite');
    const port = String(await freePort());
    const boot = () => startServer({ PORT: port, PUBLIC_URL: `http://127.0.0.1:${port}`, DATA_DIR: dataDir, LOG_LEVEL: 'warn' });
    let server: ServerProcess | null = await boot();
    try {
      const { secret_key: key } = JSON.parse(readFileSync(sandboxCredentialsFile({ dataDir, databaseUrl: undefined }), 'utf8')) as { secret_key: string };
      const call = async (method: string, path: string, body?: unknown) => {
        const res = await fetch(`${server!.baseUrl}${path}`, { method, headers: { 'x-secret-key': key, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { body: JSON.stringify(body) } : {}) });
        return { status: res.status, body: (await res.json()) as { id?: string; reference?: string } };
      };
      const before = await call('POST', '/payment/authorise', await exampleBody({ reference: 'before-backup' }));
      assert.equal(before.status, 201, JSON.stringify(before.body));
      assert.equal((await runCli(['database', 'backup', backup], { DATA_DIR: dataDir })).code, 0);
      const after: string[] = [];
      for (let i = 0; i < 5; i++) after.push((await call('POST', '/payment/authorise', await exampleBody({ reference: `after-backup-${i}` }))).body.id!);

      // Refused while the gateway runs: it would go on writing to the file replaced.
      const refused = await runCli(['database', 'restore', backup], { DATA_DIR: dataDir });
      assert.equal(refused.code, 2);
      assert.match(refused.stderr, /database restore replaces its file: stop the gateway first/);

      // Killed: what it committed last is in gateway.sqlite-wal, which would be read into any file put beside it.
      server.child.kill('SIGKILL');
      await server.stop();
      server = null;
      assert.ok(statSync(`${database}-wal`).size > 0, 'control: the crashed gateway left a WAL');

      const result = await runCli(['database', 'restore', backup, '--json'], { DATA_DIR: dataDir });
      assert.equal(result.code, 0, result.stderr);
      const { kept, ...rest } = JSON.parse(result.stdout) as { kept: string; database: string; file: string };
      assert.deepEqual(rest, { database, file: backup });
      assert.match(kept, /\/gateway\.sqlite\.before-restore-\d{8}T\d{6}Z$/);
      assert.equal(existsSync(`${database}-wal`), false);
      assert.equal(existsSync(`${database}.restoring`), false);
      assert.equal(statSync(database).mode & 0o777, 0o600);

      // The database replaced, WAL and all, is kept: what came after the backup is in it.
      const old = new SQLite(kept, { readonly: true });
      assert.equal((old.prepare('select count(*) from payments').pluck().get() as number), 6);
      old.close();

      server = await boot();
      assert.equal((await call('GET', `/payment/${before.body.id}`)).body.reference, 'before-backup');
      for (const id of after) assert.equal((await call('GET', `/payment/${id}`)).status, 404, 'a payment made after the backup');
      assert.equal((await call('POST', '/payment/authorise', await exampleBody({ reference: 'after-restore' }))).status, 201);
    } finally {
      await server?.stop();
      for (const dir of [dataDir, join(backup, '..')]) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a file that is not a tZero backup, is damaged or is of a newer version, leaving the database as it was', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tzero-restore-refused-'));
    const database = join(dataDir, 'gateway.sqlite');
    try {
      assert.equal((await runCli(['migrate'], { DATA_DIR: dataDir })).code, 0);
      const good = join(dataDir, 'good.sqlite');
      assert.equal((await runCli(['database', 'backup', good], { DATA_DIR: dataDir })).code, 0);
      const original = readFileSync(database);
      const files = readdirSync(dataDir).sort();

      const text = join(dataDir, 'notes.txt');
      writeFileSync(text, 'not a database at all, but long enough to have a header of sorts.\n'.repeat(20));
      const other = join(dataDir, 'other.sqlite');
      const otherDb = new SQLite(other);
      otherDb.exec('CREATE TABLE t (v TEXT)');
      otherDb.close();
      const newer = join(dataDir, 'newer.sqlite');
      copyFileSync(good, newer);
      const newerDb = new SQLite(newer);
      newerDb.prepare('insert into kysely_migration (name, timestamp) values (?, ?)').run('999-from-the-future', new Date().toISOString());
      newerDb.close();
      const damaged = join(dataDir, 'damaged.sqlite');
      const bytes = readFileSync(good);
      // Past the first page (the header and schema): a table's pages, overwritten.
      bytes.fill(0xa5, 4096 * 2, 4096 * 3);
      writeFileSync(damaged, bytes);

      const cases: Array<[string, string, RegExp]> = [
        [join(dataDir, 'missing.sqlite'), 'backup_not_found', /there is no file at/],
        [text, 'backup_not_a_database', /is not a SQLite database/],
        [other, 'backup_not_a_database', /not a tZero gateway's/],
        [newer, 'backup_newer_schema', /newer version of the gateway \(999-from-the-future/],
        [damaged, 'backup_damaged', /integrity check|cannot be read/],
      ];
      for (const [file, code, message] of cases) {
        const result = await runCli(['database', 'restore', file, '--json'], { DATA_DIR: dataDir });
        assert.equal(result.code, 1, file);
        const { error } = JSON.parse(result.stderr) as { error: { code: string; message: string } };
        assert.equal(error.code, code, error.message);
        assert.match(error.message, message);
        assert.ok(readFileSync(database).equals(original), `${file}: the database was changed`);
        assert.deepEqual(readdirSync(dataDir).filter((f) => !['notes.txt', 'other.sqlite', 'newer.sqlite', 'damaged.sqlite', 'gateway.lock'].includes(f)).sort(), files.filter((f) => f !== 'gateway.lock'), file);
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('into a DATA_DIR without a database (a new machine), keeping nothing aside', async () => {
    const from = mkdtempSync(join(tmpdir(), 'tzero-restore-from-'));
    const to = mkdtempSync(join(tmpdir(), 'tzero-restore-new-'));
    try {
      const merchant = JSON.parse((await runCli(['merchant', 'create', '--name', 'Restored Ltd', '--json'], { DATA_DIR: from })).stdout) as { id: string };
      // Seals the channel's return secret: the database now knows the sandbox's keys.
      const channel = await runCli(['channel', 'create', '--merchant', merchant.id, '--reference', 'restored', '--name', 'Restored', '--currency', 'USD', '--return-url', 'https://shop.example/back'], { DATA_DIR: from });
      assert.equal(channel.code, 0, channel.stderr);
      const backup = join(from, 'backup.sqlite');
      assert.equal((await runCli(['database', 'backup', backup], { DATA_DIR: from })).code, 0);
      const result = await runCli(['database', 'restore', backup, '--json'], { DATA_DIR: to });
      assert.equal(result.code, 0, result.stderr);
      assert.deepEqual(JSON.parse(result.stdout), { database: join(to, 'gateway.sqlite'), file: backup, kept: null });
      assert.ok(readFileSync(join(to, 'gateway.sqlite')).equals(readFileSync(backup)));
      // The command made sandbox keys of its own, as any command finding none does: the database refuses them.
      const wrongKeys = await runCli(['merchant', 'list'], { DATA_DIR: to });
      assert.equal(wrongKeys.code, 2);
      assert.match(wrongKeys.stderr, /key-encrypting key id "sandbox1" cannot open its check value/);
      copyFileSync(join(from, 'sandbox-keys.json'), join(to, 'sandbox-keys.json'));
      const list = await runCli(['merchant', 'list'], { DATA_DIR: to });
      assert.equal(list.code, 0, list.stderr);
      assert.match(list.stdout, /Restored Ltd/);
    } finally {
      for (const dir of [from, to]) rmSync(dir, { recursive: true, force: true });
    }
  });

  it("sets aside a WAL left in a DATA_DIR without a database, so another database's pages are not read into the backup", async () => {
    const from = mkdtempSync(join(tmpdir(), 'tzero-restore-from-'));
    const to = mkdtempSync(join(tmpdir(), 'tzero-restore-orphan-'));
    try {
      assert.equal((await runCli(['merchant', 'create', '--name', 'Restored Ltd'], { DATA_DIR: from })).code, 0);
      const backup = join(from, 'backup.sqlite');
      assert.equal((await runCli(['database', 'backup', backup], { DATA_DIR: from })).code, 0);
      // A WAL of another database, its frames never checkpointed: left when its file was deleted by hand.
      const other = new SQLite(join(to, 'other.sqlite'));
      other.pragma('journal_mode = WAL');
      other.pragma('wal_autocheckpoint = 0');
      other.exec("create table intruder (x); insert into intruder values ('not the backup')");
      copyFileSync(join(to, 'other.sqlite-wal'), join(to, 'gateway.sqlite-wal'));
      other.close();
      const result = await runCli(['database', 'restore', backup, '--json'], { DATA_DIR: to });
      assert.equal(result.code, 0, result.stderr);
      const { kept } = JSON.parse(result.stdout) as { kept: string | null };
      assert.ok(kept && existsSync(`${kept}-wal`), `the orphan WAL is kept aside: ${result.stdout}`);
      assert.equal(existsSync(join(to, 'gateway.sqlite-wal')), false);
      const restored = new SQLite(join(to, 'gateway.sqlite'), { readonly: true });
      try {
        assert.equal(restored.prepare("select count(*) from sqlite_master where name = 'intruder'").pluck().get(), 0);
        assert.equal(restored.prepare('select name from merchants').pluck().get(), 'Restored Ltd');
      } finally {
        restored.close();
      }
    } finally {
      for (const dir of [from, to]) rmSync(dir, { recursive: true, force: true });
    }
  });

  it('on PostgreSQL refuses, pointing to pg_restore, without connecting', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tzero-restore-pg-'));
    try {
      const result = await runCli(['database', 'restore', join(dataDir, 'backup.sqlite')], { DATA_DIR: dataDir, DATABASE_URL: 'postgres://nobody@127.0.0.1:1/none' });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /pg_restore.*\[restore_needs_sqlite\]/);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

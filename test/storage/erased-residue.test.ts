import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { openDatabase } from '../../src/adapters/storage/database.js';
import { runCli } from '../support/process.js';

/** Files of the data directory holding `bytes`. */
const holding = (dir: string, bytes: Buffer) => readdirSync(dir).filter((f) => readFileSync(join(dir, f)).includes(bytes));

describe('SQLite files written before secure_delete (decision 0017)', () => {
  it('keep nothing deleted back then once an operator has run database scrub', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tzero-residue-'));
    const file = join(dir, 'gateway.sqlite');
    // A file as an earlier version left it: rows deleted without secure_delete, bytes in free space.
    const marker = randomBytes(28);
    const old = new SQLite(file);
    old.pragma('journal_mode = WAL');
    old.pragma('secure_delete = OFF');
    old.exec('CREATE TABLE erased (v BLOB)');
    const insert = old.prepare('INSERT INTO erased (v) VALUES (?)');
    for (let i = 0; i < 200; i++) insert.run(Buffer.concat([marker, randomBytes(100)]));
    old.exec('DELETE FROM erased');
    old.pragma('wal_checkpoint(TRUNCATE)');
    old.close();
    assert.deepEqual(holding(dir, marker), ['gateway.sqlite'], 'control: the deleted rows are still in the file');

    // Opening the file leaves its free space as it is: copying a large file is the operator's call.
    const database = await openDatabase({ dataDir: dir, writerThread: true });
    await database.close();
    assert.deepEqual(holding(dir, marker), ['gateway.sqlite']);

    const scrub = await runCli(['database', 'scrub', '--json'], { DATA_DIR: dir });
    assert.equal(scrub.code, 0, scrub.stderr);
    const result = JSON.parse(scrub.stdout) as { scrubbed: boolean; bytes_before: number; bytes_after: number };
    assert.equal(result.scrubbed, true);
    assert.deepEqual(holding(dir, marker), []);

    // Rewriting the file that holds cardholder data is an operator's act the audit log keeps (PCI DSS 10.2.2).
    const file2 = new SQLite(file, { readonly: true });
    try {
      const rows = file2.prepare("SELECT actor, source, action, outcome, detail FROM audit_log WHERE action = 'database.scrub'").all() as Array<Record<string, string>>;
      assert.deepEqual(
        rows.map((r) => [r.actor, r.source, r.action, r.outcome, JSON.parse(r.detail!)]),
        [[`operator:cli:${userInfo().username}`, 'cli', 'database.scrub', 'success', { bytes_before: result.bytes_before, bytes_after: result.bytes_after }]],
      );
    } finally {
      file2.close();
    }
  });
});

describe("the WAL shredder beside another connection's reader", () => {
  it('never holds the event loop waiting for the reader to leave the WAL: it tries again later, and says so', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tzero-shred-'));
    const warnings: string[] = [];
    const log = { warn: (message: string) => void warnings.push(message), info: () => {} };
    const database = await openDatabase({ dataDir: dir, writerThread: true, log });
    // An operator's CLI or a backup reading the file while the gateway runs.
    const reader = new SQLite(join(dir, 'gateway.sqlite'));
    try {
      reader.exec('BEGIN');
      reader.prepare('SELECT count(*) FROM sqlite_master').get();
      database.shredErased();
      let longest = 0;
      let last = Date.now();
      const ticker = setInterval(() => {
        longest = Math.max(longest, Date.now() - last);
        last = Date.now();
      }, 20);
      await new Promise((resolve) => setTimeout(resolve, 3000));
      clearInterval(ticker);
      // Waiting for the reader would have blocked for the whole busy timeout (5 s).
      assert.ok(longest < 1000, `the event loop stood still for ${longest} ms`);
      // Tried at 1 s and 3 s, both refused by the reader: the operator is told once.
      assert.deepEqual(warnings, ['erased card data is still in the SQLite WAL: another connection (a backup, a shell) keeps reading it; trying again with backoff']);
    } finally {
      reader.exec('COMMIT');
      reader.close();
      await database.close();
    }
  });
});

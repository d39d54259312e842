import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Worker } from 'node:worker_threads';
import { after, before, describe, it } from 'node:test';
import { openSqliteConnection } from '../../src/adapters/storage/sqlite-connection.js';
import { SqliteWriter } from '../../src/adapters/storage/sqlite-writer.js';
import { openDatabase } from '../../src/adapters/storage/database.js';
import { compileInsert } from '../../src/adapters/storage/compiled.js';

const insert = (id: string) => ({ sql: 'insert into things (id) values (?)', params: [id] });

describe('SQLite writer thread', () => {
  let dir: string;
  let file: string;
  let writer: SqliteWriter;
  const ids = () => {
    const c = openSqliteConnection(file);
    try {
      return c.prepare('select id from things order by id').pluck().all() as string[];
    } finally {
      c.close();
    }
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'tzero-writer-'));
    file = join(dir, 'w.sqlite');
    const setup = openSqliteConnection(file);
    setup.exec('create table things (id text primary key)');
    setup.close();
    writer = new SqliteWriter(file, undefined);
  });
  after(async () => {
    await writer.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('commits a batch and reports each unit, keeping a failing unit to itself', async () => {
    const outcomes = await writer.run([[insert('a'), insert('b')], [insert('c'), insert('a')], [insert('d')]]);
    assert.deepEqual(outcomes.map((o) => o.ok), [true, false, true]);
    assert.equal((outcomes[1] as { code?: string }).code, 'SQLITE_CONSTRAINT_PRIMARYKEY');
    assert.deepEqual(ids(), ['a', 'b', 'd']);
  });

  // A statement that keeps the thread busy for a while, so whatever is sent next queues behind it.
  const slow = (id: string) => ({
    sql: `insert into things (id) select ? where (with recursive c(x) as (select 1 union all select x + 1 from c where x < 5000000) select count(*) from c) > 0`,
    params: [id],
  });

  it('answers batches that queued behind a busy thread each with their own units, in one transaction', async () => {
    const first = writer.run([[slow('q0')]]);
    const queued = [writer.run([[insert('q1')], [insert('q2'), insert('q0')]]), writer.run([[insert('q3'), insert('q4')]]), writer.run([[insert('q1')], [insert('q5')], [insert('q6')]])];
    assert.deepEqual(await first, [{ ok: true }]);
    const outcomes = await Promise.all(queued);
    assert.deepEqual(
      outcomes.map((batch) => batch.map((o) => o.ok)),
      [[true, false], [true], [false, true, true]],
    );
    assert.deepEqual(ids().filter((id) => id.startsWith('q')), ['q0', 'q1', 'q3', 'q4', 'q5', 'q6']);
  });

  it('refuses a batch that cannot be sent to the thread, and goes on with the next', async () => {
    await assert.rejects(writer.run([[{ sql: 'insert into things (id) values (?)', params: [() => 'x'] }]]), { name: 'DataCloneError' });
    // Nothing waits for a reply that will never come (it would keep the process alive).
    assert.equal((writer as unknown as { thread: { pending: Map<number, unknown> } }).thread.pending.size, 0);
    assert.deepEqual(await writer.run([[insert('g')]]), [{ ok: true }]);
    assert.ok(ids().includes('g'));
  });

  it('teaches the thread no SQL text from a batch it never received', async () => {
    const text = 'insert or ignore into things (id) values (?)';
    await assert.rejects(writer.run([[{ sql: text, params: [() => 'x'] }]]), { name: 'DataCloneError' });
    // The text goes again with the next batch that uses it, or the thread could not run it.
    assert.deepEqual(await writer.run([[{ sql: text, params: ['t1'] }]]), [{ ok: true }]);
    assert.ok(ids().includes('t1'));
  });

  it('fails only what a thread held when it dies of an error, not what its successor is sent before its exit', async () => {
    const worker = (writer as unknown as { thread: { worker: Worker } }).thread.worker;
    // A message the thread cannot handle throws there: an uncaught error stands in for a crash.
    worker.postMessage({ id: -1, texts: null, units: [] });
    const held = writer.run([[insert('x1')]]);
    // Sent as soon as the failure is known: the dead thread's `exit` comes milliseconds after its `error`.
    const next = await held.then(
      () => assert.fail('the dying thread answered'),
      () => writer.run([[insert('x2')]]),
    );
    assert.deepEqual(next, [{ ok: true }]);
    assert.ok(ids().includes('x2'));
  });

  it('fails the batch a dying thread held, and starts a new thread for the next', async () => {
    const pending = writer.run([[slow('e')]]);
    await new Promise((r) => setTimeout(r, 100));
    // The thread is private; ending it here stands in for a crash.
    await (writer as unknown as { thread: { worker: Worker } }).thread.worker.terminate();
    await assert.rejects(pending, /writer thread stopped/);
    const next = await writer.run([[insert('f')]]);
    assert.deepEqual(next, [{ ok: true }]);
    assert.ok(ids().includes('f'));
  });
});

describe('group commit on the writer thread', () => {
  it('refuses only the unit whose values cannot be sent, not the units of its batch', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tzero-batch-'));
    const database = await openDatabase({ dataDir, writerThread: true });
    try {
      const row = (id: string) => compileInsert(database.db, { table: 'merchants', row: { id, name: id, created_at: 1 } });
      const bad = { ...row('mer_uncopyable'), params: [() => 'x', 'x', 1] };
      // Asked for in the same turn: one batch for the writer thread.
      const outcomes = await Promise.allSettled([database.apply([row('mer_before')]), database.apply([bad]), database.insert([{ table: 'merchants', row: { id: 'mer_after', name: 'after', created_at: 1 } }])]);
      assert.deepEqual(
        outcomes.map((o) => o.status),
        ['fulfilled', 'rejected', 'fulfilled'],
      );
      assert.equal(((outcomes[1] as PromiseRejectedResult).reason as Error).name, 'DataCloneError');
      const ids = (await database.db.selectFrom('merchants').select('id').where('id', 'in', ['mer_before', 'mer_uncopyable', 'mer_after']).orderBy('id').execute()).map((r) => r.id);
      assert.deepEqual(ids, ['mer_after', 'mer_before']);
    } finally {
      await database.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

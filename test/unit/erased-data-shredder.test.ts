import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErasedDataShredder } from '../../src/adapters/storage/database.js';

/** The shredder's first try, and what it told the operator. */
async function firstTry(checkpoint: () => Promise<boolean>): Promise<Array<{ fields: unknown; message: string }>> {
  const said: Array<{ fields: unknown; message: string }> = [];
  const log = {
    warn: (fields: unknown, message?: string) => void said.push(typeof fields === 'string' ? { fields: undefined, message: fields } : { fields, message: message! }),
    info: () => {},
  };
  let tried!: () => void;
  const done = new Promise<void>((resolve) => (tried = resolve));
  const shredder = new ErasedDataShredder(() => checkpoint().finally(tried), log as never);
  // The shredder's timer never keeps a process alive: the test does, until the try.
  const alive = setInterval(() => {}, 100);
  shredder.schedule();
  await done.finally(() => clearInterval(alive));
  await new Promise((r) => setImmediate(r));
  await shredder.close();
  return said;
}

describe('the erased-data shredder tells the operator why card data is still in the WAL', () => {
  it('names a reader when the checkpoint could not finish', async () => {
    const said = await firstTry(async () => false);
    assert.deepEqual(said.map((s) => s.message), ['erased card data is still in the SQLite WAL: another connection (a backup, a shell) keeps reading it; trying again with backoff']);
  });

  it('gives the error when the checkpoint failed (a full disk), not a reader that is not there', async () => {
    const full = Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' });
    const said = await firstTry(async () => {
      throw full;
    });
    assert.deepEqual(said.map((s) => s.message), ['erased card data is still in the SQLite WAL: the checkpoint failed; trying again with backoff']);
    assert.equal((said[0]!.fields as { err: unknown }).err, full);
  });
});

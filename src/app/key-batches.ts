import type { Database, Trx } from '../adapters/storage/database.js';

/**
 * Works through rows in key order, a batch per transaction, each read starting after the
 * last key handled: a large table is read once (restarting from the top would read the rows
 * already done once per batch), is never held in memory whole, and a run that stops can be
 * started again. `next(after)` reads the next batch; returns the rows handled.
 */
export async function inKeyBatches<R>(
  database: Database,
  next: (after: string) => Promise<R[]>,
  keyOf: (row: R) => string,
  handle: (trx: Trx, row: R) => Promise<unknown>,
): Promise<number> {
  let count = 0;
  let after = '';
  for (;;) {
    const rows = await next(after);
    if (rows.length === 0) return count;
    await database.transaction(async (trx) => {
      for (const row of rows) await handle(trx, row);
    });
    count += rows.length;
    after = keyOf(rows[rows.length - 1]!);
  }
}

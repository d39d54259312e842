import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads';
import { openSqliteConnection, statementCache } from './sqlite-connection.js';
import { packJson } from './packed-json.js';
import { fillSealedCard } from './card-to-seal.js';
import type { WriterData, WriterReply, WriterRequest, UnitOutcome } from './sqlite-writer.js';

/**
 * The SQLite writer thread: it runs batches of insert-only units of work in one
 * transaction each on its own connection, so the B-tree work, the WAL writes, the fsync
 * of every COMMIT and the checkpoints happen beside the event loop instead of on it.
 */
const data = workerData as WriterData;
const raw = openSqliteConnection(data.file);
const cardKek = data.cardKek && { id: data.cardKek.id, key: Buffer.from(data.cardKek.key) };
const prepare = statementCache(raw);
/** Statement numbers as the main thread assigned them (sqlite-writer.ts). */
const texts = new Map<number, string>();
const statement = (n: number) => prepare(texts.get(n)!);
const begin = raw.prepare('BEGIN IMMEDIATE');
const commit = raw.prepare('COMMIT');
const rollback = raw.prepare('ROLLBACK');

const OK: UnitOutcome = { ok: true };

function runStatement([n, params, pack, card]: WriterRequest['units'][number][number]): void {
  if (pack || card) params = params.slice();
  if (card) {
    if (!cardKek) throw new Error('a card is to be sealed, but the writer thread has no key-encrypting key');
    fillSealedCard(params, card[0], cardKek, card[1], card[2], card[3]);
  }
  if (pack) for (const [i, dictionary] of pack) params[i] = packJson(params[i] as string, dictionary);
  statement(n).run(params);
}

function failure(error: unknown): UnitOutcome {
  const e = error as { message?: unknown; code?: unknown };
  return { ok: false, message: String(e?.message ?? error), code: typeof e?.code === 'string' ? e.code : undefined };
}

/**
 * All units in one transaction. Units rarely fail, so the first attempt uses no
 * savepoints (each costs a statement journal); when one fails, the batch is rolled back
 * and run again with every unit in its own savepoint, so the failure is that unit's alone.
 */
function runAll(units: WriterRequest['units'], isolated: boolean): UnitOutcome[] {
  begin.run();
  try {
    const outcomes: UnitOutcome[] = [];
    for (const unit of units) {
      if (!isolated) {
        for (const s of unit) runStatement(s);
        outcomes.push(OK);
        continue;
      }
      raw.exec('SAVEPOINT unit');
      try {
        for (const s of unit) runStatement(s);
        raw.exec('RELEASE unit');
        outcomes.push(OK);
      } catch (error) {
        raw.exec('ROLLBACK TO unit');
        raw.exec('RELEASE unit');
        outcomes.push(failure(error));
      }
    }
    commit.run();
    return outcomes;
  } catch (error) {
    if (raw.inTransaction) rollback.run();
    throw error;
  }
}

/**
 * Runs a batch and the batches queued behind it as one transaction: the event loop hands
 * batches over as they form, without waiting for earlier commits, and those that arrive
 * while the thread is busy share the next COMMIT (and its fsync) instead of each paying
 * for their own.
 */
function handle(requests: WriterRequest[]): WriterReply[] {
  const units: WriterRequest['units'] = [];
  for (const r of requests) {
    for (const [n, text] of r.texts) texts.set(n, text);
    units.push(...r.units);
  }
  let outcomes: UnitOutcome[];
  try {
    try {
      outcomes = runAll(units, false);
    } catch (error) {
      outcomes = units.length === 1 ? [failure(error)] : runAll(units, true);
    }
  } catch (error) {
    // Nothing of the batches was committed.
    const { message, code } = failure(error) as { message: string; code?: string };
    return requests.map(({ id }) => ({ id, error: { message, code } }));
  }
  let at = 0;
  return requests.map(({ id, units: mine }) => ({ id, value: outcomes.slice(at, (at += mine.length)) }));
}

function close(): void {
  raw.close();
  parentPort!.close();
}

parentPort!.on('message', (request: WriterRequest | 'close') => {
  if (request === 'close') return close();
  const requests = [request];
  let closing = false;
  for (let queued = receiveMessageOnPort(parentPort!); queued; queued = receiveMessageOnPort(parentPort!)) {
    const next = queued.message as WriterRequest | 'close';
    if (next === 'close') {
      closing = true;
      break;
    }
    requests.push(next);
  }
  for (const reply of handle(requests)) parentPort!.postMessage(reply);
  if (closing) close();
});

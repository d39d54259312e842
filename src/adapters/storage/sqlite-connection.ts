import SQLite from 'better-sqlite3';
import { withStoredValues } from './stored-values.js';

/**
 * The settings every connection to the gateway's SQLite file uses, the main thread's
 * and the writer thread's alike.
 */
/** How long a statement waits for another connection's lock before SQLITE_BUSY. */
export const BUSY_TIMEOUT_MS = 5000;

export function openSqliteConnection(file: string): SQLite.Database {
  const raw = new SQLite(file);
  // WAL lets readers run beside the writer; synchronous=FULL fsyncs the WAL on every
  // commit so an acknowledged payment survives a power loss, not only a process crash
  // (see docs/decisions/0002-sqlite-durability.md).
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = FULL');
  raw.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  // Savepoint (statement) journals are only for rolling back inside a live transaction,
  // never for crash recovery; kept in memory they stop costing a temp-file write each.
  raw.pragma('temp_store = MEMORY');
  raw.pragma('foreign_keys = ON');
  // Deleted rows and freed pages are overwritten with zeros, not left in the file's free
  // space: an erased card's sealed number and CVC must not be readable from the file (the
  // WAL's older frames are the shredder's, database.ts).
  raw.pragma('secure_delete = ON');
  return raw;
}

/**
 * Prepared statements kept by their text: preparing is a large share of a small
 * query's cost. Bounded, because queries with `IN (…)` lists produce many texts. They
 * bind and read ids and sealed values in their stored forms (stored-values.ts).
 */
export function statementCache(raw: SQLite.Database): (text: string) => SQLite.Statement {
  const cache = new Map<string, SQLite.Statement>();
  return (text) => {
    let stmt = cache.get(text);
    if (!stmt) {
      if (cache.size >= 1000) cache.clear();
      stmt = withStoredValues(raw.prepare(text));
      cache.set(text, stmt);
    }
    return stmt;
  };
}

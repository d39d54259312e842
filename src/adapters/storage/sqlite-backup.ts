import { closeSync, existsSync, fsyncSync, openSync, rmSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { BUSY_TIMEOUT_MS } from './sqlite-connection.js';

/**
 * Copies the gateway's SQLite file to `target` while the gateway runs (`database backup`).
 *
 * `VACUUM INTO` rather than the online backup API (better-sqlite3's `db.backup()`): it writes
 * the rows of one read transaction's snapshot into a new file, so the copy is consistent
 * however hard the gateway writes meanwhile (WAL readers never block the writer), and it holds
 * rows only. The backup API copies pages as they are, free pages and the unused space inside
 * pages included: in a file written before decision 0017 (no secure_delete) those still hold
 * cards erased back then, and a backup must leave no readable copy of them. Copying in steps,
 * it also starts over whenever the gateway writes between two (decision 0030).
 *
 * The file is created here first, empty, owner-only and exclusively (an existing file is
 * never overwritten; SQLite accepts an empty file as its target), so it never exists with
 * wider permissions, and synced afterwards: SQLite does not fsync what VACUUM INTO wrote.
 * A copy that fails half-way is removed.
 */
export function backupSqliteFile(source: string, target: string): { bytes: number } {
  if (!existsSync(source)) throw new NoDatabaseFileError(source);
  const fd = openSync(target, 'wx', 0o600);
  let written = false;
  try {
    // Not migrated: a copy needs nothing of the schema. Not read-only either: a read-only
    // connection cannot remove the -wal and -shm files it made beside a stopped gateway's file.
    const raw = new SQLite(source, { fileMustExist: true });
    try {
      raw.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
      raw.prepare('VACUUM INTO ?').run(target);
    } finally {
      raw.close();
    }
    fsyncSync(fd);
    syncDirectory(dirname(target));
    written = true;
  } finally {
    closeSync(fd);
    if (!written) rmSync(target, { force: true });
  }
  return { bytes: statSync(target).size };
}

/** The new file's name must survive a power loss as its bytes do. */
export function syncDirectory(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

export class NoDatabaseFileError extends Error {
  constructor(readonly file: string) {
    super(`there is no database at ${file}: check DATA_DIR`);
  }
}

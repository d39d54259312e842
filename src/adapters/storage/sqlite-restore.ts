import { closeSync, existsSync, fsyncSync, linkSync, openSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import SQLite from 'better-sqlite3';
import { DEFAULT_MIGRATION_TABLE } from 'kysely';
import { syncDirectory } from './sqlite-backup.js';

/** Why a file cannot be restored; nothing in DATA_DIR was changed. */
export class UnrestorableBackupError extends Error {
  constructor(
    readonly code: 'backup_not_found' | 'backup_not_a_database' | 'backup_damaged' | 'backup_newer_schema',
    message: string,
  ) {
    super(message);
  }
}

/**
 * Puts `backup` in place of the gateway's SQLite file `database` (`database restore`), the
 * gateway stopped (the caller holds DATA_DIR). Answers where the file it replaced was kept.
 *
 * The backup is copied beside the database first and checked there (the copy is what is put
 * in place, so it cannot change between the check and the swap): SQLite's integrity check,
 * and the gateway's migration table holding no migration this version does not know. Only
 * then is anything of the old database touched.
 *
 * The old file keeps its name's place until the copy is renamed over it, so a restore cut
 * short leaves the old database or the backup as `gateway.sqlite`, never neither (a boot
 * would make an empty one) and never a mix. Its WAL is emptied into it first: a WAL left
 * beside another database would be read into it. Where it cannot be (a damaged file), the WAL
 * and its index go aside with the file, which is kept under a name of its own (a hard link:
 * no copy of a large file), for the operator to remove when the restore has proved good.
 */
export function restoreSqliteFile(backup: string, database: string, knownMigrations: readonly string[], now: Date): { kept: string | null } {
  if (!existsSync(backup)) throw new UnrestorableBackupError('backup_not_found', `there is no file at ${backup}`);
  const staging = `${database}.restoring`;
  const removeStaging = () => {
    for (const f of [staging, `${staging}-wal`, `${staging}-shm`]) rmSync(f, { force: true });
  };
  // DATA_DIR is held: a copy found here is of a restore that was cut short.
  removeStaging();
  try {
    copyWhole(backup, staging);
    checkBackup(staging, backup, knownMigrations);
    const kept = existsSync(database) ? setAside(database, now) : setAsideOrphans(database, now);
    renameSync(staging, database);
    syncDirectory(dirname(database));
    return { kept };
  } finally {
    removeStaging();
  }
}

function checkBackup(file: string, named: string, knownMigrations: readonly string[]): void {
  let db: SQLite.Database;
  try {
    // Not read-only: a read-only connection cannot remove the -wal and -shm it made.
    db = new SQLite(file, { fileMustExist: true });
    db.pragma('schema_version');
  } catch (error) {
    throw new UnrestorableBackupError('backup_not_a_database', `${named} is not a SQLite database: ${(error as Error).message}`);
  }
  try {
    const problems = db.pragma('integrity_check', { simple: false }) as Array<{ integrity_check: string }>;
    if (problems[0]?.integrity_check !== 'ok') {
      throw new UnrestorableBackupError('backup_damaged', `${named} fails SQLite's integrity check: ${problems.slice(0, 3).map((p) => p.integrity_check).join('; ')}`);
    }
    const hasTable = db.prepare("select 1 from sqlite_master where type = 'table' and name = ?").get(DEFAULT_MIGRATION_TABLE);
    const applied = hasTable ? (db.prepare(`select name from ${DEFAULT_MIGRATION_TABLE}`).pluck().all() as string[]) : [];
    if (applied.length === 0) throw new UnrestorableBackupError('backup_not_a_database', `${named} is a SQLite database, but not a tZero gateway's (it has no applied migrations)`);
    const unknown = applied.filter((name) => !knownMigrations.includes(name)).sort();
    if (unknown.length > 0) {
      throw new UnrestorableBackupError('backup_newer_schema', `${named} was migrated by a newer version of the gateway (${unknown.join(', ')}; this version knows up to ${[...knownMigrations].sort().at(-1)}): restore it with that version or a later one`);
    }
  } catch (error) {
    if (error instanceof UnrestorableBackupError) throw error;
    throw new UnrestorableBackupError('backup_damaged', `${named} cannot be read as a database: ${(error as Error).message}`);
  } finally {
    db.close();
  }
}

/**
 * `<name>.before-restore-<UTC time to the second>`, or with `-2`, `-3`… after it when a restore
 * of the same second already kept a file there (or its WAL or index): every replaced file is kept.
 */
function keptName(database: string, now: Date): string {
  const base = `${database}.before-restore-${now.toISOString().replace(/[-:]|\.\d+/g, '')}`;
  const taken = (name: string) => ['', '-wal', '-shm'].some((side) => existsSync(name + side));
  let kept = base;
  for (let n = 2; taken(kept); n++) kept = `${base}-${n}`;
  return kept;
}

/** Keeps the current database under `<name>.before-restore-<time>`, with its WAL and index if they could not be emptied into it. */
function setAside(database: string, now: Date): string {
  emptyWal(database);
  const kept = keptName(database, now);
  try {
    linkSync(database, kept);
  } catch {
    // A file system without hard links: a copy.
    copyWhole(database, kept);
  }
  for (const side of ['-wal', '-shm']) if (existsSync(database + side)) renameSync(database + side, kept + side);
  syncDirectory(dirname(database));
  return kept;
}

/**
 * A WAL and index left without their database (its file removed by hand): SQLite would read
 * their frames into the backup put under that name. Kept aside under the name a replaced file
 * would have, for the operator to look at; null when there are none.
 */
function setAsideOrphans(database: string, now: Date): string | null {
  const sides = ['-wal', '-shm'].filter((side) => existsSync(database + side));
  if (sides.length === 0) return null;
  const kept = keptName(database, now);
  for (const side of sides) renameSync(database + side, kept + side);
  syncDirectory(dirname(database));
  return kept;
}

/** Moves what the WAL holds into the file and removes it, as the last connection's close does. A damaged file may refuse: its WAL then goes aside with it. */
function emptyWal(database: string): void {
  try {
    const db = new SQLite(database, { fileMustExist: true });
    try {
      db.pragma('wal_checkpoint(TRUNCATE)');
    } finally {
      db.close();
    }
  } catch {
    // Kept as found, WAL and all.
  }
}

/** Copies `from` to the new owner-only file `to`, synced: created so, never wider for a moment. */
function copyWhole(from: string, to: string): void {
  const input = openSync(from, 'r');
  try {
    const output = openSync(to, 'wx', 0o600);
    try {
      const chunk = Buffer.alloc(1 << 20);
      for (let n; (n = readSync(input, chunk, 0, chunk.length, null)) > 0; ) {
        for (let done = 0; done < n; ) done += writeSync(output, chunk, done, n - done);
      }
      fsyncSync(output);
    } finally {
      closeSync(output);
    }
  } finally {
    closeSync(input);
  }
  syncDirectory(dirname(to));
}

import { chmodSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import { ConfigError } from '../../config.js';

/**
 * Holds DATA_DIR for one gateway process on SQLite (or a command that must run without one:
 * `database scrub`, `database restore`), until `release` or the process's end; `refusal` says what to do instead.
 *
 * The gateway's SQLite code relies on being the file's only gateway: its fan-out plans
 * from a read outside the write (another gateway planning the same events would send
 * their callbacks and e-mails too), its writes busy-wait on the main thread for a lock a
 * second gateway's writer holds, and under load two gateways on one file answered
 * payments `database is locked`. Operator commands open the file beside the gateway
 * and take no hold. The hold is SQLite's exclusive lock on an empty database of its own: a
 * POSIX lock the kernel drops when the process dies, even killed, so nothing stale is left
 * to clean up (the journal is kept in memory: no file beside it either).
 */
/** The data directory is another process's: nothing in the settings to change. */
export class DataDirInUseError extends ConfigError {
  override name = 'DataDirInUseError';
}

export function holdDataDir(dataDir: string, refusal = 'stop that one first, or run several on PostgreSQL (DATABASE_URL). Operator commands (npm run cli) work beside it'): { release(): void } {
  const file = join(dataDir, 'gateway.lock');
  const lock = new SQLite(file, { timeout: 0 });
  try {
    lock.pragma('journal_mode = MEMORY');
    lock.exec('BEGIN EXCLUSIVE');
    // Empty, but every file of the data directory is owner-only.
    chmodSync(file, 0o600);
  } catch (error) {
    lock.close();
    if ((error as { code?: string }).code !== 'SQLITE_BUSY') throw error;
    throw new DataDirInUseError(
      `another gateway (or database scrub or restore) is already running on DATA_DIR ${dataDir} (it holds ${file}). On SQLite one gateway process serves a data directory; ${refusal}`,
    );
  }
  return {
    release() {
      lock.exec('ROLLBACK');
      lock.close();
    },
  };
}

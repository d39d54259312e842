import { chmodSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type Transaction, sql } from 'kysely';
import { migrationProvider } from './migrations/index.js';
import type { Schema } from './schema.js';

export type Trx = Transaction<Schema>;
export type DialectName = 'sqlite' | 'postgres';

/**
 * Dialect differences are expressed as capabilities, so repositories ask "can I lock
 * rows?" instead of "am I on PostgreSQL?".
 */
export interface Capabilities {
  /** Row locks (`FOR UPDATE`, `SKIP LOCKED`); SQLite serialises writers instead. */
  rowLocks: boolean;
}

export interface Database {
  readonly db: Kysely<Schema>;
  readonly dialect: DialectName;
  readonly caps: Capabilities;
  /** One transaction of its own. */
  transaction<T>(fn: (trx: Trx) => Promise<T>): Promise<T>;
  /**
   * A unit of work that may share its durable commit with others arriving at the same
   * time (group commit). One failing unit never undoes another; the promise resolves
   * only after the shared COMMIT returns. A unit may run twice before it commits (again,
   * isolated, when another unit of its batch failed), so it must do nothing but SQL.
   */
  write<T>(fn: (trx: Trx) => Promise<T>): Promise<T>;
  /** Bytes on disk (SQLite file + WAL, or PostgreSQL database size). */
  sizeBytes(): Promise<number>;
  close(): Promise<void>;
}

export interface OpenOptions {
  databaseUrl?: string | undefined;
  dataDir: string;
  groupCommitWindowMs?: number;
  poolSize?: number;
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  const database = opts.databaseUrl ? openPostgres(opts.databaseUrl, opts.poolSize ?? 20) : openSqlite(opts);
  await migrate(database.db);
  return database;
}

export async function migrate(db: Kysely<Schema>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: migrationProvider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error instanceof Error ? error : new Error(String(error));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

function openSqlite(opts: OpenOptions): Database {
  const file = join(opts.dataDir, 'gateway.sqlite');
  const raw = new SQLite(file);
  // The database holds sealed card data and key hashes: owner-only, like the keys file.
  for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
  // WAL lets readers run beside the writer; synchronous=FULL fsyncs the WAL on every
  // commit so an acknowledged payment survives a power loss, not only a process crash
  // (see docs/decisions/0002-sqlite-durability.md).
  raw.pragma('journal_mode = WAL');
  raw.pragma('synchronous = FULL');
  raw.pragma('busy_timeout = 5000');
  // Savepoint (statement) journals are only for rolling back inside a live transaction,
  // never for crash recovery; kept in memory they stop costing a temp-file write each.
  raw.pragma('temp_store = MEMORY');
  raw.pragma('foreign_keys = ON');
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: withStatementCache(raw) }) });
  const committer = new GroupCommitter(db, opts.groupCommitWindowMs ?? 0);
  return {
    db,
    dialect: 'sqlite',
    caps: { rowLocks: false },
    transaction: (fn) => db.transaction().execute(fn),
    write: (fn) => committer.run(fn),
    async sizeBytes() {
      return [file, `${file}-wal`].filter(existsSync).reduce((n, f) => n + statSync(f).size, 0);
    },
    close: () => db.destroy(),
  };
}

/**
 * Kysely prepares every query afresh; compiling SQL is a large share of a small
 * query's cost, so statements are kept by their text. Bounded, because queries with
 * `IN (…)` lists produce many texts.
 */
function withStatementCache(raw: SQLite.Database): { close(): void; prepare(sql: string): SQLite.Statement } {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => raw.close(),
    prepare(text: string) {
      let stmt = cache.get(text);
      if (!stmt) {
        if (cache.size >= 1000) cache.clear();
        stmt = raw.prepare(text);
        cache.set(text, stmt);
      }
      return stmt;
    },
  };
}

function openPostgres(url: string, poolSize: number): Database {
  // int8 columns hold epoch milliseconds and minor units, both far below 2^53.
  pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
  const pool = new pg.Pool({ connectionString: url, max: poolSize });
  // An idle client dropped by a PostgreSQL restart must not kill the process; the pool
  // replaces it and the next query reconnects.
  pool.on('error', () => {});
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    dialect: 'postgres',
    caps: { rowLocks: true },
    transaction: (fn) => db.transaction().execute(fn),
    // Concurrent PostgreSQL commits already share WAL flushes. Grouping units into one
    // transaction here was measured (docs/benchmarks.md): a unit waiting for a row lock
    // stalls its whole batch, which cost the hosted-page flow far more than it saved.
    write: (fn) => db.transaction().execute(fn),
    async sizeBytes() {
      const r = await sql<{ size: number }>`select pg_database_size(current_database())::int8 as size`.execute(db);
      return Number(r.rows[0]?.size ?? 0);
    },
    close: () => db.destroy(),
  };
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

interface Job {
  fn: (trx: Trx) => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * Collects units of work that arrive together and commits them in one SQLite
 * transaction: one fsync for many payments instead of one each. Nothing is
 * acknowledged before its COMMIT has returned.
 */
class GroupCommitter {
  private queue: Job[] = [];
  private scheduled = false;
  private running = false;

  constructor(
    private readonly db: Kysely<Schema>,
    private readonly windowMs: number,
  ) {}

  run<T>(fn: (trx: Trx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ fn, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.scheduled || this.running) return;
    this.scheduled = true;
    const go = () => {
      this.scheduled = false;
      void this.flush();
    };
    if (this.windowMs > 0) setTimeout(go, this.windowMs);
    else setImmediate(go);
  }

  private async flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    this.running = true;
    try {
      // Units rarely fail, so the batch first runs without savepoints (they cost a
      // journal of every page a unit touches). If one fails, the whole transaction is
      // rolled back and the batch runs again with each unit in its own savepoint, so
      // the failure is that unit's alone.
      let outcomes: Outcome[];
      try {
        outcomes = await this.runBatch(batch, false);
      } catch (error) {
        if (batch.length === 1) throw error;
        outcomes = await this.runBatch(batch, true);
      }
      batch.forEach((job, i) => {
        const o = outcomes[i]!;
        if (o.ok) job.resolve(o.value);
        else job.reject(o.error);
      });
    } catch (error) {
      // Nothing was committed: every unit learns so.
      for (const job of batch) job.reject(error);
    } finally {
      this.running = false;
      if (this.queue.length) this.schedule();
    }
  }

  private runBatch(batch: Job[], isolated: boolean): Promise<Outcome[]> {
    return this.db.transaction().execute(async (trx) => {
      const outcomes: Outcome[] = [];
      for (const job of batch) {
        if (!isolated) {
          outcomes.push({ ok: true, value: await job.fn(trx) });
          continue;
        }
        await sql`savepoint unit`.execute(trx);
        try {
          const value = await job.fn(trx);
          await sql`release savepoint unit`.execute(trx);
          outcomes.push({ ok: true, value });
        } catch (error) {
          await sql`rollback to savepoint unit`.execute(trx);
          await sql`release savepoint unit`.execute(trx);
          outcomes.push({ ok: false, error });
        }
      }
      return outcomes;
    });
  }
}

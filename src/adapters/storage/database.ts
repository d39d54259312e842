import { createHash } from 'node:crypto';
import { chmodSync, existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type SQLite from 'better-sqlite3';
import pg from 'pg';
import type { Logger } from 'pino';
import { CompiledQuery, DEFAULT_MIGRATION_TABLE, Kysely, Migrator, PostgresDialect, type PostgresPool, type PostgresPoolClient, SqliteAdapter, SqliteDialect, type Transaction, sql } from 'kysely';
import { migrationProvider } from './migrations/index.js';
import type { Schema } from './schema.js';
import { type CompiledStatement, type RowInsert, combineInserts, compileInsert, compileInsertParts, insertShape, sqliteParams } from './compiled.js';
import { paramsWithCard } from './card-to-seal.js';
import type { Kek } from '../../config.js';
import { BUSY_TIMEOUT_MS, openSqliteConnection, statementCache } from './sqlite-connection.js';
import { SqliteWriteError, SqliteWriter, type UnitOutcome } from './sqlite-writer.js';
import { DatabaseDeadlineError, isConnectionLost, isDatabaseUnavailable } from './unavailable.js';

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
  /**
   * A unit of work that only inserts rows: like `write`, but because it needs no reads
   * and no JavaScript inside the transaction, SQLite runs it on the writer thread.
   */
  insert(rows: RowInsert[]): Promise<void>;
  /**
   * Like `insert`, for compiled statements whose results nobody reads (inserts, and
   * updates by key): SQLite runs them on the writer thread too, in one unit.
   */
  apply(statements: CompiledStatement[]): Promise<void>;
  /**
   * Card data (a sealed number, a CVC, a wrapped data key) has just been deleted: on SQLite,
   * the WAL frames that still hold it are checkpointed and the WAL truncated within about a
   * second (ErasedDataShredder). PostgreSQL keeps dead rows and WAL segments beyond the
   * gateway's reach: there, retiring the KEK is what makes them unreadable (decision 0017).
   */
  shredErased(): void;
  /**
   * SQLite: rewrites the file without its free space, where a file written before decision
   * 0017 keeps cards erased back then (an operator's command, gateway stopped); false when
   * another connection kept the WAL from being emptied. PostgreSQL: nothing to do here (null).
   */
  scrubFreeSpace(): Promise<boolean | null>;
  /**
   * Resolves when writes can be expected to commit; rejects with the storage's error when the
   * last write failed for want of it (SQLite: a full or read-only disk) and a write tried now
   * fails too. Costs nothing while writes succeed. PostgreSQL: rejects when the server takes
   * no writes (read-only); a server that takes no connections shows in reads already.
   */
  writable(): Promise<void>;
  /** The SQLite file, for components that open connections of their own (absent on PostgreSQL). */
  readonly file?: string;
  /** Bytes on disk (SQLite file + WAL, or PostgreSQL database size). */
  sizeBytes(): Promise<number>;
  /** Runs `fn` when the database closes, before its connections do (for components holding their own). */
  onClose(fn: () => Promise<void>): void;
  close(): Promise<void>;
}

/** Close hooks first, newest first, then the database's own connections. */
function closing(close: () => Promise<void>): Pick<Database, 'onClose' | 'close'> {
  const hooks: Array<() => Promise<void>> = [];
  return {
    onClose: (fn) => hooks.push(fn),
    async close() {
      for (const fn of hooks.splice(0).reverse()) await fn();
      await close();
    },
  };
}

const SQLITE_FILE = 'gateway.sqlite';

export interface OpenOptions {
  databaseUrl?: string | undefined;
  dataDir: string;
  groupCommitWindowMs?: number;
  poolSize?: number;
  /** SQLite: run insert-only units on a writer thread (the gateway does; short-lived tools need not). */
  writerThread?: boolean;
  /** The active key-encrypting key, for cards that `insert` seals as it writes them (compiled.ts, CardToSeal). */
  cardKek?: Kek;
  /** False for the one caller that migrates itself and reports what it applied (`npm run migrate`). */
  migrate?: boolean;
  /** Where the database says what an operator must know (the gateway's logger). */
  log?: Pick<Logger, 'warn' | 'info'>;
  /**
   * PostgreSQL: how long a query may wait for its answer before its connection is taken for
   * dead and dropped (0, the default: for ever). Migrations are never cut short.
   */
  queryDeadlineMs?: number;
}

/** The database could not be reached or brought up to date; says which one, never a password. */
export class DatabaseUnavailableError extends Error {
  override name = 'DatabaseUnavailableError';

  constructor(opts: Pick<OpenOptions, 'databaseUrl' | 'dataDir'>, cause: unknown) {
    const where = opts.databaseUrl ? `${databaseLocation(opts)} (DATABASE_URL)` : `${databaseLocation(opts)} (DATA_DIR)`;
    super(`could not open or migrate the database ${where}: ${cause instanceof Error ? cause.message : String(cause)}${hint(cause)}`, { cause });
  }
}

/** What to do about the causes an operator meets first: a server taking no writes, a password that breaks the URL. */
function hint(cause: unknown): string {
  if (takesNoWrites(cause)) return ' (the server takes no writes: a hot standby, or default_transaction_read_only set for the database or role; point DATABASE_URL at the primary, or reset the setting)';
  if ((cause as { code?: unknown })?.code === 'ERR_INVALID_URL') return ' (percent-encode special characters in the user name and password: @ as %40, : as %3A, / as %2F, # as %23, % as %25)';
  return '';
}

/** SQLSTATE 25006: a write refused by a read-only transaction (possibly inside what failed). */
function takesNoWrites(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) if ((e as { code?: unknown }).code === '25006') return true;
  return false;
}

/**
 * A boot's first reads and writes after the database opened (the key checks, the sandbox's
 * merchant) failing because the database cannot serve are the operator's one line too, not a
 * driver's stack trace; other errors are left as they are.
 */
export function bootFailure(opts: Pick<OpenOptions, 'databaseUrl' | 'dataDir'>, error: unknown): unknown {
  return isDatabaseUnavailable(error) && !(error instanceof DatabaseUnavailableError) ? new DatabaseUnavailableError(opts, error) : error;
}

export async function openDatabase(opts: OpenOptions): Promise<Database> {
  let database: Database;
  let migrating = opts.migrate !== false;
  try {
    database = opts.databaseUrl ? openPostgres(opts.databaseUrl, opts.poolSize ?? 20, opts.cardKek, () => (migrating ? 0 : (opts.queryDeadlineMs ?? 0))) : openSqlite(opts);
  } catch (error) {
    throw new DatabaseUnavailableError(opts, error);
  }
  if (opts.migrate !== false) {
    try {
      await migrate(database.db);
    } catch (error) {
      await database.close().catch(() => {});
      throw new DatabaseUnavailableError(opts, error);
    }
    migrating = false;
  }
  return database;
}

/**
 * Where a database is, for operators: the SQLite file, or the PostgreSQL server and database
 * with its user, never a password (neither the URL's nor a `?password=` or `sslpassword`
 * parameter: the query is left out).
 */
export function databaseLocation(opts: Pick<OpenOptions, 'databaseUrl' | 'dataDir'>): string {
  if (!opts.databaseUrl) return join(opts.dataDir, SQLITE_FILE);
  // pg also takes forms a URL parser refuses (postgresql://user@/db?host=/run/postgresql).
  if (!URL.canParse(opts.databaseUrl)) return 'the PostgreSQL database of DATABASE_URL';
  const url = new URL(opts.databaseUrl);
  const user = url.username ? `${url.username}@` : '';
  return `${url.protocol}//${user}${url.host}${url.pathname}`;
}

/** `host-port-database`, read from the URL as earlier versions did, so a sandbox finds its credentials file (server.ts) again. */
export function postgresTarget(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);
    return `${url.hostname}-${url.port || '5432'}-${decodeURIComponent(url.pathname.slice(1)) || 'postgres'}`;
  } catch {
    // pg also connects with what a URL parser refuses (postgresql://user@/db?host=/run/postgresql, a
    // stray %): its own reading, which builds the connection's settings and opens nothing.
    const client = new pg.Client({ connectionString: databaseUrl });
    return `${client.host}-${client.port}-${client.database ?? 'postgres'}`;
  }
}

/** PostgreSQL's own search_path, and the one naming only the schema it falls back to. */
const DEFAULT_SEARCH_PATHS = ['"$user",public', '$user,public', 'public'];

/**
 * The search_path DATABASE_URL sets (`?options=-c search_path=…`, or `--search_path=…`), when
 * it names another than the default; null otherwise. The last setting wins, as on the server.
 */
export function postgresSearchPath(databaseUrl: string): string | null {
  const query = databaseUrl.indexOf('?');
  // URLSearchParams keeps a stray % as itself, as pg does, where a URL parser refuses the whole.
  const options = query === -1 ? null : new URLSearchParams(databaseUrl.slice(query + 1)).get('options');
  const settings = [...(options ?? '').matchAll(/(?:^|\s)(?:-c\s*|--)search_path=((?:\\.|[^\s\\])*)/g)];
  const path = settings.at(-1)?.[1]?.replace(/\\(.)/g, '$1').replace(/\s+/g, '');
  return path === undefined || DEFAULT_SEARCH_PATHS.includes(path) ? null : path;
}

/** How long a process waits for another one's migration of the same SQLite file, a large file's included. */
const MIGRATION_WAIT_MS = 5 * 60_000;

/**
 * On SQLite Kysely takes no migration lock (it assumes one process) and runs each migration
 * outside any transaction: two processes first using a fresh file (two operator commands, one
 * beside a first `serve`) both found every migration pending, and the second failed on a table
 * the first had made. Holding the write lock from before the first read, the later one waits,
 * then finds the migrations applied; and a failed run leaves the file as it was.
 */
export async function migrate(db: Kysely<Schema>): Promise<string[]> {
  if (!(db.getExecutor().adapter instanceof SqliteAdapter)) return migratePostgres(db);
  return db.connection().execute(async (conn) => {
    await sql.raw(`pragma busy_timeout = ${MIGRATION_WAIT_MS}`).execute(conn);
    try {
      await sql`begin immediate`.execute(conn);
    } finally {
      await sql.raw(`pragma busy_timeout = ${BUSY_TIMEOUT_MS}`).execute(conn);
    }
    try {
      const applied = await migrateToLatest(conn);
      await sql`commit`.execute(conn);
      return applied;
    } catch (error) {
      await sql`rollback`.execute(conn).catch(() => {});
      throw error;
    }
  });
}

/**
 * A statement_timeout the operator set for the database or role bounds the gateway's requests;
 * a migration rewriting a large table may rightly run longer (the gateway's own query deadline
 * spares it too), and one cut short stopped every boot. Its connection goes back to the pool
 * with the server's setting again.
 */
async function migratePostgres(db: Kysely<Schema>): Promise<string[]> {
  return db.connection().execute(async (conn) => {
    await sql`set statement_timeout = 0`.execute(conn);
    try {
      return await migrateToLatest(conn);
    } finally {
      await sql`reset statement_timeout`.execute(conn).catch(() => {});
    }
  });
}

async function migrateToLatest(db: Kysely<Schema>): Promise<string[]> {
  const migrator = new Migrator({ db, provider: migrationProvider, migrationTableSchema: await migrationSchema(db) });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw (await newerSchema(db)) ?? (error instanceof Error ? error : new Error(String(error)));
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/**
 * PostgreSQL: the schema the gateway's tables are made in (the first of the search_path that
 * exists, as DATABASE_URL's `options=-c search_path=…` or the role's setting name it). Kysely
 * looks for its migration tables in every schema otherwise: with another gateway's tables in
 * `public`, one given its own schema took them for its own and failed on a relation not found.
 */
async function migrationSchema(db: Kysely<Schema>): Promise<string | undefined> {
  if (db.getExecutor().adapter instanceof SqliteAdapter) return undefined;
  const { rows } = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
  const schema = rows[0]?.schema;
  if (!schema) throw new Error(`no schema of its search_path exists (${await searchPath(db)}): create it, or name one that exists in DATABASE_URL (?options=-c%20search_path%3D<schema>) or the role's settings`);
  return schema;
}

async function searchPath(db: Kysely<Schema>): Promise<string> {
  const { rows } = await sql<{ path: string }>`select current_setting('search_path') as path`.execute(db);
  return rows[0]?.path ?? '';
}

/**
 * After a rollback of the code the database is ahead of it: Kysely calls that "corrupted
 * migrations", which sends an operator looking for damage rather than at the version deployed.
 */
async function newerSchema(db: Kysely<Schema>): Promise<Error | null> {
  const known = Object.keys(await migrationProvider.getMigrations()).sort();
  const applied = await sql<{ name: string }>`select name from ${sql.table(DEFAULT_MIGRATION_TABLE)}`.execute(db).then(
    (r) => r.rows.map((row) => row.name),
    () => [],
  );
  const unknown = applied.filter((name) => !known.includes(name)).sort();
  if (unknown.length === 0) return null;
  return new Error(`it was migrated by a newer version of the gateway (${unknown.join(', ')}; this version knows up to ${known.at(-1)}): run that version or a later one, or restore a backup taken before the upgrade`);
}

function openSqlite(opts: OpenOptions): Database {
  const file = join(opts.dataDir, SQLITE_FILE);
  const raw = openSqliteConnection(file);
  // The database holds sealed card data and key hashes: owner-only, like the keys file.
  for (const f of [file, `${file}-wal`, `${file}-shm`]) if (existsSync(f)) chmodSync(f, 0o600);
  const db = new Kysely<Schema>({ dialect: new SqliteDialect({ database: withStatementCache(raw) }) });
  const writer = opts.writerThread ? new SqliteWriter(file, opts.cardKek) : null;
  const turns = new WriteTurns();
  const committer = new GroupCommitter(db, opts.groupCommitWindowMs ?? 0, writer, turns, opts.cardKek);
  const shredder = new ErasedDataShredder(() => turns.take(async () => truncateWal(raw)), opts.log);
  // The last write that failed because the file could not be written, until one succeeds.
  let cannotWrite: unknown = null;
  const watched = <T>(write: Promise<T>): Promise<T> =>
    write.then(
      (value) => {
        cannotWrite = null;
        return value;
      },
      (error: unknown) => {
        if (isDatabaseUnavailable(error)) cannotWrite = error;
        throw error;
      },
    );
  return {
    db,
    dialect: 'sqlite',
    caps: { rowLocks: false },
    transaction: (fn) => watched(turns.take(() => db.transaction().execute(fn))),
    write: (fn) => watched(committer.run({ fn })),
    insert: (rows) => watched(committer.run({ statements: rows.map((r) => compileInsert(db, r)) })).then(() => undefined),
    apply: (statements) => watched(committer.run({ statements })).then(() => undefined),
    // Reads go on while the disk is full, so only a write can tell when it has room again:
    // the file's header rewritten with the value it has (one page, no table touched).
    writable: async () => {
      if (cannotWrite === null) return;
      await watched(turns.take(async () => void raw.pragma(`user_version = ${Number(raw.pragma('user_version', { simple: true }))}`)));
    },
    shredErased: () => shredder.schedule(),
    scrubFreeSpace: () => turns.take(async () => scrubFreeSpace(raw)),
    file,
    async sizeBytes() {
      return [file, `${file}-wal`].filter(existsSync).reduce((n, f) => n + statSync(f).size, 0);
    },
    ...closing(async () => {
      await committer.drain();
      await shredder.close();
      await writer?.close();
      await db.destroy();
    }),
  };
}

/**
 * SQLite's WAL keeps every committed version of a page until a checkpoint resets it and
 * later commits happen to overwrite those frames, which under little load can be days: a
 * deleted card's sealed number and CVC would stay there, readable with the KEK. After an
 * erasure, a TRUNCATE checkpoint (in a write turn of its own, so no transaction is open)
 * copies the pages, as secure_delete left them zeroed, into the file and empties the WAL.
 * One runs at most a second after the first erasure, so under load it costs one
 * checkpoint a second, not one a page.
 */
export class ErasedDataShredder {
  static readonly DELAY_MS = 1000;
  /** Another connection's reader (a CLI, a backup) can hold the WAL for long: tries back off to this. */
  static readonly MAX_DELAY_MS = 60_000;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private delay = ErasedDataShredder.DELAY_MS;
  private closed = false;

  /** Tries in a row that found the WAL still read by another connection. */
  private failures = 0;

  /** `checkpoint` answers false when a reader still needed the WAL: it is tried again later. */
  constructor(
    private readonly checkpoint: () => Promise<boolean>,
    private readonly log?: Pick<Logger, 'warn' | 'info'>,
  ) {}

  schedule(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      let failed: unknown;
      this.running = this.checkpoint()
        .catch((error: unknown) => {
          failed = error;
          return false;
        })
        .then((done) => {
          this.delay = done ? ErasedDataShredder.DELAY_MS : Math.min(this.delay * 2, ErasedDataShredder.MAX_DELAY_MS);
          // The promise that erased card data leaves the files within a second is not kept
          // while another connection reads the WAL (or the checkpoint fails: a full disk):
          // the operator hears of it, once, and when it ends.
          if (!done && ++this.failures === 1) {
            if (failed === undefined) this.log?.warn('erased card data is still in the SQLite WAL: another connection (a backup, a shell) keeps reading it; trying again with backoff');
            else this.log?.warn({ err: failed }, 'erased card data is still in the SQLite WAL: the checkpoint failed; trying again with backoff');
          }
          if (done && this.failures > 0) {
            this.log?.info({ tries: this.failures + 1 }, 'erased card data is out of the SQLite WAL again');
            this.failures = 0;
          }
          if (!done) this.schedule();
        });
    }, this.delay);
    // Closing runs the last one; a waiting try never keeps a process alive.
    this.timer.unref();
  }

  /** One last checkpoint for erasures still waiting, before the connections close. */
  async close(): Promise<void> {
    this.closed = true;
    await this.running;
    if (!this.timer) return;
    clearTimeout(this.timer);
    this.timer = null;
    await this.checkpoint().catch(() => false);
  }
}

/**
 * A file written before every connection ran with secure_delete (decision 0017) keeps the
 * cards erased until then in its free space: VACUUM rewrites it without that space (its copy
 * in temporary files, not memory: a file of gigabytes would otherwise need as much RAM), and
 * the TRUNCATE checkpoint after it empties the WAL. An operator runs it once, gateway stopped
 * (`npm run cli -- database scrub`): it copies the whole file and holds the write lock while
 * it does. Answers whether the WAL is empty afterwards.
 */
function scrubFreeSpace(raw: SQLite.Database): boolean {
  raw.pragma('temp_store = FILE');
  try {
    raw.exec('VACUUM');
  } finally {
    raw.pragma('temp_store = MEMORY');
  }
  return (raw.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>)[0]?.busy === 0;
}

/**
 * A TRUNCATE checkpoint that never waits for other connections' readers: its busy handler
 * would sleep the event loop until they leave the WAL (up to the busy timeout, again and
 * again). It tries once and answers whether the WAL is empty now.
 */
function truncateWal(raw: SQLite.Database): boolean {
  raw.pragma('busy_timeout = 0');
  try {
    return (raw.pragma('wal_checkpoint(TRUNCATE)') as Array<{ busy: number }>)[0]?.busy === 0;
  } finally {
    raw.pragma(`busy_timeout = ${BUSY_TIMEOUT_MS}`);
  }
}

/**
 * Kysely prepares every query afresh; compiling SQL is a large share of a small
 * query's cost, so statements are kept by their text.
 */
function withStatementCache(raw: SQLite.Database): { close(): void; prepare(sql: string): SQLite.Statement } {
  const prepare = statementCache(raw);
  // SQLite rolls a transaction back itself when a write fails for want of disk (SQLITE_FULL,
  // SQLITE_IOERR): Kysely's ROLLBACK after it would fail, and its "no transaction is active"
  // would reach the caller instead of the error that says what happened.
  const nothing = raw.prepare('select 0 where 0');
  return { close: () => raw.close(), prepare: (text) => (text === 'rollback' && !raw.inTransaction ? nothing : prepare(text)) };
}

/**
 * A server that cannot be reached never answers a connection attempt, and a pool whose
 * connections are all taken queues requests for ever: both give up after this long, so a
 * request is answered (503) rather than left hanging.
 */
export const PG_CONNECT_TIMEOUT_MS = 5_000;

function openPostgres(url: string, poolSize: number, cardKek: Kek | undefined, deadlineMs: () => number): Database {
  // int8 columns hold epoch milliseconds and minor units, both far below 2^53.
  pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
  const pool = new pg.Pool({ connectionString: url, max: poolSize, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS, keepAlive: true });
  // A connection lost (a PostgreSQL restart, a terminated backend) must not kill the
  // process. Idle, the pool hears of it ('error') and replaces it; checked out, pg fails its
  // query and then emits 'error' on the client, which nobody else listens to then: the pool
  // drops it when it comes back unqueryable, and the next query reconnects.
  const survive = (p: pg.Pool) => {
    p.on('error', () => {});
    p.on('connect', (client) => client.on('error', () => {}));
  };
  survive(pool);
  const db = new Kysely<Schema>({ dialect: new PostgresDialect({ pool: withDeadline(pool, deadlineMs) }) });
  // A named statement is parsed and planned once per connection; the authorise insert is
  // a few kilobytes of SQL that PostgreSQL would otherwise plan every time. A batch of 32 is
  // a plan of about 1.5 MB in its backend, so batches have connections of their own: only
  // those backends hold them, not every connection of the pool.
  const insertPool = new pg.Pool({ connectionString: url, max: InsertBatcher.IN_FLIGHT, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS, keepAlive: true });
  survive(insertPool);
  // As insertPool.query would, but with the other queries' deadline: a client whose query
  // failed is dropped, not pooled.
  const inserts = new InsertBatcher(async (c) => {
    const client = await insertPool.connect();
    try {
      await answeredWithin(client, client.query({ name: statementName(c.sql), text: c.sql, values: c.params }), deadlineMs());
    } catch (error) {
      client.release(true);
      throw error;
    }
    client.release();
  });
  return {
    db,
    dialect: 'postgres',
    caps: { rowLocks: true },
    transaction: (fn) => db.transaction().execute(fn),
    // Dead rows wait for VACUUM and WAL segments for recycling, neither the gateway's to hurry.
    shredErased: () => {},
    scrubFreeSpace: async () => null,
    // A server that answers but takes no writes (a standby after a failover, a database made
    // read-only) fails every payment while reads go on: that is not ready.
    writable: async () => {
      const r = await sql<{ ro: string }>`select current_setting('transaction_read_only') as ro`.execute(db);
      if (r.rows[0]?.ro === 'on') throw Object.assign(new Error('the PostgreSQL server takes no writes here (a standby, or the database is read-only)'), { code: '25006' });
    },
    // Units with JavaScript inside stay one transaction each: grouping them was measured
    // (docs/benchmarks.md) and a unit waiting for a row lock stalled its whole batch, which
    // cost the hosted-page flow far more than it saved. Insert-only units take no row locks
    // and are grouped (InsertBatcher, decision 0011).
    write: (fn) => db.transaction().execute(fn),
    insert: async (rows) => inserts.insert(compileInsertParts(db, rows, cardKek)),
    apply: (statements) =>
      db.transaction().execute(async (trx) => {
        for (const s of statements) await trx.executeQuery(CompiledQuery.raw(s.sql, paramsWithCard(s, cardKek)));
      }),
    async sizeBytes() {
      const r = await sql<{ size: number }>`select pg_database_size(current_database())::int8 as size`.execute(db);
      return Number(r.rows[0]?.size ?? 0);
    },
    ...closing(async () => {
      await db.destroy();
      await insertPool.end();
    }),
  };
}

/**
 * A connection that goes silent in the middle of a query (the server's host gone, a route
 * dropped, a proxy stalled) would hold its request, and its pool slot, until TCP gives up
 * many minutes later. After `deadlineMs()` the query fails, so its request gets an answer,
 * and the connection is dropped rather than handed to the next request (it may still be
 * busy with the abandoned query); so is one that its server ended mid-query (a restart).
 * Whether a COMMIT cut short took effect cannot be known: the caller is told the database was
 * unavailable and retries under its idempotency key.
 */
function withDeadline(pool: pg.Pool, deadlineMs: () => number): PostgresPool {
  return {
    async connect(): Promise<PostgresPoolClient> {
      const client = await pool.connect();
      // What ended the connection: the transaction's ROLLBACK after it fails with it too, and
      // Kysely reports the ROLLBACK's error, so the log names the real cause.
      let dead: Error | null = null;
      return {
        query: ((sqlText: string, parameters: unknown[]) => {
          if (dead) return Promise.reject(dead);
          return answeredWithin(client, client.query(sqlText, parameters), deadlineMs()).catch((error: unknown) => {
            if (error instanceof DatabaseDeadlineError || isConnectionLost(error)) dead = error as Error;
            throw error;
          });
        }) as PostgresPoolClient['query'],
        release: (destroy) => client.release(dead !== null || destroy === true),
      };
    },
    end: () => pool.end(),
  };
}

/** `query`'s answer, or a DatabaseDeadlineError (its connection's socket destroyed) after `ms` without one (0: no limit). */
function answeredWithin<T>(client: pg.PoolClient, query: Promise<T>, ms: number): Promise<T> {
  if (ms <= 0) return query;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // The pool would end it politely, waiting for an answer that is not coming.
      destroySocket(client);
      reject(new DatabaseDeadlineError(ms));
    }, ms);
  });
  query.catch(() => {});
  return Promise.race([query, late]).finally(() => clearTimeout(timer));
}

/** pg has no public way to drop a connection without a goodbye the server must answer. */
function destroySocket(client: pg.ClientBase): void {
  (client as unknown as { connection: { stream: { destroy(): void } } }).connection.stream.destroy();
}

/**
 * Ends a client politely, or, when its server has not answered within `ms` (a connection
 * gone silent would keep end() waiting for ever, and a shutdown with it), drops its socket.
 */
export async function endWithin(client: pg.Client, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      destroySocket(client);
      resolve();
    }, ms);
  });
  await Promise.race([client.end().catch(() => {}), late]);
  clearTimeout(timer);
}

type QueuedInsert = { parts: CompiledStatement[]; shape: object; resolve: () => void; reject: (e: unknown) => void };

/**
 * PostgreSQL's group commit for insert-only units (on SQLite the writer thread does this):
 * units that queue while others are in flight go out together as one statement, one
 * round trip and one commit for all of them. Only units of one shape share a statement,
 * and only in counts that are powers of two, so the statements PostgreSQL prepares stay few
 * (a shape times six counts). A statement that PostgreSQL answers with an error (a unique
 * key taken, or a backend terminated mid-statement: either way nothing of it committed) is
 * run again unit by unit, so a failure is that unit's alone; one whose connection is lost
 * with no answer fails its units, as it would unbatched, since it may have committed.
 */
class InsertBatcher {
  /** Statements in flight at once: the fewer, the more units each one carries. */
  static readonly IN_FLIGHT = 2;
  /** Units per statement at most, a power of two (about 60 parameters each for authorise; a statement may bind 65,535). */
  static readonly UNITS = 32;
  private queue: QueuedInsert[] = [];
  private inFlight = 0;

  constructor(private readonly run: (statement: CompiledStatement) => Promise<void>) {}

  insert(parts: CompiledStatement[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.queue.push({ parts, shape: insertShape(parts), resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.queue.length > 0 && this.inFlight < InsertBatcher.IN_FLIGHT) {
      const shape = this.queue[0]!.shape;
      let same = 0;
      for (const unit of this.queue) if (unit.shape === shape) same++;
      const take = Math.min(InsertBatcher.UNITS, 2 ** Math.floor(Math.log2(same)));
      const batch: QueuedInsert[] = [];
      const rest: QueuedInsert[] = [];
      for (const unit of this.queue) (unit.shape === shape && batch.length < take ? batch : rest).push(unit);
      this.queue = rest;
      this.inFlight++;
      void this.send(batch).finally(() => {
        this.inFlight--;
        this.pump();
      });
    }
  }

  private async send(batch: QueuedInsert[]): Promise<void> {
    try {
      await this.run(combineInserts(batch.flatMap((u) => u.parts)));
      for (const u of batch) u.resolve();
    } catch (error) {
      if (batch.length === 1 || !(error instanceof pg.DatabaseError)) {
        for (const u of batch) u.reject(error);
        return;
      }
      await Promise.all(batch.map((u) => this.run(combineInserts(u.parts)).then(u.resolve, u.reject)));
    }
  }
}

const statementNames = new Map<string, string>();

/** A prepared-statement name that only this SQL text gets (a name reused for another text is an error in PostgreSQL). */
function statementName(text: string): string {
  let name = statementNames.get(text);
  if (!name) {
    if (statementNames.size >= 1000) statementNames.clear();
    name = `tz_${createHash('sha256').update(text).digest('hex').slice(0, 32)}`;
    statementNames.set(text, name);
  }
  return name;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** A unit of work: JavaScript inside the transaction, or compiled statements only. */
type Unit = { fn: (trx: Trx) => Promise<unknown>; statements?: undefined } | { statements: CompiledStatement[]; fn?: undefined };

type Job = Unit & {
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
};

/**
 * SQLite has one writer at a time. The main connection's transactions and the writer
 * thread's batches take turns here, so neither ever waits on the other's lock inside
 * SQLite (a busy wait there would block the event loop). Writer-thread batches may
 * overlap each other (the thread runs them one after another); a main-connection
 * transaction runs alone. First come, first served.
 */
class WriteTurns {
  private active = 0;
  private exclusive = false;
  private readonly waiting: Array<{ shared: boolean; start: () => void }> = [];

  take<T>(fn: () => Promise<T>, shared = false): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.waiting.push({
        shared,
        start: () => {
          fn()
            .then(resolve, reject)
            .finally(() => {
              this.active--;
              if (!shared) this.exclusive = false;
              this.admit();
            });
        },
      });
      this.admit();
    });
  }

  private admit(): void {
    while (this.waiting.length) {
      const next = this.waiting[0]!;
      if (next.shared ? this.exclusive : this.active > 0) return;
      this.waiting.shift();
      this.active++;
      if (!next.shared) this.exclusive = true;
      next.start();
    }
  }
}

/**
 * Collects units of work that arrive together and commits them in one SQLite
 * transaction: one fsync for many payments instead of one each. Insert-only units go to
 * the writer thread, the others to the main connection, each lane batching what
 * queued while it was busy. Nothing is acknowledged before its COMMIT has returned.
 */
class GroupCommitter {
  /**
   * Writer-thread batches in flight at once. Batches are handed over as they form, without
   * waiting for the last commit to be answered (the event loop may be busy for a while
   * before it reads the answer, and the thread would sit idle meanwhile); the thread runs
   * the batches that queued while it was busy as one transaction.
   */
  private static readonly WRITER_PIPELINE = 8;
  private queue: Job[] = [];
  private scheduled = false;
  private readonly running = new Set<Promise<void>>();
  private writerInFlight = 0;
  private mainInFlight = false;

  constructor(
    private readonly db: Kysely<Schema>,
    private readonly windowMs: number,
    private readonly writer: SqliteWriter | null,
    private readonly turns: WriteTurns,
    private readonly cardKek: Kek | undefined,
  ) {}

  run<T>(unit: Unit): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ ...unit, resolve: resolve as (v: unknown) => void, reject });
      this.schedule();
    });
  }

  /** Waits for queued and running batches (before closing the database). */
  async drain(): Promise<void> {
    while (this.running.size || this.queue.length || this.scheduled) {
      await (this.running.size ? Promise.allSettled(this.running) : new Promise((r) => setImmediate(r)));
    }
  }

  private schedule(): void {
    if (this.scheduled || !this.queue.some((j) => this.canStart(this.goesToWriter(j)))) return;
    this.scheduled = true;
    const go = () => {
      this.scheduled = false;
      // Insert-only units go to the writer thread even when units with JavaScript in
      // them (which need the main connection) arrived with them; each kind waits only
      // for its own lane.
      const writerFree = this.canStart(true);
      const mainFree = this.canStart(false);
      const forWriter: Job[] = [];
      const forMain: Job[] = [];
      const waiting: Job[] = [];
      for (const job of this.queue) {
        const toWriter = this.goesToWriter(job);
        if (toWriter && writerFree) forWriter.push(job);
        else if (!toWriter && mainFree) forMain.push(job);
        else waiting.push(job);
      }
      this.queue = waiting;
      if (forMain.length) this.start(forMain, false);
      if (forWriter.length) this.start(forWriter, true);
    };
    if (this.windowMs > 0) setTimeout(go, this.windowMs);
    else setImmediate(go);
  }

  private goesToWriter(job: Job): boolean {
    return this.writer !== null && job.statements !== undefined;
  }

  private canStart(onWriter: boolean): boolean {
    return onWriter ? this.writerInFlight < GroupCommitter.WRITER_PIPELINE : !this.mainInFlight;
  }

  private start(batch: Job[], onWriter: boolean): void {
    if (onWriter) this.writerInFlight++;
    else this.mainInFlight = true;
    const flushing = this.flush(batch, onWriter).finally(() => {
      this.running.delete(flushing);
      if (onWriter) this.writerInFlight--;
      else this.mainInFlight = false;
      this.schedule();
    });
    this.running.add(flushing);
  }

  private async flush(batch: Job[], onWriter: boolean): Promise<void> {
    try {
      const outcomes = await (onWriter ? this.turns.take(() => this.onWriter(this.writer!, batch), true) : this.turns.take(() => this.onMain(batch)));
      batch.forEach((job, i) => {
        const o = outcomes[i]!;
        if (o.ok) job.resolve(o.value);
        else job.reject(o.error);
      });
    } catch (error) {
      // The batch failed as a whole: nothing was committed or, if the writer thread died
      // under it, nobody can tell (as with a crash). Every unit learns so.
      for (const job of batch) job.reject(error);
    }
  }

  private async onWriter(writer: SqliteWriter, batch: Job[]): Promise<Outcome[]> {
    let outcomes: UnitOutcome[];
    try {
      outcomes = await writer.run(batch.map((j) => j.statements!));
    } catch (error) {
      // A unit whose values cannot be copied to the thread (nothing was sent) is refused
      // alone: its batch goes again unit by unit.
      if (batch.length === 1 || (error as Error)?.name !== 'DataCloneError') throw error;
      return Promise.all(batch.map((job) => this.onWriter(writer, [job]).then(([o]) => o!, (e: unknown): Outcome => ({ ok: false, error: e }))));
    }
    return outcomes.map((o: UnitOutcome) => (o.ok ? { ok: true, value: undefined } : { ok: false, error: new SqliteWriteError(o.message, o.code) }));
  }

  private async onMain(batch: Job[]): Promise<Outcome[]> {
    // Units rarely fail, so the batch first runs without savepoints (they cost a
    // journal of every page a unit touches). If one fails, the whole transaction is
    // rolled back and the batch runs again with each unit in its own savepoint, so
    // the failure is that unit's alone.
    try {
      return await this.runBatch(batch, false);
    } catch (error) {
      // A file that cannot be written fails every unit alike (and SQLite has already rolled
      // back the transaction the savepoints would need).
      if (batch.length === 1 || isDatabaseUnavailable(error)) return batch.map(() => ({ ok: false, error }));
      return this.runBatch(batch, true);
    }
  }

  private runBatch(batch: Job[], isolated: boolean): Promise<Outcome[]> {
    return this.db.transaction().execute(async (trx) => {
      const outcomes: Outcome[] = [];
      for (const job of batch) {
        if (!isolated) {
          outcomes.push({ ok: true, value: await runUnit(trx, job, this.cardKek) });
          continue;
        }
        await sql`savepoint unit`.execute(trx);
        try {
          const value = await runUnit(trx, job, this.cardKek);
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

/** Runs on SQLite's main connection (the writer thread has its own loop). */
async function runUnit(trx: Trx, unit: Unit, cardKek: Kek | undefined): Promise<unknown> {
  if (unit.fn) return unit.fn(trx);
  for (const s of unit.statements) await trx.executeQuery(CompiledQuery.raw(s.sql, sqliteParams(s, cardKek)));
  return undefined;
}

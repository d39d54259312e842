import SQLite from 'better-sqlite3';
import pg from 'pg';
import { type CompiledQuery, type Kysely, sql } from 'kysely';
import { type Database, PG_CONNECT_TIMEOUT_MS, endWithin } from '../adapters/storage/database.js';
import type { ChannelsTable, MerchantsTable, Schema, SecretKeysTable } from '../adapters/storage/schema.js';
import type { AppContext } from './context.js';
import { compiledOnce } from '../adapters/storage/compiled.js';
import type { EndpointInterest } from './event-interest.js';
import type { KeyMode } from '../domain/secret-key.js';
import { subscriptionOf } from './webhook-endpoints.js';

/**
 * A secret key that may be used: its merchant, its id, its stored SHA-256 (for the constant-time
 * check), whether its merchant is suspended and the key's mode (null: both, a key made before modes).
 */
export interface ActiveKey {
  readonly merchantId: string;
  readonly keyId: string;
  readonly hash: Buffer;
  readonly suspended: boolean;
  readonly mode: KeyMode | null;
}

/** Keys in use: bounded by the keys in the database, capped in case there are very many. */
const ACTIVE_KEYS_CAP = 10_000;
/** Unknown and revoked hashes: anyone can send random keys, so these churn in a small space. */
const REJECTED_KEYS_CAP = 1_000;
const CHANNELS_CAP = 10_000;
/** Merchants whose enabled endpoints are kept. */
const ENDPOINT_MERCHANTS_CAP = 10_000;
/** After losing the PostgreSQL listener, lookups go to the database and try again after this long. */
const RELISTEN_AFTER_MS = 1_000;
/** How often the PostgreSQL listener proves its connection alive (see PostgresListener). */
const HEARTBEAT_MS = 1_000;
/**
 * A listener whose last proof of life is older than this is not trusted: lookups bypass
 * the cache until it answers again (or is replaced), so a connection that died without a
 * word leaves a revoked key usable for at most this long, not two heartbeats.
 */
const TRUST_FOR_MS = HEARTBEAT_MS + 500;

/** How long the listener's server has to answer its goodbye before the socket is dropped. */
const END_WITHIN_MS = 1_000;

/** The channel migration 007's (and 012's) triggers notify on PostgreSQL. */
const NOTIFY_CHANNEL = 'config_changed';

/** A lookup's SQL, compiled once by its owner (compiledOnce), for one parameter. */
export type Query = (db: Kysely<Schema>, param: string) => CompiledQuery;
/** A merchant's channel by reference, compiled once by its owner: parameters reference, then merchant id. */
export type ChannelQuery = (db: Kysely<Schema>, reference: string, merchantId: string) => CompiledQuery;
/** What the secret-key query must select. */
export type KeyRow = Pick<SecretKeysTable, 'id' | 'merchant_id' | 'key_hash' | 'revoked_at' | 'mode'> & Pick<MerchantsTable, 'suspended_at'>;

/** Tells the cache whether it may be used now; empties it (through a callback) when what it holds may be out of date. */
interface Watch {
  /** False: answer from the database and keep nothing. */
  usable(): boolean;
  start(): Promise<void>;
  close(): Promise<void>;
}

/**
 * In-memory answers for the two reads every API request makes before any work: the
 * secret key (by SHA-256 hash) and the merchant's channel (by reference); and for the outbox, each
 * merchant's enabled webhook endpoints. Rows handed out are shared, so callers only
 * read them. A change, also one made by another process (the operator CLI), applies
 * from the next request on:
 *
 * - Migration 007's triggers move a one-row counter (config_versions) in the same
 *   transaction as any change to merchants (a suspension too), channels or secret keys, whoever makes it,
 *   and on PostgreSQL also NOTIFY; migration 012's do the same for the endpoint columns
 *   that decide which events an endpoint takes.
 * - SQLite: lookups first read that counter (a prepared primary-key read on a
 *   read-only connection of its own: ~3 µs, where a lookup through Kysely costs 11-20;
 *   once per event-loop turn, shared by the requests handled in it) and empty the
 *   cache when it moved. `PRAGMA data_version` would cost the same (it
 *   too opens a read transaction) but moves on every commit of another connection, and
 *   the gateway's own payment writes run on one (the writer thread): under load the
 *   cache would be emptied on nearly every request.
 * - PostgreSQL: reading the counter would be a round trip per check, so a dedicated
 *   client LISTENs and a notification empties the cache. PostgreSQL signals listeners
 *   as the writer's COMMIT completes, so the notification arrives within a fraction of
 *   a millisecond, before a CLI process has even printed its result. While the client
 *   is not listening (starting, reconnecting, or unanswered for more than 1.5 s: it
 *   proves itself every second) lookups bypass the cache, and it is emptied when
 *   listening resumes, because notifications may have been missed meanwhile.
 * - Writes through this process's services also empty it at once (`drop`), since a
 *   notification arrives asynchronously.
 * A lookup that began before the cache was emptied keeps its answer out of it: the row
 * it read may be the old one.
 */
export class LookupCache {
  private static readonly byDatabase = new WeakMap<Database, LookupCache>();

  static of(ctx: AppContext): LookupCache {
    let cache = LookupCache.byDatabase.get(ctx.database);
    if (!cache) {
      cache = new LookupCache(ctx);
      LookupCache.byDatabase.set(ctx.database, cache);
    }
    return cache;
  }

  private readonly activeKeys = new Map<string, ActiveKey>();
  private readonly rejectedKeys = new Set<string>();
  private readonly channels = new Map<string, Readonly<ChannelsTable>>();
  private readonly channelsById = new Map<string, Readonly<ChannelsTable>>();
  private readonly endpointsByMerchant = new Map<string, readonly EndpointInterest[]>();
  /** Endpoint loads in flight, so the events of a merchant not yet cached share one read. */
  private readonly loadingEndpoints = new Map<string, Promise<readonly EndpointInterest[]>>();
  /** Moves whenever the cache is emptied, so a lookup in flight can tell. */
  private generation = 0;
  private watch: Watch | null = null;

  private constructor(private readonly ctx: AppContext) {
    // The watch holds a connection of its own that must close with the database (a
    // PostgreSQL test database cannot be dropped while it is open).
    ctx.database.onClose(async () => {
      await this.watch?.close();
    });
  }

  /** Begins watching for changes now rather than at the first lookup; resolves once the cache is in use. */
  start(): Promise<void> {
    return this.watcher().start();
  }

  /** The key with this SHA-256 (hex) if it exists and is not revoked; `query` selects a KeyRow by hash. */
  async secretKey(hash: string, query: Query): Promise<ActiveKey | undefined> {
    if (!this.watcher().usable()) return this.loadKey(hash, query);
    const hit = this.activeKeys.get(hash);
    if (hit !== undefined || this.rejectedKeys.has(hash)) return hit;
    const generation = this.generation;
    const key = await this.loadKey(hash, query);
    if (generation === this.generation) {
      if (key) remember(this.activeKeys, hash, key, ACTIVE_KEYS_CAP);
      else {
        if (this.rejectedKeys.size >= REJECTED_KEYS_CAP) this.rejectedKeys.delete(this.rejectedKeys.values().next().value!);
        this.rejectedKeys.add(hash);
      }
    }
    return key;
  }

  /**
   * The merchant's channel with this reference; `query` selects it by reference and merchant.
   * Kept per merchant, so another merchant's channel is never answered from memory: its
   * reference goes to the database and finds nothing, exactly as one that does not exist
   * (misses are not kept), and the time taken does not tell which channels exist.
   */
  async channel(merchantId: string, reference: string, query: ChannelQuery): Promise<Readonly<ChannelsTable> | undefined> {
    if (!this.watcher().usable()) return this.loadMerchantChannel(merchantId, reference, query);
    const cacheKey = `${merchantId}\u0000${reference}`;
    const hit = this.channels.get(cacheKey);
    if (hit !== undefined) return hit;
    const generation = this.generation;
    const row = await this.loadMerchantChannel(merchantId, reference, query);
    if (row && generation === this.generation) {
      remember(this.channels, cacheKey, row, CHANNELS_CAP);
      // The payment's event names its channel by id (the outbox's e-mail rules): the same row.
      remember(this.channelsById, row.id, row, CHANNELS_CAP);
    }
    return row;
  }

  /**
   * The channel with this id (a payment's channel: the hosted page, its return, the
   * outbox's e-mail rules); throws if there is none, since payments keep their channel.
   */
  async channelById(id: string): Promise<Readonly<ChannelsTable>> {
    const usable = this.watcher().usable();
    const hit = usable ? this.channelsById.get(id) : undefined;
    if (hit !== undefined) return hit;
    const generation = this.generation;
    const row = await this.loadChannel(id, channelRowById);
    if (!row) throw new Error(`channel ${id} does not exist`);
    if (usable && generation === this.generation) remember(this.channelsById, id, row, CHANNELS_CAP);
    return row;
  }

  /**
   * The merchant's enabled endpoints: whom the outbox's fan-out delivers its events to.
   * Loads for a merchant not cached are shared by the events that miss meanwhile.
   */
  endpoints(merchantId: string): Promise<readonly EndpointInterest[]> {
    const hit = this.watcher().usable() ? this.endpointsByMerchant.get(merchantId) : undefined;
    if (hit !== undefined) return Promise.resolve(hit);
    let loading = this.loadingEndpoints.get(merchantId);
    if (!loading) {
      const started: Promise<readonly EndpointInterest[]> = this.endpointsOf([merchantId])
        .then((found) => found.get(merchantId)!)
        .finally(() => {
          if (this.loadingEndpoints.get(merchantId) === started) this.loadingEndpoints.delete(merchantId);
        });
      this.loadingEndpoints.set(merchantId, started);
      loading = started;
    }
    return loading;
  }

  /**
   * Caches the merchant's endpoints if they are not cached, for decisions made without
   * waiting (src/app/event-interest.ts); nothing while the cache cannot be used, when the
   * read would be thrown away.
   */
  async keepEndpoints(merchantId: string): Promise<void> {
    if (this.watcher().usable() && !this.endpointsByMerchant.has(merchantId)) await this.endpoints(merchantId);
  }

  /** Several merchants' enabled endpoints (a fan-out batch's): the cached ones from memory, the others in one read. */
  async endpointsOf(merchantIds: readonly string[]): Promise<Map<string, readonly EndpointInterest[]>> {
    const usable = this.watcher().usable();
    const found = new Map<string, EndpointInterest[]>();
    const out = new Map<string, readonly EndpointInterest[]>();
    for (const id of merchantIds) {
      const hit = usable ? this.endpointsByMerchant.get(id) : undefined;
      if (hit !== undefined) out.set(id, hit);
      else found.set(id, []);
    }
    if (found.size === 0) return out;
    const generation = this.generation;
    const rows = await this.ctx.database.db
      .selectFrom('webhook_endpoints')
      // The filter's channel mode: an endpoint filtered to a live channel takes compliance events.
      .leftJoin('channels', 'channels.id', 'webhook_endpoints.channel_id')
      .select(['webhook_endpoints.merchant_id', 'webhook_endpoints.id', 'webhook_endpoints.events', 'webhook_endpoints.channel_id', 'webhook_endpoints.mode', 'webhook_endpoints.created_at', 'channels.mode as channel_mode'])
      .where('webhook_endpoints.merchant_id', 'in', [...found.keys()])
      .where('webhook_endpoints.status', '=', sql.lit('enabled'))
      .where('webhook_endpoints.deleted_at', 'is', null)
      .orderBy('webhook_endpoints.id')
      .execute();
    for (const r of rows) found.get(r.merchant_id)!.push({ id: r.id, created_at: r.created_at, sub: subscriptionOf(r) });
    for (const [id, list] of found) {
      if (usable && generation === this.generation) remember(this.endpointsByMerchant, id, list, ENDPOINT_MERCHANTS_CAP);
      out.set(id, list);
    }
    return out;
  }

  /** The merchant's endpoints if they are cached and the cache can be trusted now, without waiting; otherwise undefined. */
  cachedEndpoints(merchantId: string): readonly EndpointInterest[] | undefined {
    return this.trusted() ? this.endpointsByMerchant.get(merchantId) : undefined;
  }

  /** The channel with this id if it is cached and the cache can be trusted now, without waiting; otherwise undefined. */
  cachedChannelById(id: string): Readonly<ChannelsTable> | undefined {
    return this.trusted() ? this.channelsById.get(id) : undefined;
  }

  /**
   * Whether what is cached may be used. Without a watch nothing has been cached, and
   * peeking does not start one: a process that only writes events (the CLI) opens no
   * listener or counter connection for it.
   */
  private trusted(): boolean {
    return this.watch !== null && this.watch.usable();
  }

  /** Forget everything: called after this process changed a key, a channel or an endpoint, and by the watch. */
  drop(): void {
    this.generation++;
    this.activeKeys.clear();
    this.rejectedKeys.clear();
    this.channels.clear();
    this.channelsById.clear();
    this.endpointsByMerchant.clear();
    this.loadingEndpoints.clear();
  }

  /** Entry counts, to show the caps hold. */
  sizes(): { activeKeys: number; rejectedKeys: number; channels: number; endpointMerchants: number } {
    return { activeKeys: this.activeKeys.size, rejectedKeys: this.rejectedKeys.size, channels: this.channels.size + this.channelsById.size, endpointMerchants: this.endpointsByMerchant.size };
  }

  private watcher(): Watch {
    if (!this.watch) {
      const { database, config } = this.ctx;
      const changed = () => this.drop();
      this.watch =
        database.dialect === 'sqlite'
          ? new SqliteCounter(database.file!, changed)
          : new PostgresListener(config.databaseUrl!, changed, (error) =>
              this.ctx.log.warn({ err: error }, 'cannot LISTEN for config changes; key and channel lookups go to the database until it can'),
            );
    }
    return this.watch;
  }

  private async loadKey(hash: string, query: Query): Promise<ActiveKey | undefined> {
    const db = this.ctx.database.db;
    const row = (await db.executeQuery<KeyRow>(query(db, hash))).rows[0];
    if (!row || row.revoked_at !== null) return undefined;
    return { merchantId: row.merchant_id, keyId: row.id, hash: Buffer.from(row.key_hash, 'hex'), suspended: row.suspended_at !== null, mode: row.mode };
  }

  private async loadChannel(id: string, query: Query): Promise<ChannelsTable | undefined> {
    const db = this.ctx.database.db;
    return (await db.executeQuery<ChannelsTable>(query(db, id))).rows[0];
  }

  private async loadMerchantChannel(merchantId: string, reference: string, query: ChannelQuery): Promise<ChannelsTable | undefined> {
    const db = this.ctx.database.db;
    return (await db.executeQuery<ChannelsTable>(query(db, reference, merchantId))).rows[0];
  }
}

const channelRowById = compiledOnce((db, id: string) => db.selectFrom('channels').selectAll().where('id', '=', id));

/** Oldest entry out first: Maps iterate in insertion order. */
function remember<V>(map: Map<string, V>, key: string, value: V, cap: number): void {
  if (map.size >= cap) map.delete(map.keys().next().value!);
  map.set(key, value);
}

/** SQLite: compares config_versions.version with the value last seen, on every use. */
class SqliteCounter implements Watch {
  private readonly connection: SQLite.Database;
  private readonly read: SQLite.Statement<[], number>;
  /** No version is negative: the first check always counts as a change. */
  private seen = -1;
  private checkedThisTurn = false;

  constructor(
    file: string,
    private readonly changed: () => void,
  ) {
    // Its own read-only connection: it never sees another connection's uncommitted
    // transaction, and a read never waits behind Kysely's connection lock.
    this.connection = new SQLite(file, { readonly: true, fileMustExist: true });
    this.read = this.connection.prepare<[], number>('select version from config_versions where id = 1').pluck();
  }

  usable(): boolean {
    // Requests handled in one event-loop turn arrived together: one reading serves them
    // all, so under load the read costs once per turn rather than twice per request.
    if (this.checkedThisTurn) return true;
    this.checkedThisTurn = true;
    setImmediate(() => {
      this.checkedThisTurn = false;
    });
    const version = this.read.get()!;
    if (version !== this.seen) {
      this.seen = version;
      this.changed();
    }
    return true;
  }

  async start(): Promise<void> {}

  async close(): Promise<void> {
    this.connection.close();
  }
}

/**
 * PostgreSQL: a client of its own LISTENs for the triggers' NOTIFY. Its times (the last
 * answer, the next try) are read from Date.now, not the injected clock: they measure a
 * connection against real timers, and a test's manual clock, frozen or moved on by days,
 * would keep a lost listener from ever trying again or distrust a live one.
 */
class PostgresListener implements Watch {
  private client: pg.Client | null = null;
  private listening = false;
  private closed = false;
  private retryAt = 0;
  private connecting: Promise<void> | null = null;
  private heartbeat: NodeJS.Timeout | null = null;
  /** When the listening client last answered (LISTEN or a heartbeat). */
  private answeredAt = 0;
  /** Lookups found the client silent for too long; its next answer empties the cache. */
  private distrusted = false;

  constructor(
    private readonly url: string,
    private readonly changed: () => void,
    private readonly failed: (error: unknown) => void,
  ) {}

  usable(): boolean {
    const now = Date.now();
    if (!this.listening && !this.connecting && !this.closed && now >= this.retryAt) this.start().catch(this.failed);
    if (this.listening && now - this.answeredAt > TRUST_FOR_MS) this.distrusted = true;
    return this.listening && !this.distrusted;
  }

  start(): Promise<void> {
    if (this.listening || this.closed) return Promise.resolve();
    this.connecting ??= this.listen().finally(() => (this.connecting = null));
    return this.connecting;
  }

  private async listen(): Promise<void> {
    // A server that cannot be reached would leave connect() or LISTEN unsettled for ever, and
    // with them `connecting`: no new try would start once the server was back.
    const client = new pg.Client({ connectionString: this.url, keepAlive: true, connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS, query_timeout: PG_CONNECT_TIMEOUT_MS });
    this.client = client;
    client.on('error', (error) => this.lose(client, error));
    client.on('end', () => this.lose(client));
    client.on('notification', this.changed);
    try {
      // pg never settles a connect that end() interrupts (close() while connecting), which
      // would hold close() for ever; the client's 'end' comes either way.
      await Promise.race([client.connect(), new Promise<never>((_, reject) => client.once('end', () => reject(new Error('the listener closed while connecting'))))]);
      await client.query(`listen ${NOTIFY_CHANNEL}`);
    } catch (error) {
      this.lose(client);
      if (this.closed) return;
      throw error;
    }
    if (this.client !== client) return;
    // Changes committed before LISTEN took effect sent no notification to this client.
    this.changed();
    this.listening = true;
    this.answeredAt = Date.now();
    this.distrusted = false;
    // A connection that died without a word (an idle one dropped by a firewall or NAT)
    // would deliver no notification and raise no error while the cache went stale. A
    // query every second must be answered before the next; meanwhile lookups stop
    // trusting a client that has been silent for longer than TRUST_FOR_MS (usable()).
    let answered = true;
    this.heartbeat = setInterval(() => {
      if (!answered) return this.lose(client, new Error(`the config change listener did not answer within ${HEARTBEAT_MS} ms`));
      answered = false;
      client.query('select 1').then(
        () => {
          answered = true;
          if (this.client !== client) return;
          this.answeredAt = Date.now();
          // Lookups went to the database while it was silent; what the cache held may be old.
          if (this.distrusted) this.changed();
          this.distrusted = false;
        },
        (error: unknown) => this.lose(client, error),
      );
    }, HEARTBEAT_MS).unref();
  }

  /** Stops trusting this client: the cache is emptied and bypassed until a new one listens. */
  private lose(client: pg.Client, error?: unknown): void {
    if (this.client !== client) return;
    if (error !== undefined) this.failed(error);
    this.client = null;
    this.listening = false;
    this.retryAt = Date.now() + RELISTEN_AFTER_MS;
    this.stopHeartbeat();
    this.changed();
    void endWithin(client, END_WITHIN_MS);
  }

  private stopHeartbeat(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
    this.heartbeat = null;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.listening = false;
    this.stopHeartbeat();
    const client = this.client;
    this.client = null;
    if (client) await endWithin(client, END_WITHIN_MS);
    await this.connecting?.catch(() => {});
  }
}

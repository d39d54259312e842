import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { Kysely, Migrator, SqliteDialect } from 'kysely';
import { migrationProvider } from '../../src/adapters/storage/migrations/index.js';
import { openSqliteConnection, statementCache } from '../../src/adapters/storage/sqlite-connection.js';
import { formatId } from '../../src/domain/ids.js';

const id = (kind: Parameters<typeof formatId>[0], n: number) => formatId(kind, 1_700_000_000_000 + n, new Uint8Array(10).fill(n));
const merchant = id('merchant', 1);
const channel = id('channel', 2);
const payments = [10, 11, 12].map((n) => id('payment', n));
/** A merchant's own reference that happens to be shaped like an id. */
const lookalike = id('payment', 99);

/** The vault's sealed form (src/adapters/vault/envelope.ts), here of made-up bytes. */
const sealed = (n: number, length: number) => [12, length, 16].map((k) => Buffer.alloc(k, n).toString('base64')).join('.');
/** Decoders accept this, but it is not how base64 spells its bytes: it must stay text. */
const notCanonical = `${Buffer.alloc(12, 5).toString('base64')}.QR==.${Buffer.alloc(16, 5).toString('base64')}`;

/** Rows as migrations 001–008 stored them: ids and sealed values as text. */
const OLD: Record<string, Array<Record<string, unknown>>> = {
  merchants: [{ id: merchant, name: 'Shop' }],
  channels: [{ id: channel, merchant_id: merchant, reference: 'shop', return_secret_ct: sealed(7, 32) }],
  payments: payments.map((p, i) => ({ id: p, merchant_id: merchant, channel_id: channel, reference: i === 0 ? lookalike : `order-${i}`, status: 'captured', details: '{"a":1}' })),
  card_secrets: payments.map((p, i) => ({ payment_id: p, kek_id: 'k1', wrapped_dek: sealed(i, 32), pan_ct: i === 2 ? notCanonical : sealed(i + 10, 16) })),
  events: payments.flatMap((p, i) => [1, 2].map((s) => ({ id: id('event', 20 + i * 2 + s), merchant_id: merchant, channel_id: channel, payment_id: p, type: 'payment.created', sequence: s, body: `{"id":"${p}"}`, dispatched: s - 1 }))),
  deliveries: [{ id: id('delivery', 40), event_id: id('event', 21), merchant_id: merchant, target: `email:shop@example.com`, kind: 'email', status: 'pending' }],
};

describe('migration 009: ids and sealed values as bytes, card secrets without rowid (sqlite)', () => {
  let dataDir: string;
  let raw: SQLite.Database;
  let indexesBefore: Record<string, string[]>;

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'tzero-m009-'));
    const file = join(dataDir, 'gateway.sqlite');
    // Migrated as the gateway migrates: foreign keys on, through a connection that binds
    // and reads stored forms.
    const connection = openSqliteConnection(file);
    const db = new Kysely<any>({ dialect: new SqliteDialect({ database: { prepare: statementCache(connection), close: () => connection.close() } }) });
    const migrator = new Migrator({ db, provider: migrationProvider });
    assert.equal((await migrator.migrateTo('008-slim-event-bodies')).error, undefined);
    raw = new SQLite(file);
    for (const [table, rows] of Object.entries(OLD)) for (const row of rows) insertFilled(raw, table, row);
    indexesBefore = indexNames(raw);
    const migrated = await migrator.migrateTo('009-compact-values');
    assert.equal(migrated.error, undefined);
    assert.deepEqual(migrated.results?.map((r) => [r.migrationName, r.status]), [['009-compact-values', 'Success']]);
    await db.destroy();
  });
  after(() => {
    raw?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('stores every id, and only ids, as 17 bytes, and sealed values as their bytes', () => {
    const types = (sqlText: string) => raw.prepare(sqlText).all() as Array<{ t: string; n: number }>;
    assert.deepEqual(types(`select typeof(id) t, length(id) n from payments group by 1, 2`), [{ t: 'blob', n: 17 }]);
    assert.deepEqual(types(`select typeof(merchant_id) || typeof(channel_id) || typeof(payment_id) t, length(id) n from events group by 1, 2`), [{ t: 'blobblobblob', n: 17 }]);
    assert.deepEqual(types(`select typeof(event_id) t, count(*) n from deliveries group by 1`), [{ t: 'blob', n: 1 }]);
    assert.deepEqual(types(`select typeof(id) || typeof(merchant_id) || typeof(return_secret_ct) t, count(*) n from channels group by 1`), [{ t: 'blobblobblob', n: 1 }]);
    assert.deepEqual(raw.prepare('pragma foreign_key_check').all(), []);
    assert.deepEqual(types(`select typeof(target) t, count(*) n from deliveries group by 1`), [{ t: 'text', n: 1 }]);
    assert.deepEqual(types(`select typeof(status) || typeof(details) t, count(*) n from payments group by 1`), [{ t: 'texttext', n: 3 }]);
    assert.deepEqual(types(`select typeof(wrapped_dek) t, sum(length(wrapped_dek)) n from card_secrets group by 1`), [{ t: 'blob', n: 3 * (1 + 12 + 16 + 32) }]);
    assert.deepEqual(types(`select typeof(pan_ct) t, count(*) n from card_secrets group by 1 order by 1`), [{ t: 'blob', n: 2 }, { t: 'text', n: 1 }]);
  });

  it('reads back every row as it was, the id-shaped reference included', () => {
    const prepare = statementCache(raw);
    for (const [table, rows] of Object.entries(OLD)) {
      const keys = Object.keys(rows[0]!);
      const read = prepare(`select ${keys.join(', ')} from ${table} order by ${keys[0]}`).all([]);
      assert.deepEqual(read, [...rows].sort((a, b) => (String(a[keys[0]!]) < String(b[keys[0]!]) ? -1 : 1)), table);
    }
    assert.deepEqual(prepare('select id from payments where reference = ?').all([lookalike]), [{ id: payments[0] }]);
    assert.deepEqual(prepare('select count(*) n from events where payment_id = ?').get([payments[1]]), { n: 2 });
  });

  it('keeps card secrets in their primary key (payments and events stay rowid tables), with the same indexes', () => {
    const ddl = (table: string) => raw.prepare(`select sql from sqlite_master where name = ?`).pluck().get(table) as string;
    assert.match(ddl('card_secrets'), /without rowid\s*$/i);
    for (const table of ['payments', 'events']) assert.doesNotMatch(ddl(table), /without rowid/i, table);
    assert.deepEqual(indexNames(raw), indexesBefore);
  });
});

function indexNames(raw: SQLite.Database): Record<string, string[]> {
  const rows = raw.prepare(`select tbl_name t, name from sqlite_master where type = 'index' and sql is not null order by 1, 2`).all() as Array<{ t: string; name: string }>;
  const out: Record<string, string[]> = {};
  for (const r of rows) (out[r.t] ??= []).push(r.name);
  return out;
}

/** Inserts `row`, giving every other NOT NULL column without a default a value of its type. */
function insertFilled(raw: SQLite.Database, table: string, row: Record<string, unknown>): void {
  const full: Record<string, unknown> = {};
  for (const c of raw.prepare(`select name, type, "notnull" nn, dflt_value d from pragma_table_info(?)`).all(table) as Array<{ name: string; type: string; nn: number; d: unknown }>) {
    if (c.nn && c.d === null) full[c.name] = c.type.toLowerCase() === 'text' ? 'x' : 1;
  }
  Object.assign(full, row);
  const cols = Object.keys(full);
  raw.prepare(`insert into ${table} (${cols.join(', ')}) values (${cols.map((c) => '@' + c).join(', ')})`).run(full);
}

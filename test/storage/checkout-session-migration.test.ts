import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, sql } from 'kysely';
import { migrationProvider } from '../../src/adapters/storage/migrations/index.js';
import { DIALECTS } from '../support/gateway.js';
import { freshPostgresDatabase } from '../support/postgres.js';

/** Sessions as 005 stored them: keyed by token hash, with the token sealed beside them. */
const OLD_ROWS = [
  { token_hash: 'a'.repeat(64), payment_id: 'pay_0000000000010000000000000000000a', token_ct: 'k1|sealed-a', state: 'open', challenge_attempts: 2, created_at: 1_000, expires_at: 901_000 },
  { token_hash: 'b'.repeat(64), payment_id: 'pay_0000000000020000000000000000000b', token_ct: 'k1|sealed-b', state: 'processing', challenge_attempts: 0, created_at: 2_000, expires_at: 902_000 },
  { token_hash: 'c'.repeat(64), payment_id: 'pay_0000000000030000000000000000000c', token_ct: 'k1|sealed-c', state: 'done', challenge_attempts: 3, created_at: 3_000, expires_at: 903_000 },
];
const NEW_ROWS = OLD_ROWS.map(({ token_hash: _hash, token_ct: _ct, ...kept }) => kept);

for (const dialect of DIALECTS) {
  describe(`migration 006: checkout sessions keyed by payment (${dialect})`, () => {
    let db: Kysely<any>;
    let cleanup: () => Promise<void>;

    before(async () => {
      if (dialect === 'postgres') {
        const pgdb = await freshPostgresDatabase();
        db = new Kysely({ dialect: new PostgresDialect({ pool: new pg.Pool({ connectionString: pgdb.url, max: 2 }) }) });
        cleanup = async () => {
          await db.destroy();
          await pgdb.drop();
        };
      } else {
        const dataDir = mkdtempSync(join(tmpdir(), 'tzero-m006-'));
        db = new Kysely({ dialect: new SqliteDialect({ database: new SQLite(join(dataDir, 'gateway.sqlite')) }) });
        cleanup = async () => {
          await db.destroy();
          rmSync(dataDir, { recursive: true, force: true });
        };
      }
      const migrator = new Migrator({ db, provider: migrationProvider });
      const before = await migrator.migrateTo('005-compliance');
      assert.equal(before.error, undefined);
      await db.insertInto('checkout_sessions').values(OLD_ROWS).execute();
      const migrated = await migrator.migrateTo('006-checkout-session-key');
      assert.equal(migrated.error, undefined);
      assert.deepEqual(migrated.results?.map((r) => [r.migrationName, r.status]), [['006-checkout-session-key', 'Success']]);
    });
    after(async () => {
      await cleanup?.();
    });

    it('keeps every session with its state, attempts and times', async () => {
      const rows = await db.selectFrom('checkout_sessions').selectAll().orderBy('payment_id').execute();
      assert.deepEqual(rows.map((r) => ({ ...r, created_at: Number(r.created_at), expires_at: Number(r.expires_at) })), NEW_ROWS);
    });

    it('drops the token hash and the sealed token', async () => {
      const table = (await db.introspection.getTables()).find((t) => t.name === 'checkout_sessions');
      assert.deepEqual(table?.columns.map((c) => c.name).sort(), ['challenge_attempts', 'created_at', 'expires_at', 'payment_id', 'state']);
    });

    it('is keyed by payment id, with no other index', async () => {
      await assert.rejects(db.insertInto('checkout_sessions').values({ ...NEW_ROWS[0], state: 'open' }).execute());
      if (dialect === 'postgres') {
        const { rows } = await sql<{ indexname: string }>`select indexname from pg_indexes where tablename = 'checkout_sessions'`.execute(db);
        assert.deepEqual(rows.map((r) => r.indexname), ['checkout_sessions_pkey']);
        const { rows: pk } = await sql<{ column_name: string }>`
          select a.attname as column_name from pg_index i join pg_attribute a on a.attrelid = i.indrelid and a.attnum = any(i.indkey)
          where i.indrelid = 'checkout_sessions'::regclass and i.indisprimary`.execute(db);
        assert.deepEqual(pk.map((r) => r.column_name), ['payment_id']);
      } else {
        const { rows } = await sql<{ name: string; origin: string }>`select name, origin from pragma_index_list('checkout_sessions')`.execute(db);
        assert.deepEqual(rows.map((r) => r.origin), ['pk']);
        const { rows: pk } = await sql<{ name: string }>`select name from pragma_table_info('checkout_sessions') where pk > 0`.execute(db);
        assert.deepEqual(pk.map((r) => r.name), ['payment_id']);
        // The rows live in the primary key's B-tree: one tree written per insert, not two.
        const { rows: ddl } = await sql<{ sql: string }>`select sql from sqlite_master where name = 'checkout_sessions'`.execute(db);
        assert.match(ddl[0]!.sql, /without rowid\s*$/i);
      }
    });
  });
}

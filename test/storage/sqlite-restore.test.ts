import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { DEFAULT_MIGRATION_TABLE } from 'kysely';
import { restoreSqliteFile } from '../../src/adapters/storage/sqlite-restore.js';

const MIGRATION = '001-foundation';

/** A file restore takes for a gateway's database (one known migration applied), holding `marker`. */
function gatewayFile(file: string, marker: string): void {
  const db = new SQLite(file);
  try {
    db.exec(`create table ${DEFAULT_MIGRATION_TABLE} (name text primary key, timestamp text not null); create table marker (value text)`);
    db.prepare(`insert into ${DEFAULT_MIGRATION_TABLE} values (?, ?)`).run(MIGRATION, new Date(0).toISOString());
    db.prepare('insert into marker values (?)').run(marker);
  } finally {
    db.close();
  }
}

function markerOf(file: string): string {
  const db = new SQLite(file, { readonly: true, fileMustExist: true });
  try {
    return db.prepare('select value from marker').pluck().get() as string;
  } finally {
    db.close();
  }
}

describe('restoreSqliteFile', () => {
  it('restores twice within one second, keeping both replaced files under names of their own', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tzero-restore-twice-'));
    try {
      const database = join(dir, 'gateway.sqlite');
      gatewayFile(database, 'original');
      gatewayFile(join(dir, 'first.sqlite'), 'first backup');
      gatewayFile(join(dir, 'second.sqlite'), 'second backup');
      const now = new Date('2026-11-28T21:10:05.123Z');

      const first = restoreSqliteFile(join(dir, 'first.sqlite'), database, [MIGRATION], now);
      const second = restoreSqliteFile(join(dir, 'second.sqlite'), database, [MIGRATION], new Date(now.getTime() + 500));

      assert.equal(first.kept, `${database}.before-restore-20261128T211005Z`);
      assert.equal(second.kept, `${database}.before-restore-20261128T211005Z-2`);
      assert.equal(markerOf(first.kept), 'original');
      assert.equal(markerOf(second.kept), 'first backup');
      assert.equal(markerOf(database), 'second backup');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { databaseLocation } from '../../src/adapters/storage/database.js';

describe('where a database is, as operators are told', () => {
  it('names the SQLite file in the data directory', () => {
    assert.equal(databaseLocation({ databaseUrl: undefined, dataDir: '/srv/tzero' }), '/srv/tzero/gateway.sqlite');
  });

  it('names the PostgreSQL server, user and database, never a password', () => {
    const cases: Array<[string, string]> = [
      ['postgres://tzero:s3cret@db.internal:5432/pay', 'postgres://tzero@db.internal:5432/pay'],
      ['postgres://tzero:p%40ss@db.internal/pay', 'postgres://tzero@db.internal/pay'],
      ['postgres://tzero@db.internal/pay?password=s3cret&sslmode=require', 'postgres://tzero@db.internal/pay'],
      ['postgresql://db.internal/pay?sslpassword=s3cret', 'postgresql://db.internal/pay'],
      ['postgresql://tzero:s3cret@/pay?host=/run/postgresql', 'the PostgreSQL database of DATABASE_URL'],
    ];
    for (const [url, shown] of cases) {
      assert.equal(databaseLocation({ databaseUrl: url, dataDir: '/x' }), shown);
      assert.ok(!/s3cret|p%40ss/.test(databaseLocation({ databaseUrl: url, dataDir: '/x' })));
    }
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { databaseLocation } from '../../src/adapters/storage/database.js';
import { sandboxCredentialsFile } from '../../src/server.js';

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

  it("names the sandbox's credentials file for every DATABASE_URL pg connects with, also those a URL parser refuses", () => {
    const cases: Array<[string, string]> = [
      ['postgres://tzero:s3cret@db.internal:5433/pay', '/x/sandbox-credentials.postgres-db.internal-5433-pay.json'],
      ['postgres://tzero@[::1]/pay', '/x/sandbox-credentials.postgres-___1_-5432-pay.json'],
      ['postgresql://tzero:s3cret@/pay?host=127.0.0.1', '/x/sandbox-credentials.postgres-127.0.0.1-5432-pay.json'],
      ['postgresql://tzero@/pay?host=/run/postgresql&port=5433', '/x/sandbox-credentials.postgres-_run_postgresql-5433-pay.json'],
      // pg reads a stray % as itself; decodeURIComponent would throw.
      ['postgres://tzero@db.internal/pay%zz', '/x/sandbox-credentials.postgres-db.internal-5432-pay_zz.json'],
    ];
    for (const [url, file] of cases) assert.equal(sandboxCredentialsFile({ dataDir: '/x', databaseUrl: url }), file, url);
  });

  it("names a schema's own file when DATABASE_URL sets a search_path, and keeps the name it had for the default one", () => {
    const cases: Array<[string, string]> = [
      ['postgres://tzero@db.internal/pay?options=-c%20search_path%3Dtenant_a', '/x/sandbox-credentials.postgres-db.internal-5432-pay.tenant_a.json'],
      ['postgres://tzero@db.internal/pay?options=-c%20search_path%3Dtenant_b', '/x/sandbox-credentials.postgres-db.internal-5432-pay.tenant_b.json'],
      ['postgres://tzero@db.internal/pay?options=--search_path%3Dtenant_a,public', '/x/sandbox-credentials.postgres-db.internal-5432-pay.tenant_a_public.json'],
      // The last setting is the one the server keeps.
      ['postgres://tzero@db.internal/pay?options=-c%20search_path%3Dold%20-csearch_path%3Dtenant_c', '/x/sandbox-credentials.postgres-db.internal-5432-pay.tenant_c.json'],
      ['postgresql://tzero@/pay?host=/run/postgresql&options=-c%20search_path%3Dtenant_a', '/x/sandbox-credentials.postgres-_run_postgresql-5432-pay.tenant_a.json'],
      // The default path, written out or not: the name installs made before it have.
      ['postgres://tzero@db.internal/pay?options=-c%20search_path%3D%22%24user%22%2C%5C%20public', '/x/sandbox-credentials.postgres-db.internal-5432-pay.json'],
      ['postgres://tzero@db.internal/pay?options=-c%20search_path%3Dpublic', '/x/sandbox-credentials.postgres-db.internal-5432-pay.json'],
      ['postgres://tzero@db.internal/pay?options=-c%20statement_timeout%3D5000', '/x/sandbox-credentials.postgres-db.internal-5432-pay.json'],
    ];
    for (const [url, file] of cases) assert.equal(sandboxCredentialsFile({ dataDir: '/x', databaseUrl: url }), file, url);
  });
});

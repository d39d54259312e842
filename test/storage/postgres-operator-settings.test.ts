import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import pg from 'pg';
import { sql } from 'kysely';
import { DatabaseUnavailableError, openDatabase } from '../../src/adapters/storage/database.js';
import { isDatabaseUnavailable } from '../../src/adapters/storage/unavailable.js';
import { sandboxCredentialsFile } from '../../src/server.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, postAuthorise } from '../support/http.js';
import { freshPostgresDatabase } from '../support/postgres.js';
import { runCli } from '../support/process.js';
import { eventually } from '../support/browser.js';

/** DATABASE_URL with `?options=-c search_path=<schema>`, as an operator gives a gateway a schema of its own. */
function inSchema(url: string, schema: string): string {
  const u = new URL(url);
  u.searchParams.set('options', `-c search_path=${schema}`);
  return u.toString();
}

// What an operator running the gateway on PostgreSQL sets in DATABASE_URL or on the server.
if (DIALECTS.includes('postgres')) {
  describe('DATABASE_URL and server settings an operator uses (postgres)', () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'tzero-pg-settings-'));
    let pgdb: Awaited<ReturnType<typeof freshPostgresDatabase>>;
    let admin: pg.Client;
    before(async () => {
      pgdb = await freshPostgresDatabase();
      admin = new pg.Client({ connectionString: pgdb.url });
      await admin.connect();
    });
    after(async () => {
      await admin.end();
      await pgdb.drop();
      rmSync(dataDir, { recursive: true, force: true });
    });

    it('several gateways migrating one empty database at once all open it, each migration applied once', async () => {
      const opened = await Promise.allSettled([1, 2, 3].map(() => openDatabase({ dataDir, databaseUrl: pgdb.url, poolSize: 2 })));
      try {
        assert.deepEqual(opened.filter((o) => o.status === 'rejected'), [], 'nobody fails');
        const { rows } = await admin.query<{ name: string; n: number }>('select name, count(*)::int as n from kysely_migration group by name having count(*) > 1');
        assert.deepEqual(rows, []);
      } finally {
        await Promise.all(opened.map((o) => (o.status === 'fulfilled' ? o.value.close() : null)));
      }
    });

    it("migrates into the search_path's schema, though public holds another gateway's tables", async () => {
      await admin.query('create schema gateway_two');
      const database = await openDatabase({ dataDir, databaseUrl: inSchema(pgdb.url, 'gateway_two'), poolSize: 2 });
      try {
        const { rows } = await admin.query<{ n: number }>("select count(*)::int as n from information_schema.tables where table_schema = 'gateway_two' and table_name in ('kysely_migration', 'payments', 'merchants')");
        assert.equal(rows[0]!.n, 3, 'its own tables, in its own schema');
      } finally {
        await database.close();
      }
    });

    it('keeps the sandbox credentials of gateways in two schemas of one database, sharing a DATA_DIR, apart', async () => {
      await admin.query('create schema sandbox_a');
      await admin.query('create schema sandbox_b');
      const shared = mkdtempSync(join(tmpdir(), 'tzero-pg-shared-'));
      const boot = async (schema: string) => {
        const t = await startTestGateway({ env: { DATA_DIR: shared, DATABASE_URL: inSchema(pgdb.url, schema) } });
        await t.close();
        return t.credentials;
      };
      try {
        const first = await boot('sandbox_a');
        const second = await boot('sandbox_b');
        assert.notEqual(second.merchant_id, first.merchant_id, 'each schema made its own sandbox');
        // Booting the first again finds its key: the second did not write over its file.
        assert.deepEqual(await boot('sandbox_a'), first);
        assert.deepEqual(await boot('sandbox_b'), second);
        assert.deepEqual(readdirSync(shared).filter((f) => f.startsWith('sandbox-credentials')).sort(), [
          `${basename(sandboxCredentialsFile({ dataDir: shared, databaseUrl: pgdb.url }), '.json')}.sandbox_a.json`,
          `${basename(sandboxCredentialsFile({ dataDir: shared, databaseUrl: pgdb.url }), '.json')}.sandbox_b.json`,
        ]);
      } finally {
        rmSync(shared, { recursive: true, force: true });
      }
    });

    it("carries a schema's sandbox credentials over from the file named by its database alone, and no other schema's", async () => {
      await admin.query('create schema sandbox_c');
      await admin.query('create schema sandbox_d');
      const shared = mkdtempSync(join(tmpdir(), 'tzero-pg-carried-'));
      const boot = async (schema: string) => {
        const t = await startTestGateway({ env: { DATA_DIR: shared, DATABASE_URL: inSchema(pgdb.url, schema) } });
        await t.close();
        return t.credentials;
      };
      const own = (schema: string) => sandboxCredentialsFile({ dataDir: shared, databaseUrl: inSchema(pgdb.url, schema) });
      const before = sandboxCredentialsFile({ dataDir: shared, databaseUrl: pgdb.url });
      try {
        // As an earlier version left it: sandbox_c's credentials under the database's name.
        const made = await boot('sandbox_c');
        renameSync(own('sandbox_c'), before);
        assert.deepEqual(await boot('sandbox_c'), made);
        assert.deepEqual(JSON.parse(readFileSync(own('sandbox_c'), 'utf8')), made);
        assert.ok(existsSync(before), 'the old file stays');

        // sandbox_d's file gone: the old one holds another schema's merchant, not taken for its own.
        await boot('sandbox_d');
        rmSync(own('sandbox_d'));
        assert.equal(await boot('sandbox_d'), null);
        assert.ok(!existsSync(own('sandbox_d')));
      } finally {
        rmSync(shared, { recursive: true, force: true });
      }
    });

    it("migrates a database whose statement_timeout is shorter than the migrations' statements", async () => {
      const fresh = await freshPostgresDatabase();
      const setup = new pg.Client({ connectionString: fresh.url });
      await setup.connect();
      try {
        await setup.query(`alter database ${new URL(fresh.url).pathname.slice(1)} set statement_timeout = '1ms'`);
        const database = await openDatabase({ dataDir, databaseUrl: fresh.url, poolSize: 2 });
        await database.close();
        const { rows } = await setup.query<{ n: number }>('select count(*)::int as n from kysely_migration');
        assert.ok(rows[0]!.n > 20, `${rows[0]!.n} migrations applied`);
      } finally {
        await setup.end();
        await fresh.drop();
      }
    });

    it("a transaction whose backend the server ends fails with the server's reason, and the next one runs", async () => {
      const database = await openDatabase({ dataDir, databaseUrl: pgdb.url, poolSize: 1, queryDeadlineMs: 15_000 });
      try {
        await assert.rejects(
          database.transaction(async (trx) => {
            await sql`select pg_terminate_backend(pg_backend_pid())`.execute(trx);
          }),
          (error: Error & { code?: string }) => {
            assert.equal(error.code, '57P01', String(error));
            assert.ok(isDatabaseUnavailable(error));
            return true;
          },
        );
        assert.equal((await sql<{ one: number }>`select 1 as one`.execute(database.db)).rows[0]!.one, 1);
      } finally {
        await database.close();
      }
    });

    it('refuses sslmode=verify-full on a server without TLS in one line naming the database', async () => {
      const url = new URL(pgdb.url);
      url.searchParams.set('sslmode', 'verify-full');
      await assert.rejects(openDatabase({ dataDir, databaseUrl: url.toString() }), (error: Error) => {
        assert.ok(error instanceof DatabaseUnavailableError, String(error));
        assert.match(error.message, /^could not open or migrate the database postgres:\/\/[^ ]+ \(DATABASE_URL\): The server does not support SSL connections$/);
        return true;
      });
    });

    it('says how to write a password that breaks the URL, without showing it', async () => {
      const url = new URL(pgdb.url);
      const broken = `postgres://${url.username}:s3cr#t/pw@${url.host}${url.pathname}`;
      await assert.rejects(openDatabase({ dataDir, databaseUrl: broken }), (error: Error) => {
        assert.ok(error instanceof DatabaseUnavailableError, String(error));
        assert.match(error.message, /: Invalid URL \(percent-encode special characters in the user name and password: @ as %40, : as %3A, \/ as %2F, # as %23, % as %25\)$/);
        assert.doesNotMatch(error.message, /s3cr/);
        return true;
      });
    });

    it('refuses a search_path naming no schema that exists, saying so', async () => {
      await assert.rejects(openDatabase({ dataDir, databaseUrl: inSchema(pgdb.url, 'no_such_schema'), poolSize: 2 }), (error: Error) => {
        assert.ok(error instanceof DatabaseUnavailableError, String(error));
        assert.match(error.message, /no schema of its search_path exists \(no_such_schema\): create it/);
        assert.doesNotMatch(error.message, /\n/);
        return true;
      });
    });

    it('a gateway started on a database that takes no writes stops with one line saying so, not a stack trace', async () => {
      const name = new URL(pgdb.url).pathname.slice(1);
      // Migrated while writable: what fails is the boot's own writes (its keys registered).
      await (await openDatabase({ dataDir, databaseUrl: pgdb.url, poolSize: 2 })).close();
      await admin.query(`alter database ${name} set default_transaction_read_only = on`);
      try {
        const run = await runCli(['serve'], { DATA_DIR: dataDir, DATABASE_URL: pgdb.url, PORT: '0', PUBLIC_URL: 'http://127.0.0.1:1', LOG_LEVEL: 'warn' });
        assert.equal(run.code, 1, run.stderr);
        assert.match(run.stderr, /^error: could not open or migrate the database postgres:\/\/[^ ]+ \(DATABASE_URL\): .*read-only transaction \(the server takes no writes: a hot standby, or default_transaction_read_only set for the database or role; point DATABASE_URL at the primary, or reset the setting\)\n$/);
      } finally {
        await admin.query(`alter database ${name} reset default_transaction_read_only`);
      }
    });
  });

  describe('a pool of DATABASE_POOL_SIZE connections, all taken (postgres)', () => {
    let t: TestGateway;
    let admin: pg.Client;
    /** The gateway's backends: every one but the test's own. */
    const backends = async (where = 'true') =>
      (await admin.query<{ pid: number }>(`select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid() and ${where}`)).rows.map((r) => r.pid);
    before(async () => {
      t = await startTestGateway({ dialect: 'postgres', env: { DATABASE_POOL_SIZE: '1' } });
      admin = new pg.Client({ connectionString: t.config.databaseUrl });
      await admin.connect();
    });
    after(async () => {
      await admin?.end();
      await t?.close();
    });

    let id: string;
    const read = () => t.request({ method: 'GET', url: `/payment/${id}` });
    /** Runs `fn` while the payments table is locked: reads of it wait, each holding its connection. */
    async function whileLocked(fn: (first: Promise<LightMyRequestResponse>) => Promise<void>): Promise<LightMyRequestResponse> {
      await admin.query('begin');
      await admin.query('lock table payments in access exclusive mode');
      // The first read takes the pool's one connection and waits for the lock on it.
      const first = read();
      try {
        await eventually(async () => (await backends("wait_event_type = 'Lock'")).length === 1, 'the first read waiting for the lock');
        await fn(first);
      } finally {
        await admin.query('rollback');
      }
      return first;
    }

    it('a request that cannot get a connection answers 503 with Retry-After, and the pool never opens more', async () => {
      const created = await postAuthorise(t, await exampleBody());
      assert.equal(created.statusCode, 201, created.body);
      id = (created.json() as { id: string }).id;
      const first = await whileLocked(async () => {
        const second = await read();
        assertProblem(second, 503, 'database_unavailable');
        assert.equal(second.headers['retry-after'], '5');
        assert.equal((await backends("wait_event_type = 'Lock'")).length, 1, 'the second read never had a connection of its own');
      });
      assert.equal(first.statusCode, 200);
      const again = await Promise.all([read(), read(), read(), read()]);
      assert.deepEqual(again.map((r) => r.statusCode), [200, 200, 200, 200], 'the connection is given back after each read');
      // The pool's one, the LISTEN one and at most two for authorisation inserts.
      assert.ok((await backends()).length <= 4, `${(await backends()).length} connections`);
    });

    it("loses no acknowledged payment while the server ends the gateway's connections again and again", async () => {
      const answers: LightMyRequestResponse[] = [];
      const pay = async () => answers.push(await postAuthorise(t, await exampleBody(), { 'idempotency-key': `k-${randomUUID()}` }));
      let terminating = true;
      const terminator = (async () => {
        while (terminating) {
          await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()');
          await new Promise((r) => setTimeout(r, 20));
        }
      })();
      try {
        for (let round = 0; round < 5; round++) await Promise.all(Array.from({ length: 8 }, pay));
      } finally {
        terminating = false;
        await terminator;
      }
      const statuses = new Set(answers.map((a) => a.statusCode));
      assert.deepEqual([...statuses].filter((s) => s !== 201 && s !== 503), [], 'each answer is a payment or a 503 to retry');
      const acknowledged = answers.filter((a) => a.statusCode === 201).map((a) => (a.json() as { id: string }).id);
      assert.ok(acknowledged.length > 0);
      const { rows } = await admin.query<{ id: string }>('select id from payments where id = any($1)', [acknowledged]);
      assert.equal(rows.length, acknowledged.length, 'every payment answered 201 is stored');
      assert.equal((await t.request({ method: 'GET', url: `/payment/${acknowledged[0]}` })).statusCode, 200, 'and the gateway serves on');
    });

    it('a connection its server ends mid-query (a restart, pg_terminate_backend) is dropped, not handed to the next request', async () => {
      await whileLocked(async (first) => {
        const [waiting] = await backends("wait_event_type = 'Lock'");
        await admin.query('select pg_terminate_backend($1)', [waiting]);
        assertProblem(await first, 503, 'database_unavailable');
        // The next request (no lock in its way) gets a new connection.
        assert.equal((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode, 200);
      });
      const again = await Promise.all([read(), read()]);
      assert.deepEqual(again.map((r) => r.statusCode), [200, 200]);
      assert.equal(again[0]!.json().id, id, 'the payment acknowledged before is there');
    });
  });

  describe('a statement_timeout set on the server for the database (postgres)', () => {
    let t: TestGateway;
    let pgdb: Awaited<ReturnType<typeof freshPostgresDatabase>>;
    let admin: pg.Client;
    before(async () => {
      pgdb = await freshPostgresDatabase();
      admin = new pg.Client({ connectionString: pgdb.url });
      await admin.connect();
      await admin.query(`alter database ${new URL(pgdb.url).pathname.slice(1)} set statement_timeout = '2s'`);
      t = await startTestGateway({ env: { DATABASE_URL: pgdb.url } });
    });
    after(async () => {
      await admin?.end();
      await t?.close();
      await pgdb?.drop();
    });

    it('a request whose query the server cancels answers 503 with Retry-After, not 500; the next one is served', async () => {
      const created = await postAuthorise(t, await exampleBody());
      assert.equal(created.statusCode, 201, created.body);
      const id = (created.json() as { id: string }).id;
      await admin.query('begin');
      await admin.query('lock table payments in access exclusive mode');
      let read: LightMyRequestResponse;
      try {
        read = await t.request({ method: 'GET', url: `/payment/${id}` });
      } finally {
        await admin.query('rollback');
      }
      assertProblem(read, 503, 'database_unavailable');
      assert.equal(read.headers['retry-after'], '5');
      assert.equal((await t.request({ method: 'GET', url: `/payment/${id}` })).statusCode, 200);
    });
  });
}

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { LightMyRequestResponse } from 'fastify';
import { sql } from 'kysely';
import pg from 'pg';
import pino from 'pino';
import { LookupCache } from '../../src/app/lookup-cache.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, postAuthorise } from '../support/http.js';
import { ADMIN_URL, freshPostgresDatabase } from '../support/postgres.js';
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js';
import { eventually } from '../support/browser.js';
import { Receiver, paidPayment, registerEndpoint, waitFor } from '../webhooks/support.js';

/**
 * The gateway on PostgreSQL whose connections break: every answer meanwhile is a 503 with
 * Retry-After, within seconds, and the gateway carries on by itself once the server is back.
 * The server is reached through a proxy that the test breaks (others share the server).
 */
if (DIALECTS.includes('postgres')) {
  describe('PostgreSQL going away and coming back (postgres)', () => {
    let proxy: TcpProxy;
    let drop: () => Promise<void>;
    let t: TestGateway;

    before(async () => {
      const db = await freshPostgresDatabase();
      drop = db.drop;
      proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(db.url).port || 5432) });
      t = await startTestGateway({ env: { DATABASE_URL: proxy.url(db.url) } });
      await LookupCache.of(t.gateway.services.ctx).start();
    });
    after(async () => {
      await t?.close();
      await proxy?.close();
      await drop?.();
    });

    const authorise = async () => postAuthorise(t, await exampleBody(), { 'idempotency-key': `k-${randomUUID()}` });

    /** The request's answer and how long it took. */
    async function timed(fn: () => Promise<LightMyRequestResponse>): Promise<{ res: LightMyRequestResponse; ms: number }> {
      const began = Date.now();
      const res = await fn();
      return { res, ms: Date.now() - began };
    }

    function assertOutage(res: LightMyRequestResponse, ms: number, within: number) {
      assertProblem(res, 503, 'database_unavailable');
      assert.match(String(res.headers['retry-after']), /^\d+$/);
      assert.ok(ms < within, `answered after ${ms} ms`);
    }

    async function assertRecovers() {
      await eventually(async () => (await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, 'ready again', 15_000);
      // The cache's listener is back too: it answers from memory again.
      const watch = (LookupCache.of(t.gateway.services.ctx) as unknown as { watch: { usable(): boolean } }).watch;
      await eventually(async () => watch.usable(), 'the config listener back', 15_000);
      const res = await authorise();
      assert.equal(res.statusCode, 201, res.body);
      const read = await t.request({ method: 'GET', url: `/payment/${res.json<{ id: string }>().id}` });
      assert.equal(read.statusCode, 200, read.body);
    }

    it('fails only the query whose connection is lost mid-way, and keeps the process up', async () => {
      const { db } = t.gateway.services.ctx.database;
      const sleeping = sql`select pg_sleep(2)`.execute(db);
      await new Promise((r) => setTimeout(r, 300));
      proxy.cut();
      proxy.resume();
      await assert.rejects(sleeping, /ECONNRESET|Connection terminated/);
      // An 'error' nobody listened for would have ended the process by now.
      await new Promise((r) => setTimeout(r, 200));
      await assertRecovers();
    });

    it('answers 503 with Retry-After while the server resets every connection, and recovers', async () => {
      const before = await authorise();
      assert.equal(before.statusCode, 201, before.body);
      const { id, redirect_url } = before.json<{ id: string; redirect_url: string }>();
      proxy.cut();
      try {
        // The customer's browser gets the page's own answer, saying the same.
        const page = await t.app.inject({ method: 'GET', url: new URL(redirect_url).pathname });
        assert.equal(page.statusCode, 503, page.body);
        assert.match(String(page.headers['content-type']), /^text\/html/);
        assert.match(String(page.headers['retry-after']), /^\d+$/);
        const pay = await timed(authorise);
        assertOutage(pay.res, pay.ms, 5_000);
        const read = await timed(() => t.request({ method: 'GET', url: `/payment/${id}` }));
        assertOutage(read.res, read.ms, 5_000);
        assertProblem(await t.app.inject({ method: 'GET', url: '/readyz' }), 503, 'database_unavailable');
      } finally {
        proxy.resume();
      }
      await assertRecovers();
    });

    it('answers 503 within seconds, not never, while the server cannot be reached', async () => {
      // Connections left open in the pools: the next requests take them, and they go silent.
      assert.equal((await authorise()).statusCode, 201);
      proxy.pause();
      try {
        const pay = await timed(authorise);
        assertOutage(pay.res, pay.ms, 20_000);
        // No connection left in the pools: a new one is never answered.
        const again = await timed(authorise);
        assertOutage(again.res, again.ms, 10_000);
        const ready = await timed(() => t.app.inject({ method: 'GET', url: '/readyz' }));
        assertOutage(ready.res, ready.ms, 5_000);
      } finally {
        proxy.resume();
      }
      await assertRecovers();
    });
  });

  describe('a gateway stopped while PostgreSQL is silent (postgres)', () => {
    it('closes within seconds, not when TCP gives up', async () => {
      const db = await freshPostgresDatabase();
      const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(db.url).port || 5432) });
      const t = await startTestGateway({ workers: true, env: { DATABASE_URL: proxy.url(db.url) } });
      try {
        await LookupCache.of(t.gateway.services.ctx).start();
        assert.equal((await postAuthorise(t, await exampleBody())).statusCode, 201);
        proxy.pause();
        const began = Date.now();
        const closed = await Promise.race([t.gateway.close().then(() => true), new Promise<false>((r) => setTimeout(() => r(false), 20_000))]);
        assert.ok(closed, 'still closing after 20 s');
        assert.ok(Date.now() - began < 10_000, `closed after ${Date.now() - began} ms`);
      } finally {
        proxy.resume();
        await proxy.close();
        await db.drop();
      }
    });
  });

  describe('the workers across a PostgreSQL outage (postgres)', () => {
    it('deliver callbacks again once the server is back, without a restart', async () => {
      const db = await freshPostgresDatabase();
      const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(db.url).port || 5432) });
      const lines: Array<{ level: number; msg: string; worker?: string }> = [];
      const log = pino({ level: 'info' }, { write: (text: string) => void lines.push(JSON.parse(text)) });
      const t = await startTestGateway({ workers: true, log, env: { DATABASE_URL: proxy.url(db.url), DISPATCH_POLL_MS: '100' } });
      const receiver = await new Receiver().start();
      try {
        receiver.secrets.push((await registerEndpoint(t, receiver.url)).secret);
        const first = await paidPayment(t);
        await waitFor('the first callback', () => receiver.forPayment(first).length > 0);
        lines.length = 0;
        proxy.cut();
        // Long enough for every polling worker to fail a round or more.
        await new Promise((r) => setTimeout(r, 6_000));
        proxy.resume();
        await eventually(async () => (await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, 'ready again', 15_000);
        const second = await paidPayment(t);
        await waitFor('the callback after the outage', () => receiver.forPayment(second).length > 0);
        // The operator reads that each worker lost the database, once, and that it came back;
        // not an error with a stack every round.
        assert.deepEqual(lines.filter((l) => l.level >= 50).map((l) => l.msg), []);
        const said = (msg: RegExp) => lines.filter((l) => msg.test(l.msg)).map((l) => l.worker).sort();
        const warned = said(/cannot reach the database/);
        assert.ok(warned.includes('dispatcher'), JSON.stringify(lines));
        assert.deepEqual(warned, [...new Set(warned)], 'a worker said it more than once');
        await waitFor('the dispatcher to say it runs again', () => said(/database is back/).includes('dispatcher'));
      } finally {
        await receiver.stop();
        await t.close();
        await proxy.close();
        await db.drop();
      }
    });
  });
}

if (DIALECTS.includes('postgres')) {
  describe('a Prometheus scrape while PostgreSQL is silent (postgres)', () => {
    it('answers within seconds with tzero_database_up 0, as /readyz answers 503', async () => {
      const token = 'op_' + 'q'.repeat(40);
      const db = await freshPostgresDatabase();
      const proxy = await startTcpProxy({ host: '127.0.0.1', port: Number(new URL(db.url).port || 5432) });
      const t = await startTestGateway({ env: { DATABASE_URL: proxy.url(db.url), OPERATOR_TOKEN: token } });
      try {
        assert.equal((await postAuthorise(t, await exampleBody())).statusCode, 201);
        proxy.pause();
        const began = Date.now();
        const res = await t.app.inject({ method: 'GET', url: '/operator/metrics', headers: { authorization: `Bearer ${token}` } });
        const ms = Date.now() - began;
        assert.equal(res.statusCode, 200, res.body);
        assert.match(res.body, /^tzero_database_up 0$/m);
        assert.ok(ms < 6_000, `scraped after ${ms} ms: longer than a scrape's timeout, so the outage shows as no figures at all`);
      } finally {
        proxy.resume();
        await t.close();
        await proxy.close();
        await db.drop();
      }
    });
  });
}

if (DIALECTS.includes('postgres')) {
  describe('a PostgreSQL server that answers but takes no writes (postgres)', () => {
    it('is not ready while it is read-only (a standby after a failover), and ready again after', async () => {
      const db = await freshPostgresDatabase();
      const name = new URL(db.url).pathname.slice(1);
      const admin = new pg.Client({ connectionString: ADMIN_URL });
      await admin.connect();
      const t = await startTestGateway({ env: { DATABASE_URL: db.url } });
      // The setting applies to new sessions: the gateway's are ended, and its pools reconnect.
      const readOnly = async (on: boolean) => {
        await admin.query(`alter database ${name} set default_transaction_read_only = ${on ? 'on' : 'off'}`);
        await admin.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
      };
      try {
        assert.equal((await postAuthorise(t, await exampleBody())).statusCode, 201);
        await readOnly(true);
        await eventually(async () => (await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 503, 'unready on a read-only server', 15_000);
        assertProblem(await t.app.inject({ method: 'GET', url: '/readyz' }), 503, 'database_unavailable');
        assertProblem(await postAuthorise(t, await exampleBody()), 503, 'database_unavailable');
        await readOnly(false);
        await eventually(async () => (await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode === 200, 'ready again', 15_000);
        assert.equal((await postAuthorise(t, await exampleBody())).statusCode, 201);
      } finally {
        await t.close();
        await admin.query(`alter database ${name} reset default_transaction_read_only`);
        await admin.end();
        await db.drop();
      }
    });
  });
}

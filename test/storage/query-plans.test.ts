import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { sql } from 'kysely';
import { Dispatcher } from '../../src/workers/dispatcher.js';
import { runCaptureScheduler } from '../../src/workers/capture-scheduler.js';
import { sweepExpired } from '../../src/workers/expiry-sweeper.js';
import { rotateKek } from '../../src/cli/rotate-kek.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { authorisedPayment, post } from '../lifecycle/helpers.js';
import { paidPayment, registerEndpoint } from '../webhooks/support.js';
import { json, mit, payByCard } from '../stored-cards/support.js';

/** Tables that grow with traffic: a query that reads one of them whole gets slower every day. */
const GROWING = ['payments', 'refunds', 'releases', 'events', 'deliveries', 'delivery_attempts', 'card_secrets', 'checkout_sessions', 'idempotency_keys', 'payment_methods', 'audit_log', 'instalment_plans', 'mit_declines'];

/**
 * Every SQL text the gateway prepares on SQLite in this process while `fn` runs. The
 * writer thread runs inserts only, on its own isolate, and is not seen here.
 */
async function preparedDuring(fn: () => Promise<void>): Promise<string[]> {
  const proto = SQLite.prototype as unknown as { prepare(this: SQLite.Database, source: string): SQLite.Statement };
  const original = proto.prepare;
  const seen = new Set<string>();
  proto.prepare = function (source) {
    seen.add(source);
    return original.call(this, source);
  };
  try {
    await fn();
  } finally {
    proto.prepare = original;
  }
  return [...seen];
}

/** The plan steps that read a growing table (or a whole index of it) from end to end, except through a partial index. */
function fullScans(raw: SQLite.Database, source: string): string[] {
  const partial = new Set((raw.prepare("select name from sqlite_master where type = 'index' and sql like '% where %'").all() as Array<{ name: string }>).map((r) => r.name));
  const params = Array<null>((source.match(/\?/g) ?? []).length).fill(null);
  const plan = raw.prepare(`explain query plan ${source}`).all(...params) as Array<{ detail: string }>;
  return plan
    .map((step) => step.detail)
    .filter((detail) => {
      const scan = /^SCAN (\w+)(?: USING (?:COVERING )?INDEX (\w+))?/.exec(detail);
      return scan !== null && GROWING.includes(scan[1]!) && !(scan[2] && partial.has(scan[2]));
    });
}

describe('query plans (sqlite)', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway({ dialect: 'sqlite' });
  });
  after(() => t.close());

  it('no query of the API or the background work reads a growing table whole', async () => {
    const services = t.gateway.services;
    const statements = await preparedDuring(async () => {
      // The payment lifecycle through the API.
      const captured = await authorisedPayment(t);
      assert.equal((await post(t, `/payment/${captured.id}/capture`, {})).statusCode, 200);
      assert.equal((await post(t, `/payment/${captured.id}/refund`, { amount: 10 })).statusCode, 201);
      const voided = await authorisedPayment(t);
      assert.equal((await post(t, `/payment/${voided.id}/void`, {})).statusCode, 200);
      // The spec's example stores its card for future use.
      const stored = (await t.request({ method: 'GET', url: `/payment/${voided.id}` })).json() as { customer: { reference: string }; payment_method: { token: string } };
      // Callbacks to an endpoint that refuses them stay pending until the endpoint goes.
      const endpoint = await registerEndpoint(t, 'http://127.0.0.1:9/hooks');
      const paid = await paidPayment(t);
      const dispatcher = new Dispatcher(services);
      try {
        await dispatcher.pass();
      } finally {
        await dispatcher.stop();
      }
      for (const url of [
        `/payment/${captured.id}`,
        `/payment/${captured.id}/refunds`,
        '/payments?limit=5',
        `/payments?limit=5&ending_before=${captured.id}`,
        `/payments?status=captured&reference=x`,
        '/events?limit=5',
        `/customers/${stored.customer.reference}/payment-methods`,
        `/payment-methods/${stored.payment_method.token}`,
        // The sandbox inbox lists its merchant's e-mails among every merchant's.
        '/sandbox/inbox',
      ]) {
        assert.equal((await t.request({ method: 'GET', url })).statusCode, 200, url);
      }
      const events = (await t.request({ method: 'GET', url: `/events?payment=${paid}` })).json() as { data: Array<{ id: string }> };
      for (const e of events.data) assert.equal((await t.request({ method: 'GET', url: `/events/${e.id}` })).statusCode, 200);
      assert.equal((await t.request({ method: 'DELETE', url: `/webhook-endpoints/${endpoint.id}` })).statusCode, 200);
      assert.equal((await t.request({ method: 'DELETE', url: `/payment-methods/${stored.payment_method.token}` })).statusCode, 200);
      // The schedulers' passes, and the operator's KEK rotation (nothing to re-wrap here, but its reads are the same).
      await runCaptureScheduler(services);
      await sweepExpired(services);
      await rotateKek(services);
      // The operator's channel update: a mode given looks for the channel's payments.
      await services.merchants.updateChannel('sandbox', { mode: 'sandbox' });
    });
    const raw = new SQLite(join(t.dataDir, 'gateway.sqlite'), { readonly: true });
    try {
      const reads = statements.filter((s) => /^\s*(select|update|delete|with)\b/i.test(s));
      assert.ok(reads.length > 20, `only ${reads.length} statements seen`);
      const offenders = reads.map((source) => ({ source, scans: fullScans(raw, source) })).filter((r) => r.scans.length > 0);
      assert.deepEqual(offenders, []);
      // A page's end erases its card by the payment's key.
      const erase = reads.filter((s) => /^delete from "card_secrets"/.test(s));
      assert.equal(erase.length, 1, "one statement erases a payment's card");
      const plan = (raw.prepare(`explain query plan ${erase[0]!}`).all(...Array<null>((erase[0]!.match(/\?/g) ?? []).length).fill(null)) as Array<{ detail: string }>).map((p) => p.detail);
      assert.ok(plan.some((d) => d.includes('USING PRIMARY KEY')), plan.join('; '));
    } finally {
      raw.close();
    }
  });

  it("a stored card's payment reads none of its card's or customer's other payments", async () => {
    // A gateway of its own: statements are prepared once per connection, and this one must be seen.
    const own = await startTestGateway({ dialect: 'sqlite' });
    try {
      const initial = await payByCard(own, { customer: 'cust-plan' });
      const statements = await preparedDuring(async () => {
        const res = await mit(own, { token: initial.payment_method.token, previous_payment_id: initial.id });
        assert.equal(json(res).status, 'captured', res.body);
      });
      // A subscription's every charge would read all the earlier ones: the whole history of a
      // busy customer (a marketplace's one customer reference, say) on each payment.
      const byCard = statements.filter((s) => /^select\b.*from "payments".*"payment_method_id" = \?/is.test(s));
      assert.deepEqual(byCard, []);
      const raw = new SQLite(join(own.dataDir, 'gateway.sqlite'), { readonly: true });
      try {
        // The card's retries are counted from its own declines, by the index that starts with the card.
        const declines = statements.filter((s) => /^select\b.*from "mit_declines"/is.test(s));
        assert.equal(declines.length, 1, 'the MIT looked up its card\'s declines');
        const declinePlan = (raw.prepare(`explain query plan ${declines[0]!}`).all(...Array<null>((declines[0]!.match(/\?/g) ?? []).length).fill(null)) as Array<{ detail: string }>).map((p) => p.detail);
        assert.match(declinePlan.join('; '), /SEARCH mit_declines USING INDEX mit_declines_card \(merchant_id=\? AND card_fingerprint=\?/);
        for (const source of statements.filter((s) => /^select\b.*from "payments"/is.test(s))) {
          const plan = (raw.prepare(`explain query plan ${source}`).all(...Array<null>((source.match(/\?/g) ?? []).length).fill(null)) as Array<{ detail: string }>).map((p) => p.detail);
          const payments = plan.find((d) => /^(SEARCH|SCAN) payments\b/.test(d)) ?? plan.join('; ');
          assert.match(payments, /USING (INTEGER )?PRIMARY KEY|sqlite_autoindex_payments_1/, `${source}\n${plan.join('; ')}`);
        }
      } finally {
        raw.close();
      }
    } finally {
      await own.close();
    }
  });

  it("an instalment MIT reads and moves its plan's count by the plan's key", async () => {
    const own = await startTestGateway({ dialect: 'sqlite' });
    try {
      const initial = await payByCard(own, { customer: 'cust-plan-inst', payment_data: { payment_type: 'cit', payment_sub_type: 'instalment-initial', instalments: 3 } });
      const statements = await preparedDuring(async () => {
        const res = await mit(own, { token: initial.payment_method.token, previous_payment_id: initial.id, sub_type: 'instalment-subsequent' });
        assert.equal(json(res).status, 'captured', res.body);
      });
      const plans = statements.filter((s) => /^(select|update)\b.*"instalment_plans"/is.test(s));
      assert.ok(plans.length > 0, 'the plan was counted');
      const raw = new SQLite(join(own.dataDir, 'gateway.sqlite'), { readonly: true });
      try {
        for (const source of plans) {
          const plan = (raw.prepare(`explain query plan ${source}`).all(...Array<null>((source.match(/\?/g) ?? []).length).fill(null)) as Array<{ detail: string }>).map((p) => p.detail);
          assert.match(plan.join('; '), /SEARCH instalment_plans USING INDEX sqlite_autoindex_instalment_plans_1/, source);
        }
      } finally {
        raw.close();
      }
    } finally {
      await own.close();
    }
  });
});

for (const dialect of DIALECTS.filter((d) => d === 'postgres')) describe(`the fan-out read of undispatched events (${dialect})`, () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway({ dialect });
  });
  after(() => t.close());

  /** Buffers (pages) the dispatcher's read of undispatched events touches. */
  async function pagesRead(): Promise<number> {
    const { rows } = await sql<{ 'QUERY PLAN': Array<{ Plan: Record<string, number> }> }>`explain (analyze, buffers, format json) select * from undispatched_events(2000)`.execute(t.gateway.services.ctx.database.db);
    const plan = rows[0]!['QUERY PLAN'][0]!.Plan;
    return plan['Shared Hit Blocks']! + plan['Shared Read Blocks']!;
  }

  it('skips events already dispatched without reading their rows again', async () => {
    const { db } = t.gateway.services.ctx.database;
    // Events that were dispatched leave old row versions, and their index entries, until VACUUM.
    await sql`insert into events (id, merchant_id, channel_id, payment_id, type, sequence, created_at, body, dispatched)
      select 'evt_' || lpad(n::text, 8, '0'), 'mer_x', 'chn_x', null, 'payment.created', 1, 0, repeat('x', 500), 0 from generate_series(1, 3000) n`.execute(db);
    await sql`update events set dispatched = 1`.execute(db);
    await sql`insert into events (id, merchant_id, channel_id, payment_id, type, sequence, created_at, body, dispatched)
      values ('evt_99999999', 'mer_x', 'chn_x', null, 'payment.created', 1, 0, '{}', 0)`.execute(db);
    const { rows: size } = await sql<{ pages: number }>`select (pg_relation_size('events') / current_setting('block_size')::int)::int as pages`.execute(db);
    const heapPages = size[0]!.pages;
    assert.ok(heapPages > 100, `${heapPages} heap pages`);

    const { rows } = await sql<{ id: string; created_at: number }>`select * from undispatched_events(2000)`.execute(db);
    assert.deepEqual(
      rows.map((r) => [r.id, r.created_at]),
      [['evt_99999999', 0]],
    );
    // A read marks the dead versions' entries, and later reads skip them, once no snapshot
    // can still see those versions: an automatic ANALYZE of the table just filled holds
    // one for a moment, so the read is repeated for a while. A bitmap scan never gets there.
    let pages = await pagesRead();
    for (let attempt = 0; attempt < 30 && pages >= heapPages / 10; attempt++) {
      await new Promise((r) => setTimeout(r, 100));
      pages = await pagesRead();
    }
    assert.ok(pages < heapPages / 10, `the read touched ${pages} pages; the events table has ${heapPages}`);
  });
});

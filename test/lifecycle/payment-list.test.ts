import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { authorisedPayment, post, type PaymentJson } from './helpers.js';

type Item = PaymentJson & { reference: string | null; customer: { reference?: string } | null; created_at: string; timeline: Array<{ id: string; type: string; sequence: number; created_at: string }> };

interface Page {
  object: string;
  data: Item[];
  has_more: boolean;
  next_starting_after: string | null;
}

for (const dialect of DIALECTS) {
  describe(`GET /payments (${dialect})`, () => {
    let t: TestGateway;
    /** Oldest first, as created. */
    const created: PaymentJson[] = [];
    let windowStart: string;
    let windowEnd: string;

    async function list(query: string): Promise<Page> {
      const res = await t.request({ method: 'GET', url: `/payments${query}` });
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as Page;
    }

    async function all(query: string, limit: number): Promise<Item[]> {
      const out: Item[] = [];
      let cursor: string | null = null;
      for (let guard = 0; guard < 100; guard++) {
        const page = await list(`?limit=${limit}${query}${cursor ? `&starting_after=${cursor}` : ''}`);
        assert.ok(page.data.length <= limit);
        out.push(...page.data);
        if (!page.has_more) {
          assert.equal(page.next_starting_after, null);
          return out;
        }
        cursor = page.next_starting_after;
      }
      throw new Error('pagination did not end');
    }

    before(async () => {
      t = await startTestGateway({ dialect });
      // 23 payments a second apart: more than one default page; two customers, a few references.
      for (let i = 0; i < 23; i++) {
        if (i === 8) windowStart = new Date(t.clock.now()).toISOString();
        const p = await authorisedPayment(t, { reference: `order-${i % 5}`, customer: { reference: i % 2 ? 'cust-odd' : 'cust-even' } });
        if (i === 12) windowEnd = new Date(t.clock.now()).toISOString();
        if (i % 3 === 0) assert.equal((await post(t, `/payment/${p.id}/capture`)).statusCode, 200);
        created.push(p);
        t.clock.advance(1000);
      }
    });
    after(async () => {
      await t.close();
    });

    it('pages newest first, 20 by default, each payment once', async () => {
      const first = await list('');
      assert.equal(first.object, 'list');
      assert.equal(first.data.length, 20);
      assert.equal(first.has_more, true);
      assert.equal(first.next_starting_after, first.data[19]!.id);

      const paged = await all('', 4);
      assert.deepEqual(paged.map((p) => p.id), [...created].reverse().map((p) => p.id));
      assert.equal(new Set(paged.map((p) => p.id)).size, created.length);
    });

    it('keeps its pages stable while new payments arrive', async () => {
      const page1 = await list('?limit=5&customer_reference=cust-even');
      const page2Before = await list(`?limit=5&customer_reference=cust-even&starting_after=${page1.next_starting_after}`);
      const newer = await authorisedPayment(t, { reference: 'order-new', customer: { reference: 'cust-even' } });
      const page2After = await list(`?limit=5&customer_reference=cust-even&starting_after=${page1.next_starting_after}`);
      assert.deepEqual(page2After.data.map((p) => p.id), page2Before.data.map((p) => p.id));
      const top = await list('?limit=1&customer_reference=cust-even');
      assert.equal(top.data[0]!.id, newer.id);
      assert.equal((await post(t, `/payment/${newer.id}/void`)).statusCode, 200);
    });

    it('filters by status, reference, customer reference, channel and creation time', async () => {
      const captured = await all('&status=captured', 100);
      assert.deepEqual(captured.map((p) => p.id), created.filter((_, i) => i % 3 === 0).reverse().map((p) => p.id));
      for (const p of captured) assert.equal(p.status, 'captured');

      const byRef = await all('&reference=order-2', 100);
      assert.deepEqual(byRef.map((p) => p.id), created.filter((_, i) => i % 5 === 2).reverse().map((p) => p.id));

      const odd = await all('&customer_reference=cust-odd', 100);
      assert.deepEqual(odd.map((p) => p.id), created.filter((_, i) => i % 2 === 1).reverse().map((p) => p.id));

      const combined = await all('&customer_reference=cust-odd&status=authorised&reference=order-1', 100);
      assert.deepEqual(combined.map((p) => p.id), created.filter((_, i) => i % 2 === 1 && i % 3 !== 0 && i % 5 === 1).reverse().map((p) => p.id));

      assert.ok((await all('&channel=sandbox', 100)).length >= created.length);
      assert.deepEqual((await list('?channel=no-such-channel')).data, []);

      const window = await all(`&created_gte=${encodeURIComponent(windowStart)}&created_lte=${encodeURIComponent(windowEnd)}`, 100);
      assert.deepEqual(window.map((p) => p.id), created.slice(8, 13).reverse().map((p) => p.id));
    });

    it('shows amounts and the timeline of events on each payment', async () => {
      const [p] = (await list(`?reference=order-0&status=captured&limit=1`)).data;
      assert.ok(p);
      assert.equal(p.amount_captured, p.amount);
      assert.equal(p.amount_refunded, 0);
      assert.deepEqual(p.timeline.map((e) => e.type), ['payment.created', 'payment.authorised', 'payment.captured']);
      assert.deepEqual(p.timeline.map((e) => e.sequence), [1, 2, 3]);
      for (const e of p.timeline) assert.match(e.id, /^evt_/);
    });

    it('refuses out-of-range limits and malformed cursors and times, naming the parameter', async () => {
      const cases: Array<[string, string]> = [
        ['?limit=0', '/querystring/limit'],
        ['?limit=101', '/querystring/limit'],
        ['?limit=ten', '/querystring/limit'],
        ['?starting_after=abc', '/querystring/starting_after'],
        ['?status=paid', '/querystring/status'],
        ['?created_gte=yesterday', '/querystring/created_gte'],
        [`?created_gte=${encodeURIComponent(windowEnd)}&created_lte=${encodeURIComponent(windowStart)}`, '/querystring/created_gte'],
        // A filter the list does not have is refused, not ignored (the whole list would come back).
        ['?refrence=order-1', '/querystring/refrence'],
      ];
      for (const [query, param] of cases) {
        const res = await t.request({ method: 'GET', url: `/payments${query}` });
        assert.equal(res.statusCode, 400, `${query}: ${res.body}`);
        assert.equal(res.json().param, param, query);
        // The message names the parameter as the merchant wrote it, not Fastify's "querystring.limit".
        const name = param.split('/').pop()!;
        assert.match(res.json().detail, new RegExp(`^"?${name}\\b`), query);
        assert.doesNotMatch(res.body, /querystring(?!\/)/, query);
      }
      assert.equal((await t.request({ method: 'GET', url: '/payments?limit=0' })).json().detail, 'limit must be >= 1');
      assert.equal((await t.request({ method: 'GET', url: '/payments?refrence=x' })).json().detail, '"refrence" is not a query parameter of this request; remove it (check the spelling against the API reference)');
      const longId = await t.request({ method: 'GET', url: `/payment/${'x'.repeat(100)}` });
      assert.deepEqual([longId.json().param, longId.json().detail], ['/params/id', 'id must be at most 64 characters']);
      // A cursor that is no payment id is refused with the code GET /events gives one that is no event id.
      const cursor = await t.request({ method: 'GET', url: '/payments?starting_after=abc' });
      assert.equal(cursor.json().code, 'invalid_cursor', cursor.body);
      assert.deepEqual(cursor.json().errors.map((e: { code: string }) => e.code), ['invalid_cursor']);
      assert.equal((await list('?limit=100')).data.length <= 100, true);
    });

    it('pages backwards with ending_before, as GET /events does', async () => {
      const ids = (await list('?limit=100')).data.map((p) => p.id);
      // The two payments just newer than ids[3], newest first; ids[0] is newer still.
      const back = await list(`?limit=2&ending_before=${ids[3]}`);
      assert.deepEqual(back.data.map((p) => p.id), [ids[1], ids[2]]);
      assert.equal(back.has_more, true);
      // Older payments follow the page, as after any page: its last id goes on forwards.
      assert.equal(back.next_starting_after, ids[2]);
      const first = await list(`?limit=5&ending_before=${ids[2]}`);
      assert.deepEqual(first.data.map((p) => p.id), [ids[0], ids[1]]);
      assert.equal(first.has_more, false);
      const forwards = await list(`?limit=2&starting_after=${back.next_starting_after}`);
      assert.deepEqual(forwards.data.map((p) => p.id), [ids[3], ids[4]]);
      // Filters hold backwards too.
      const odd = (await list('?limit=100&customer_reference=cust-odd')).data.map((p) => p.id);
      assert.deepEqual((await list(`?limit=1&customer_reference=cust-odd&ending_before=${odd[2]}`)).data.map((p) => p.id), [odd[1]]);

      for (const [query, param] of [
        [`ending_before=${ids[1]}&starting_after=${ids[3]}`, '/querystring/ending_before'],
        ['ending_before=evt_0', '/querystring/ending_before'],
      ] as const) {
        const res = await t.request({ method: 'GET', url: `/payments?${query}` });
        assert.equal(res.statusCode, 400, res.body);
        assert.deepEqual([res.json().code, res.json().param], ['invalid_cursor', param], query);
      }
    });

    it("lists only the merchant's own payments", async () => {
      const other = await t.gateway.services.merchants.createMerchant('Other shop');
      const key = await t.gateway.services.merchants.createSecretKey(other.id, 'other');
      const res = await t.request({ method: 'GET', url: '/payments', headers: { 'x-secret-key': key.secret_key } });
      assert.equal(res.statusCode, 200);
      assert.deepEqual(res.json().data, []);
      const anonymous = await t.app.inject({ method: 'GET', url: '/payments' });
      assert.equal(anonymous.statusCode, 401);
    });

    it('takes an empty text filter as an exact match, as docs/lifecycle.md says: the empty value only, never every payment', async () => {
      const blank = (await authorisedPayment(t, { reference: '' })) as Item;
      assert.equal(((await authorisedPayment(t, { reference: undefined })) as Item).reference, null);
      assert.equal(blank.reference, '');
      assert.deepEqual((await all('&reference=', 100)).map((p) => p.id), [blank.id]);
      assert.deepEqual(await all('&customer_reference=', 100), []);
    });
  });
}

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ManualClock } from '../../src/ports/clock.js';
import { DIALECTS, startTestGateway, type TestGateway } from '../support/gateway.js';
import { authorisedPayment, type PaymentJson } from './helpers.js';

/** The creation-time filters at their edges: stored times have milliseconds, filters are often written in whole seconds. */
for (const dialect of DIALECTS) {
  describe(`GET /payments created_gte / created_lte edges (${dialect})`, () => {
    let t: TestGateway;
    let lastOfJanuary: PaymentJson;
    let firstOfFebruary: PaymentJson;

    async function ids(query: string): Promise<string[]> {
      const res = await t.request({ method: 'GET', url: `/payments?limit=100&${query}` });
      assert.equal(res.statusCode, 200, `${query}: ${res.body}`);
      return (res.json() as { data: PaymentJson[] }).data.map((p) => p.id);
    }

    before(async () => {
      t = await startTestGateway({ dialect, clock: new ManualClock(Date.parse('2025-01-31T23:59:59.500Z')) });
      lastOfJanuary = await authorisedPayment(t);
      t.clock.set(Date.parse('2025-02-01T00:00:00.000Z'));
      firstOfFebruary = await authorisedPayment(t);
    });
    after(async () => {
      await t.close();
    });

    it("takes a bound written in whole seconds as that whole second: the documented month's range holds the month's last second", async () => {
      // The example of docs/lifecycle.md.
      const january = await ids(`created_gte=2025-01-01T00:00:00Z&created_lte=${encodeURIComponent('2025-01-31T23:59:59Z')}`);
      assert.deepEqual(january, [lastOfJanuary.id]);
      assert.deepEqual(await ids(`created_lte=${encodeURIComponent('2025-01-31T23:59:59.4Z')}`), []);
      assert.deepEqual(await ids(`created_lte=${encodeURIComponent('2025-01-31T23:59:59.5Z')}`), [lastOfJanuary.id]);
      assert.deepEqual(await ids(`created_lte=${encodeURIComponent('2025-01-31T23:59:59.500Z')}`), [lastOfJanuary.id]);
      assert.deepEqual(await ids(`created_lte=${encodeURIComponent('2025-01-31T23:59:59.499Z')}`), []);
      // A lower bound is where its second starts; one finer than milliseconds is not rounded down onto a payment before it.
      assert.deepEqual(await ids(`created_gte=${encodeURIComponent('2025-01-31T23:59:59Z')}`), [firstOfFebruary.id, lastOfJanuary.id]);
      assert.deepEqual(await ids(`created_gte=${encodeURIComponent('2025-01-31T23:59:59.5001Z')}`), [firstOfFebruary.id]);
      // A range of one exact time, as created_at shows it, finds that payment.
      const exact = encodeURIComponent('2025-02-01T00:00:00.000Z');
      assert.deepEqual(await ids(`created_gte=${exact}&created_lte=${exact}`), [firstOfFebruary.id]);
      const finer = encodeURIComponent('2025-02-01T00:00:00.0005Z');
      assert.deepEqual(await ids(`created_gte=${finer}&created_lte=${finer}`), []);
    });

    it('reads every offset form the schema accepts, hours alone included', async () => {
      for (const lte of ['2025-02-01T00:59:59+01', '2025-02-01T00:59:59+0100', '2025-02-01T00:59:59+01:00', '2025-01-31T18:59:59-05:00', '2025-01-31t23:59:59z', '2025-01-31 23:59:59Z']) {
        assert.deepEqual(await ids(`created_lte=${encodeURIComponent(lte)}`), [lastOfJanuary.id], lte);
      }
    });

    it('reads a leap second as the end of its minute, not as a malformed time', async () => {
      assert.deepEqual(await ids(`created_lte=${encodeURIComponent('2025-01-31T23:59:60Z')}`), [lastOfJanuary.id]);
      assert.deepEqual(await ids(`created_gte=${encodeURIComponent('2025-01-31T23:59:60Z')}`), [firstOfFebruary.id]);
    });

    it('takes the first years of the calendar as a bound, as Go and .NET write an unset time', async () => {
      // Go's zero time.Time and .NET's DateTime.MinValue: "from the beginning".
      const both = [firstOfFebruary.id, lastOfJanuary.id];
      assert.deepEqual(await ids(`created_gte=${encodeURIComponent('0001-01-01T00:00:00Z')}`), both);
      assert.deepEqual(await ids(`created_gte=${encodeURIComponent('0099-12-31T23:59:59Z')}&created_lte=${encodeURIComponent('9999-12-31T23:59:59Z')}`), both);
      assert.deepEqual(await ids(`created_lte=${encodeURIComponent('0050-06-15T12:00:00Z')}`), []);
    });

    it('still refuses what is not a date-time, naming the parameter', async () => {
      for (const [query, param] of [
        ['created_lte=2025-02-30T00:00:00Z', '/querystring/created_lte'],
        ['created_gte=2025-01-31T00:00:00', '/querystring/created_gte'],
        ['created_gte=2025-01-31', '/querystring/created_gte'],
      ]) {
        const res = await t.request({ method: 'GET', url: `/payments?${query}` });
        assert.equal(res.statusCode, 400, `${query}: ${res.body}`);
        assert.equal(res.json().param, param, query);
      }
    });
  });
}

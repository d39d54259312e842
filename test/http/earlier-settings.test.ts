import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { LookupCache } from '../../src/app/lookup-cache.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';

for (const dialect of DIALECTS) {
  describe(`the payment page and channel settings an earlier version saved (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(() => t?.close());

    it('shows a channel name holding a card number without the number', async () => {
      const { ctx } = t.gateway.services;
      // Saved before channel names were checked for card numbers.
      await ctx.database.db.updateTable('channels').set({ name: 'Shop 4242 4242 4242 4242' }).where('reference', '=', 'sandbox').execute();
      LookupCache.of(ctx).drop();
      const created = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody() });
      assert.equal(created.statusCode, 201, created.body);
      const page = await t.app.inject({ method: 'GET', url: new URL(created.json().redirect_url).pathname });
      assert.equal(page.statusCode, 200, page.body);
      assert.doesNotMatch(page.body, /4242 4242 4242 4242/);
      assert.match(page.body, /<h1>Pay Shop \[card number\]<\/h1>/);
    });
  });
}

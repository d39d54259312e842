import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { getPayment } from '../lifecycle/helpers.js';

/**
 * The confirm form reads the page (load), then claims it. A confirm whose load happened just
 * before expires_at and whose claim lands after it (an event-loop stall, a slow write) must not
 * authorise a payment already past its expiry: the claim checks the page's time too.
 */
for (const dialect of DIALECTS) {
  describe(`hosted-page confirm racing its expiry (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(async () => {
      await t?.close();
    });

    it('a page whose time is up when the claim is made is not authorised', async () => {
      const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ capture: 'manual' }) });
      assert.equal(res.statusCode, 201, res.body);
      const created = res.json() as { id: string; redirect_url: string; expires_at: string };
      const token = created.redirect_url.split('/').pop()!;
      const view = await t.gateway.services.checkout.load(token);
      assert.equal(view?.payment.status, 'requires_action');
      // The page's time runs out between reading the page and claiming it.
      t.clock.advance(t.config.hostedPageTtlMs + 1);
      const done = await t.gateway.services.checkout.complete(token, view!);
      const final = await getPayment(t, created.id);
      assert.equal(final.status, 'expired', `page expired at ${created.expires_at}, claim at ${new Date(t.clock.now()).toISOString()}: payment ${final.status} (view said ${done.payment.status})`);
    });
  });
}

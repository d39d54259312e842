import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ReturnParams, signReturn } from '../../src/app/checkout.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';

for (const dialect of DIALECTS) {
  describe(`sandbox return page: the check the docs give merchants (${dialect})`, () => {
    let t: TestGateway;
    let paymentId: string;
    before(async () => {
      t = await startTestGateway({ dialect });
      paymentId = (await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody() })).json().id;
    });
    after(() => t?.close());

    const verdictOf = async (params: ReturnParams & { signature: string }) => {
      const res = await t.app.inject({ method: 'GET', url: `/sandbox/return?${new URLSearchParams({ ...params })}` });
      assert.equal(res.statusCode, 200, res.body);
      return /data-verdict="([a-z]+)"/.exec(res.body)![1];
    };
    const signed = (secondsAgo: number) =>
      signReturn(t.credentials.return_secret, { payment_id: paymentId, reference: 'merchant_txn_ref', status: 'captured', timestamp: String(Math.floor(t.clock.now() / 1000) - secondsAgo) });

    it('accepts a fresh genuine return and refuses a changed one', async () => {
      assert.equal(await verdictOf(signed(5)), 'valid');
      assert.equal(await verdictOf({ ...signed(5), status: 'authorised' }), 'invalid');
    });

    it('refuses a genuine return older than the 600 s the documented check allows', async () => {
      assert.equal(await verdictOf(signed(599)), 'valid');
      assert.equal(await verdictOf(signed(700)), 'expired');
    });

    it('shows no card number a forged link puts in its query', async () => {
      const res = await t.app.inject({ method: 'GET', url: `/sandbox/return?${new URLSearchParams({ payment_id: '4242424242424242', reference: 'card 5555 5555 5555 4444', status: '378282246310005', timestamp: '1', signature: 'x' })}` });
      assert.equal(res.statusCode, 200, res.body);
      assert.doesNotMatch(res.body, /4242424242424242|5555 5555 5555 4444|378282246310005/);
      assert.match(res.body, /data-verdict="invalid"/);
    });

    it('refuses a signature of the right length in characters but not in bytes, without failing', async () => {
      assert.equal(await verdictOf({ ...signed(5), signature: `${'a'.repeat(63)}é` }), 'invalid');
    });
  });
}

import assert from 'node:assert/strict';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { type ReturnParams, signReturn } from '../../src/app/checkout.js';
import { sign } from '../../src/adapters/webhooks/signer.js';

/** The named function from the first ```js block of a document that defines it, as a merchant would copy it. */
function documented<F>(file: string, name: string): F {
  const blocks = [...readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8').matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]!);
  const code = blocks.find((b) => b.includes(`function ${name}(`));
  assert.ok(code, `${file} shows ${name}`);
  const body = code.replace(/^import .*$/gm, '');
  return new Function('createHmac', 'timingSafeEqual', `${body}\nreturn ${name};`)(createHmac, timingSafeEqual) as F;
}

const RETURN_SECRET = 'rsk_' + 'ab'.repeat(16);
const now = () => String(Math.floor(Date.now() / 1000));

for (const file of ['README.md', 'docs/authorise.md']) {
  describe(`the return check in ${file}`, () => {
    const verifyReturn = documented<(q: Partial<ReturnParams & { signature: string }>, secret: string) => boolean>(file, 'verifyReturn');
    const genuine = () => signReturn(RETURN_SECRET, { payment_id: 'pay_0a0a', reference: 'order é/?#', status: 'captured', timestamp: now() });

    it('accepts a genuine return and refuses a changed, stale or foreign one', () => {
      assert.equal(verifyReturn(genuine(), RETURN_SECRET), true);
      assert.equal(verifyReturn({ ...genuine(), status: 'authorised' }, RETURN_SECRET), false);
      assert.equal(verifyReturn({ ...genuine(), timestamp: String(Number(now()) - 601) }, RETURN_SECRET), false);
      assert.equal(verifyReturn(genuine(), 'rsk_other'), false);
    });

    it('refuses, without throwing, a signature missing or with characters outside ASCII', () => {
      assert.equal(verifyReturn({ ...genuine(), signature: undefined }, RETURN_SECRET), false);
      assert.equal(verifyReturn({ ...genuine(), signature: `${'a'.repeat(63)}é` }, RETURN_SECRET), false);
    });
  });
}

describe('the callback check in docs/webhooks.md', () => {
  const verify = documented<(secret: string, id: string, timestamp: string, raw: string, header: string) => boolean>('docs/webhooks.md', 'verify');
  const secret = 'whsec_' + Buffer.alloc(24, 7).toString('base64');
  const raw = '{"id":"evt_1","type":"payment.captured"}';

  it('accepts a genuine callback, with either of two signatures, and refuses a changed one', () => {
    const ts = now();
    const header = sign(secret, 'evt_1', Number(ts), raw);
    assert.equal(verify(secret, 'evt_1', ts, raw, header), true);
    assert.equal(verify(secret, 'evt_1', ts, raw, `v1,${'A'.repeat(44)} ${header}`), true);
    assert.equal(verify(secret, 'evt_1', ts, raw.replace('captured', 'refunded'), header), false);
    assert.equal(verify(secret, 'evt_1', String(Number(ts) - 301), raw, sign(secret, 'evt_1', Number(ts) - 301, raw)), false);
  });

  it('refuses, without throwing, a signature with characters outside ASCII', () => {
    assert.equal(verify(secret, 'evt_1', now(), raw, `v1,${'A'.repeat(43)}é`), false);
  });
});

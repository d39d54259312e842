import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { DIALECTS, readExample, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, fieldErrors, postAuthorise } from '../support/http.js';
import { unpackJson } from '../../src/adapters/storage/packed-json.js';

type Json = Record<string, unknown>;

/** The example with `patch` merged in at any depth; `undefined` deletes a field. */
function merge(base: Json, patch: Json): Json {
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete out[k];
    else if (v && typeof v === 'object' && !Array.isArray(v) && out[k] && typeof out[k] === 'object') out[k] = merge(out[k] as Json, v as Json);
    else out[k] = v;
  }
  return out;
}

const APP_DEVICE = {
  type: 'app',
  sdk_app_id: '0f8e2a44-7c1d-4b52-9a51-3d1c0e6b9a27',
  sdk_trans_id: '5d3c2b1a-0f9e-4d8c-b7a6-95847362514f',
  sdk_reference_number: '3DS_LOA_SDK_PPFU_020100_00007',
  sdk_max_timeout: '05',
  sdk_enc_data: 'eyJhbGciOiJSU0EtT0FFUC0yNTYifQ.e30.abc',
  sdk_ephem_pub_key: { kty: 'EC', crv: 'P-256', x: 'WKn-ZIGevcwGIyyrzFoZNBdaq9_TsqzGl96oc0CWuis', y: 'y77t-RvAHRKTsSGdIYUfweuOvwrvDD-Q3Hv5J0fSKbE' },
  device_render_options: { sdk_interface: 'both', sdk_ui_type: ['text', 'oob'] },
};

for (const dialect of DIALECTS) {
  describe(`POST /payment/authorise validation (${dialect})`, () => {
    let t: TestGateway;
    let example: Json;

    before(async () => {
      t = await startTestGateway({ dialect });
      example = await readExample();
    });
    after(() => t?.close());

    const post = (patch: Json, headers?: Record<string, string>) => postAuthorise(t, merge(example, patch), headers);
    const card = (patch: Json) => post({ payment_method: patch });
    const device = (patch: Json) => post({ device_info: patch });

    describe("the spec's example", () => {
      it('gets 201 with redirect_url; the card shows brand, BIN, last 4, expiry and fingerprint only', async () => {
        const res = await postAuthorise(t, example);
        assert.equal(res.statusCode, 201, res.body);
        assert.match(String(res.headers['content-type']), /^application\/json/);
        const p = res.json();
        assert.match(p.id, /^pay_[0-9a-f]{32}$/);
        assert.equal(p.object, 'payment');
        assert.equal(p.status, 'requires_action');
        assert.equal(p.amount, 100);
        assert.equal(p.currency, 'USD');
        assert.equal(p.channel, 'sandbox');
        assert.equal(p.reference, 'merchant_txn_ref');
        assert.equal(p.redirect_url.slice(0, p.redirect_url.lastIndexOf('/')), `${t.config.publicUrl}/pay`);
        assert.match(p.redirect_url.split('/').pop(), new RegExp(`^${p.id}-[A-Za-z0-9_-]{43}$`));
        assert.deepEqual(Object.keys(p.payment_method.card).sort(), ['bin', 'brand', 'expiry_month', 'expiry_year', 'fingerprint', 'last4', 'name']);
        assert.deepEqual({ ...p.payment_method.card, fingerprint: undefined }, { brand: 'visa', bin: '424242', last4: '4242', expiry_month: 12, expiry_year: 2077, fingerprint: undefined, name: null });
        assert.match(p.payment_method.card.fingerprint, /^[A-Za-z0-9_-]{22}$/);
        assert.ok(!res.body.includes('4242424242424242'));
        assert.ok(!res.body.includes('"012"'));
        assert.deepEqual(p.metadata, example.metadata);
        assert.deepEqual(p.payment_data, example.payment_data);
        assert.equal(p.customer.email, 'customer@example.com');
        assert.equal(p.billing_details.city, 'New York');
        assert.equal(p.shipping_details.country, 'US');
        for (const field of ['created_at', 'updated_at', 'expires_at']) assert.ok(!Number.isNaN(Date.parse(p[field])), field);

        const again = await t.request({ method: 'GET', url: `/payment/${p.id}` });
        assert.equal(again.statusCode, 200);
        assert.deepEqual(again.json(), p);
      });

      it('gives the same card the same fingerprint and another card another', async () => {
        const a = (await postAuthorise(t, example)).json().payment_method.card.fingerprint;
        const b = (await postAuthorise(t, example)).json().payment_method.card.fingerprint;
        const c = (await postAuthorise(t, merge(example, { payment_method: { number: '5555555555554444' } }))).json().payment_method.card.fingerprint;
        assert.equal(a, b);
        assert.notEqual(a, c);
      });
    });

    describe('the body as a whole', () => {
      it("refuses the spec's own example text (comments, trailing commas) as invalid_json", async () => {
        const raw = await readFile(new URL('../fixtures/spec-example.txt', import.meta.url), 'utf8');
        const body = assertProblem(await postAuthorise(t, raw), 400, 'invalid_json');
        assert.match(body.detail, /not valid JSON/);
        assert.match(body.detail, /[Cc]omments and trailing commas/);
      });

      it('says where the JSON breaks without quoting the body back', async () => {
        const pan = '4242424242424242';
        const located = assertProblem(await postAuthorise(t, `{\n  "channel": "sandbox",\n  "number": "${pan}",\n}`), 400, 'invalid_json');
        assert.match(located.detail, /line 4, column 1/);
        for (const raw of [`x{"number":"${pan}"}`, `{"number":"${pan}","cvc":"123", "x": tru}`, `"${pan}`, `{"a":1} {"number":"${pan}"}`]) {
          const res = await postAuthorise(t, raw);
          assertProblem(res, 400, 'invalid_json');
          assert.ok(!res.body.includes(pan), `echoed: ${res.body}`);
        }
      });

      it('refuses text that is not well-formed Unicode, naming where it is, since no column could store it as sent', async () => {
        // JSON can spell an unpaired surrogate as an escape; stored, it would read back as U+FFFD.
        const raw = JSON.stringify(merge(example, { reference: 'REF' })).replace('"REF"', '"order-\\ud800"');
        assert.equal(assertProblem(await postAuthorise(t, raw), 400, 'invalid_unicode', '/reference').param, '/reference');
        const key = JSON.stringify(merge(example, { metadata: { 'K/~': 'v' } })).replace('"K/~"', '"K/~\\udc00"');
        assertProblem(await postAuthorise(t, key), 400, 'invalid_unicode', '/metadata/K~1~0\udc00');
        // A pair written as escapes is one well-formed character.
        const pair = JSON.stringify(merge(example, { reference: 'REF' })).replace('"REF"', '"order-\\ud83d\\ude00"');
        const res = await postAuthorise(t, pair);
        assert.equal(res.statusCode, 201, res.body);
        assert.equal(res.json().reference, 'order-\u{1F600}');
      });

      it('never quotes a card number back, not even one sent as a field name', async () => {
        const raw = JSON.stringify(example).replace('"payment_method":{', '"payment_method":{"4000056655665556":1,');
        const res = await postAuthorise(t, raw);
        assertProblem(res, 400, 'unknown_field');
        assert.ok(!res.body.includes('4000056655665556'), res.body);
      });

      it('refuses a name sent twice in one object, naming it, since parsers disagree on which counts', async () => {
        const raw = JSON.stringify(merge(example, { amount: 100 })).replace('"amount":100', '"amount":100,"amount":100000');
        const body = assertProblem(await postAuthorise(t, raw), 400, 'duplicate_key', '/amount');
        assert.match(body.detail, /\/amount is sent twice/);
        const nested = JSON.stringify(example).replace('"payment_method":{', '"payment_method":{"number":"4000056655665556",');
        const card = await postAuthorise(t, nested);
        assertProblem(card, 400, 'duplicate_key', '/payment_method/number');
        const named = JSON.stringify(merge(example, { metadata: { '4000056655665556': 'a' } })).replace('"4000056655665556":"a"', '"4000056655665556":"a","4000056655665556":"b"');
        const res = await postAuthorise(t, named);
        assertProblem(res, 400, 'duplicate_key');
        assert.ok(!res.body.includes('4000056655665556'), res.body);
      });

      it('refuses bytes that are not UTF-8 and other charsets, instead of storing U+FFFD; accepts a BOM', async () => {
        const text = JSON.stringify(merge(example, { reference: 'caf_' }));
        const at = Buffer.from(text).indexOf('caf_') + 3;
        const latin1 = Buffer.from(text);
        latin1[at] = 0xe9;
        const bytes = (payload: Buffer) => t.request({ method: 'POST', url: '/payment/authorise', headers: { 'content-type': 'application/json' }, payload });
        assertProblem(await bytes(latin1), 400, 'invalid_encoding');
        assertProblem(await postAuthorise(t, text, { 'content-type': 'application/json; charset=iso-8859-1' }), 415, 'unsupported_media_type', '/headers/content-type');
        assert.equal((await postAuthorise(t, text, { 'content-type': 'application/json; charset=UTF-8' })).statusCode, 201);
        const bom = await bytes(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text.replace('caf_', 'caf_bom'))]));
        assert.equal(bom.statusCode, 201, bom.body);
        assert.equal(bom.json().reference, 'caf_bom');
      });

      it('refuses a NUL character anywhere in the body, naming where it is', async () => {
        const raw = JSON.stringify(merge(example, { reference: 'REF' })).replace('"REF"', '"a\\u0000b"');
        assertProblem(await postAuthorise(t, raw), 400, 'invalid_character', '/reference');
        const nested = JSON.stringify(merge(example, { metadata: { note: 'N' } })).replace('"N"', '"x\\u0000"');
        assertProblem(await postAuthorise(t, nested), 400, 'invalid_character', '/metadata/note');
      });

      it('looks through a body nested thousands deep without overflowing (a 400, never a 500)', async () => {
        const deep = `{"metadata":${'['.repeat(20_000)}"\\u0041"${']'.repeat(20_000)}}`;
        const res = await postAuthorise(t, deep);
        assert.equal(res.statusCode, 400, res.body);
      });

      it('refuses a NUL character in a path parameter or a query value', async () => {
        assertProblem(await t.request({ method: 'GET', url: '/payment/pay_%00' }), 400, 'invalid_character', '/params/id');
        assertProblem(await t.request({ method: 'GET', url: '/payments?reference=a%00' }), 400, 'invalid_character', '/querystring/reference');
        // A parameter's name is the client's: "/" and "~" in it are escaped in the pointer (RFC 6901).
        assertProblem(await t.request({ method: 'GET', url: '/payments?a%2Fb~c=%00' }), 400, 'invalid_character', '/querystring/a~1b~0c');
      });

      it('refuses a query value that is not percent-encoded UTF-8, naming it, as it refuses such a path', async () => {
        // Each was searched for as its literal text ("caf%E9"), finding nothing, and no error said why.
        for (const [query, param] of [
          ['reference=caf%E9', 'reference'], // Latin-1, not UTF-8
          ['customer_reference=%ED%A0%80', 'customer_reference'], // a lone surrogate, encoded
          ['channel=%E2%82', 'channel'], // a truncated sequence
          ['reference=50%off', 'reference'], // a bare %
          ['limit=5&reference=a%2', 'reference'],
          ['ref%FFerence=x', 'ref%FFerence'],
          ['a%2Fb=%FF', 'a~1b'],
        ]) {
          const body = assertProblem(await t.request({ method: 'GET', url: `/payments?${query}` }), 400, 'invalid_encoding', `/querystring/${param}`);
          assert.match(body.detail, /percent-encod/, query);
        }
        assertProblem(await t.request({ method: 'GET', url: '/events?type=payment.created%2Cpayment.%E2%82' }), 400, 'invalid_encoding', '/querystring/type');
        // Well-formed escapes, "+" for a space, and a literal % sent as %25 are read as before.
        for (const query of ['reference=caf%C3%A9', 'reference=50%25off', 'reference=a+b', 'customer_reference=%F0%9F%98%80']) {
          assert.equal((await t.request({ method: 'GET', url: `/payments?${query}` })).statusCode, 200, query);
        }
      });

      it('refuses empty, truncated and non-object bodies', async () => {
        assertProblem(await postAuthorise(t, ''), 400, 'invalid_json');
        assert.match(assertProblem(await postAuthorise(t, ' \n\t'), 400, 'invalid_json').detail, /the request body is empty/);
        assert.match(assertProblem(await postAuthorise(t, '{"channel": "sandbox"'), 400, 'invalid_json').detail, /not valid JSON/);
        for (const raw of ['[]', 'null', '42', '"text"']) {
          const body = assertProblem(await postAuthorise(t, raw), 400, 'invalid_type');
          assert.equal(body.param, '');
        }
      });

      it('answers another content type with 415', async () => {
        for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
          const res = await postAuthorise(t, JSON.stringify(example), { 'content-type': type });
          const body = assertProblem(res, 415, 'unsupported_media_type', '/headers/content-type');
          assert.ok(body.detail.includes(type));
        }
        assertProblem(await t.request({ method: 'POST', url: '/payment/authorise', payload: Buffer.from(JSON.stringify(example)) }), 415, 'unsupported_media_type');
      });

      it('accepts a charset parameter on application/json', async () => {
        const res = await postAuthorise(t, example, { 'content-type': 'application/json; charset=utf-8' });
        assert.equal(res.statusCode, 201, res.body);
      });

      it('answers a body over the limit with 413', async () => {
        const big = merge(example, { reference: 'x'.repeat(t.config.bodyLimitBytes) });
        const body = assertProblem(await postAuthorise(t, big), 413, 'body_too_large');
        assert.match(body.detail, new RegExp(String(t.config.bodyLimitBytes)));
      });

      it('names unknown fields at the top level and nested, all of them', async () => {
        assertProblem(await post({ amount_usd: 1 }), 400, 'unknown_field', '/amount_usd');
        assertProblem(await card({ pin: '1234' }), 400, 'unknown_field', '/payment_method/pin');
        assertProblem(await post({ billing_details: { name: { nickname: 'x' } } }), 400, 'unknown_field', '/billing_details/name/nickname');
        assertProblem(await device({ colour: 24 }), 400, 'unknown_field', '/device_info/colour');
        const body = assertProblem(await post({ extra: 1, shipping_details: { floor: 3 } }), 400, 'unknown_field');
        assert.deepEqual(new Set(fieldErrors(body)), new Set([['/extra', 'unknown_field'], ['/shipping_details/floor', 'unknown_field']]));
        assertProblem(await postAuthorise(t, JSON.stringify(example).replace('{', '{"__proto__":{"amount":1},')), 400, 'unknown_field', '/__proto__');
      });

      it('names each missing required field', async () => {
        for (const field of ['channel', 'amount', 'currency', 'payment_method']) {
          assertProblem(await post({ [field]: undefined }), 400, 'missing_field', `/${field}`);
        }
        for (const field of ['type', 'number', 'expiry_month', 'expiry_year']) {
          assertProblem(await card({ [field]: undefined }), 400, 'missing_field', `/payment_method/${field}`);
        }
        assertProblem(await card({ cvc: undefined }), 400, 'missing_field', '/payment_method/cvc');
        const body = assertProblem(await postAuthorise(t, {}), 400, 'missing_field');
        assert.deepEqual(
          fieldErrors(body).map(([p]) => p),
          ['/channel', '/amount', '/currency', '/payment_method'],
        );
      });
    });

    describe('amount and currency', () => {
      it('wants a positive whole number of minor units', async () => {
        assertProblem(await post({ amount: 0 }), 400, 'out_of_range', '/amount');
        assertProblem(await post({ amount: -100 }), 400, 'out_of_range', '/amount');
        assertProblem(await post({ amount: 10.5 }), 400, 'invalid_type', '/amount');
        const quoted = assertProblem(await post({ amount: '100' }), 400, 'invalid_type', '/amount');
        assert.match(quoted.detail, /no quotes/);
        // 10.50 is what a merchant sends who thinks in major units: rounded to 10 or 11 to pass,
        // it would charge 0.10 USD. The answer says which unit the number is in.
        for (const amount of [10.5, '10.50']) {
          const problem = assertProblem(await post({ amount, currency: 'USD' }), 400, 'invalid_type', '/amount');
          assert.match(problem.detail, /minor units.*1050 means 10\.50 USD/, problem.detail);
        }
        // The largest amount is in the schema, as on capture and refund.
        assert.match(assertProblem(await post({ amount: 1e12 }), 400, 'out_of_range', '/amount').detail, /<= 999999999999$/);
      });

      it('refuses unknown currencies and hints at the upper-case code', async () => {
        assertProblem(await post({ currency: 'XYZ' }), 400, 'invalid_currency', '/currency');
        const lower = assertProblem(await post({ currency: 'usd' }), 400, 'invalid_currency', '/currency');
        assert.match(lower.detail, /Did you mean USD/);
        assertProblem(await post({ currency: 'US' }), 400, 'too_short', '/currency');
        // A withdrawn code names the one that replaced it: a Bulgarian shop charges in euros since 2026.
        assert.match(assertProblem(await post({ currency: 'BGN' }), 400, 'invalid_currency', '/currency').detail, /BGN was withdrawn from ISO 4217; use EUR/);
        assert.match(assertProblem(await post({ currency: 'SLL' }), 400, 'invalid_currency', '/currency').detail, /SLL was withdrawn from ISO 4217; use SLE/);
        for (const currency of ['HRK', 'hrk']) assert.match(assertProblem(await post({ currency }), 400, 'invalid_currency', '/currency').detail, /HRK was withdrawn from ISO 4217; use EUR/);
      });

      it("answers a currency the channel does not take with 422 and the channel's list", async () => {
        const body = assertProblem(await post({ currency: 'INR' }), 422, 'currency_not_allowed', '/currency');
        assert.match(body.detail, /USD/);
      });

      it('takes zero- and three-decimal currencies in their own minor units', async () => {
        for (const [currency, amount] of [['JPY', 500], ['KWD', 1250]] as const) {
          const res = await post({ currency, amount });
          assert.equal(res.statusCode, 201, res.body);
          assert.equal(res.json().amount, amount);
          assert.equal(res.json().currency, currency);
        }
      });
    });

    describe('the card', () => {
      it('checks the Luhn digit, the brand and the length', async () => {
        const luhn = assertProblem(await card({ number: '4242424242424241' }), 400, 'invalid_number', '/payment_method/number');
        assert.match(luhn.detail, /Luhn/);
        assertProblem(await card({ number: '9000000000000008' }), 400, 'unsupported_brand', '/payment_method/number');
        assertProblem(await card({ number: '42424242424242' }), 400, 'invalid_number', '/payment_method/number');
        assertProblem(await card({ number: '4242 4242 4242 4242' }), 400, 'invalid_number', '/payment_method/number');
        assertProblem(await card({ number: 4242424242424242 }), 400, 'invalid_type', '/payment_method/number');
      });

      it('accepts every scheme named in the issue', async () => {
        for (const [number, brand, cvc] of [
          ['5555555555554444', 'mastercard', '123'],
          ['2223003122003222', 'mastercard', '123'],
          ['378282246310005', 'amex', '1234'],
          ['6011111111111117', 'discover', '123'],
          ['3566002020360505', 'jcb', '123'],
          ['36227206271667', 'diners', '123'],
          ['6200000000000005', 'unionpay', '123'],
        ] as const) {
          const res = await card({ number, cvc });
          assert.equal(res.statusCode, 201, `${brand}: ${res.body}`);
          const shown = res.json().payment_method.card;
          assert.equal(shown.brand, brand);
          assert.equal(shown.last4, number.slice(-4));
          // The first 6 at most, and at least 5 digits hidden (the 14-digit Diners card shows its first 5).
          assert.equal(shown.bin, number.slice(0, Math.min(6, number.length - 9)));
          assert.ok(!res.body.includes(number), 'the PAN is echoed');
        }
      });

      it('wants a 4-digit CVC for Amex and 3 digits otherwise', async () => {
        const amex = assertProblem(await card({ number: '378282246310005', cvc: '123' }), 400, 'invalid_cvc', '/payment_method/cvc');
        assert.match(amex.detail, /4 digits/);
        assertProblem(await card({ cvc: '1234' }), 400, 'invalid_cvc', '/payment_method/cvc');
        assertProblem(await card({ cvc: '12a' }), 400, 'invalid_cvc', '/payment_method/cvc');
        assertProblem(await card({ cvc: '12345' }), 400, 'too_long', '/payment_method/cvc');
      });

      it('checks the expiry month and year', async () => {
        assertProblem(await card({ expiry_month: 13 }), 400, 'invalid_expiry_month', '/payment_method/expiry_month');
        assertProblem(await card({ expiry_month: 0 }), 400, 'invalid_expiry_month', '/payment_method/expiry_month');
        assertProblem(await card({ expiry_month: '12' }), 400, 'invalid_type', '/payment_method/expiry_month');
        assertProblem(await card({ expiry_year: 30 }), 400, 'invalid_expiry_year', '/payment_method/expiry_year');
        assertProblem(await card({ expiry_year: 2020 }), 400, 'card_expired', '/payment_method/expiry_year');
      });

      it('keeps a card valid until the last millisecond of its expiry month in UTC-12 (gateway clock)', async () => {
        const saved = t.clock.now();
        try {
          // 31 January, 19:00 in New York: the month is not over for a cardholder there.
          t.clock.set(Date.UTC(2031, 1, 1, 0, 0));
          const evening = await card({ expiry_month: 1, expiry_year: 2031 });
          assert.equal(evening.statusCode, 201, evening.body);
          t.clock.set(Date.UTC(2031, 1, 1, 11, 59, 59, 999));
          const lastMoment = await card({ expiry_month: 1, expiry_year: 2031 });
          assert.equal(lastMoment.statusCode, 201, lastMoment.body);
          t.clock.set(Date.UTC(2031, 1, 1, 12));
          const body = assertProblem(await card({ expiry_month: 1, expiry_year: 2031 }), 400, 'card_expired', '/payment_method/expiry_month');
          assert.match(body.detail, /01\/2031/);
          assert.equal((await card({ expiry_month: 2, expiry_year: 2031 })).statusCode, 201);
        } finally {
          t.clock.set(saved);
        }
      });

      it('reports several card errors at once', async () => {
        const body = assertProblem(await card({ number: '4242424242424241', expiry_month: 13, cvc: '1' }), 400);
        assert.deepEqual(new Set(fieldErrors(body)), new Set([
          ['/payment_method/number', 'invalid_number'],
          ['/payment_method/expiry_month', 'invalid_expiry_month'],
          ['/payment_method/cvc', 'invalid_cvc'],
        ]));
      });

      it('knows only the card and token variants of payment_method', async () => {
        assertProblem(await card({ type: 'iban' }), 400, 'invalid_value', '/payment_method/type');
        assertProblem(await post({ payment_method: 'card' }), 400, 'invalid_type', '/payment_method');
      });
    });

    describe('device_info', () => {
      it('accepts the spec\'s string-typed browser fields and stores them as numbers', async () => {
        const res = await post({});
        assert.equal(res.statusCode, 201, res.body);
        const stored = await t.gateway.services.ctx.database.db.selectFrom('payments').select('details').where('id', '=', res.json().id).executeTakeFirstOrThrow();
        const info = JSON.parse(unpackJson(stored.details)).device_info;
        assert.equal(info.screen_colorDepth, 48);
        assert.equal(info.challengeWindow, 4);
        assert.equal(info.javaEnabled, false);
        assert.equal(info.timezone, 60);
      });

      it('applies the EMV 3-D Secure rules to browser fields', async () => {
        assertProblem(await device({ screen_colorDepth: '31' }), 400, 'invalid_device_info', '/device_info/screen_colorDepth');
        // 10- and 12-bit screens report 30 and 36: their customers must be able to pay, and 3-D
        // Secure gets the listed depth below (EMV lists neither).
        for (const [depth, listed] of [['30', 24], [36, 32]] as const) {
          const res = await device({ screen_colorDepth: depth });
          assert.equal(res.statusCode, 201, String(depth));
          const stored = await t.gateway.services.ctx.database.db.selectFrom('payments').select('details').where('id', '=', res.json().id).executeTakeFirstOrThrow();
          assert.equal(JSON.parse(unpackJson(stored.details)).device_info.screen_colorDepth, listed);
        }
        assertProblem(await device({ screen_colorDepth: 12 }), 400, 'invalid_device_info', '/device_info/screen_colorDepth');
        assertProblem(await device({ challengeWindow: '6' }), 400, 'invalid_device_info', '/device_info/challengeWindow');
        assertProblem(await device({ challengeWindow: 0 }), 400, 'invalid_device_info', '/device_info/challengeWindow');
        assertProblem(await device({ ip_address: '256.1.1.1' }), 400, 'invalid_device_info', '/device_info/ip_address');
        assertProblem(await device({ ip_address: 'localhost' }), 400, 'invalid_device_info', '/device_info/ip_address');
        assertProblem(await device({ timezone: '900' }), 400, 'invalid_device_info', '/device_info/timezone');
        assertProblem(await device({ language: 'english language' }), 400, 'invalid_device_info', '/device_info/language');
        assertProblem(await device({ javaEnabled: 'yes' }), 400, 'invalid_value', '/device_info/javaEnabled');
        assertProblem(await device({ userAgent: undefined }), 400, 'missing_field', '/device_info/userAgent');
        assert.equal((await device({ ip_address: '2001:db8::7', screen_colorDepth: 24, challengeWindow: 5 })).statusCode, 201);
      });

      it('takes an in-app payment whose SDK data is as long as EMV 3DS allows (64,000 characters) within the default body limit', async () => {
        const res = await postAuthorise(t, { ...example, device_info: { ...APP_DEVICE, sdk_enc_data: 'e'.repeat(64_000) } });
        assert.equal(res.statusCode, 201, res.body.slice(0, 300));
      });

      it('accepts the in-app variant and checks its fields', async () => {
        const ok = await postAuthorise(t, { ...example, device_info: APP_DEVICE });
        assert.equal(ok.statusCode, 201, ok.body);
        const bad = { ...APP_DEVICE, sdk_app_id: 'not-a-uuid', sdk_max_timeout: 2 };
        const body = assertProblem(await postAuthorise(t, { ...example, device_info: bad }), 400, 'invalid_device_info');
        assert.deepEqual(new Set(fieldErrors(body)), new Set([
          ['/device_info/sdk_app_id', 'invalid_device_info'],
          ['/device_info/sdk_max_timeout', 'invalid_device_info'],
        ]));
        const mixed = assertProblem(await postAuthorise(t, { ...example, device_info: { ...APP_DEVICE, userAgent: 'x' } }), 400, 'unknown_field', '/device_info/userAgent');
        assert.match(mixed.detail, /browser/);
      });

      it('is required for customer-initiated payments', async () => {
        const body = assertProblem(await post({ device_info: undefined }), 400, 'missing_field', '/device_info');
        assert.match(body.detail, /customer-initiated/);
      });
    });

    describe('customer, billing and shipping details', () => {
      it('checks countries, e-mail addresses and phone numbers where they are', async () => {
        assertProblem(await post({ billing_details: { country: 'XX' } }), 400, 'invalid_country', '/billing_details/country');
        const lower = assertProblem(await post({ shipping_details: { country: 'us' } }), 400, 'invalid_country', '/shipping_details/country');
        assert.match(lower.detail, /Did you mean US/);
        assertProblem(await post({ shipping_details: { country: 'USA' } }), 400, 'too_long', '/shipping_details/country');
        assertProblem(await post({ customer: { email: 'not-an-address' } }), 400, 'invalid_email', '/customer/email');
        assertProblem(await post({ billing_details: { email: 'a b@example.com' } }), 400, 'invalid_email', '/billing_details/email');
        assertProblem(await post({ billing_details: { phone: { number: 'call me' } } }), 400, 'invalid_phone', '/billing_details/phone/number');
        assertProblem(await post({ billing_details: { phone: { number: '+1 (212) 555-01x0' } } }), 400, 'invalid_phone', '/billing_details/phone/number');
        // As checkout forms pass them on: kept as sent.
        for (const number of ['555-123-4567', '+1 (212) 555-0100', '212.555.0100']) {
          const res = await post({ billing_details: { phone: { number } }, shipping_details: { phone: { number } } });
          assert.equal(res.statusCode, 201, `${number}: ${res.body}`);
          assert.equal(res.json().billing_details.phone.number, number);
        }
      });

      it('refuses a card number in free text, wherever it is, without quoting it back', async () => {
        const cases: Array<[Json, string]> = [
          [{ reference: 'order 4242 4242 4242 4242' }, '/reference'],
          [{ metadata: { note: 'card 5555-5555-5555-4444 exp 12/30' } }, '/metadata/note'],
          [{ metadata: { '4000056655665556': 'x' } }, '/metadata/4000056655665556'],
          [{ payment_method: { name: { first_name: '4242424242424242' } } }, '/payment_method/name/first_name'],
          [{ billing_details: { line_2_address: 'amex 378282246310005' } }, '/billing_details/line_2_address'],
          [{ customer: { name: 'x 6011111111111117 y' } }, '/customer/name'],
          // Kept as sent on a customer-initiated payment (the spec's example has "internal_payment_id"); our pay_ ids are never card numbers.
          [{ payment_data: { previous_payment_id: '4242424242424242' } }, '/payment_data/previous_payment_id'],
        ];
        for (const [patch, pointer] of cases) {
          const res = await post(patch);
          const body = assertProblem(res, 400, 'card_number_in_text', pointer.startsWith('/metadata/4') ? '/metadata' : pointer);
          const sent = JSON.stringify(patch).match(/\d[\d -]{11,}\d/)![0];
          for (const shown of [sent, sent.replace(/[ -]/g, '')]) assert.ok(!res.body.includes(shown), res.body);
          assert.match(body.detail, /payment_method\.number/);
        }
        // Nor in the list of every field's error, which names the fields after the first one too.
        for (const metadata of [{ a: 1, 'c x 4242424242424242': 3 }, { a: 1, b: { '5555 5555 5555 4444': 'x' } }, { ['k'.repeat(41)]: 'a', ['x'.repeat(30) + ' 4242424242424242']: 'b' }]) {
          const res = await post({ metadata });
          assert.equal(res.statusCode, 400, res.body);
          assert.ok(res.json().errors.length >= 2, res.body);
          assert.ok(!/4242424242424242|5555 5555 5555 4444/.test(res.body), res.body);
        }
        // Checked before anything that quotes a value back (an unknown channel, a token's customer).
        for (const patch of [{ channel: '4111 1111 1111 1111' }, { payment_method: { type: 'token', token: 'pm_x' }, customer: { reference: '4111111111111111' } }] as Json[]) {
          const res = await postAuthorise(t, { ...merge(example, patch), ...(patch.payment_method ? { payment_method: patch.payment_method } : {}) });
          assertProblem(res, 400, 'card_number_in_text');
          assert.ok(!/4111.?1111.?1111.?1111/.test(res.body), res.body);
        }
        // Long numbers that are not card numbers (a timestamp, a failed check digit, no scheme, too long) are kept.
        for (const reference of ['1732750000009', '4242424242424241', '9999999999999995', '42424242424242424242424', 'DE57 4327 8814 9982 4333 90', 'inv-f4109205794964b']) {
          const res = await post({ reference });
          assert.equal(res.statusCode, 201, `${reference}: ${res.body}`);
          assert.equal(res.json().reference, reference);
        }
      });

      it('stores and returns what was sent, dropping the example\'s empty strings', async () => {
        const res = await post({ billing_details: { name: { first_name: 'Ada', last_name: 'Lovelace' } } });
        assert.equal(res.statusCode, 201, res.body);
        const p = res.json();
        assert.deepEqual(p.billing_details.name, { first_name: 'Ada', last_name: 'Lovelace' });
        assert.equal(p.billing_details.line_2_address, 'Apt 4B');
        assert.equal(p.shipping_details.phone, undefined);
        assert.deepEqual(p.customer, { reference: 'abc123', email: 'customer@example.com', name: 'customer name', phone: '12' });
        assert.deepEqual(p.metadata, { key_1: 'value_1', key_2: 'value_2' });
      });
    });

    describe('metadata', () => {
      it('bounds the key count, key length and value length', async () => {
        const fifty = Object.fromEntries(Array.from({ length: 50 }, (_, i) => [`k${i}`, 'v'.repeat(500)]));
        assert.equal((await postAuthorise(t, { ...example, metadata: { ...fifty } })).statusCode, 201);
        assertProblem(await postAuthorise(t, { ...example, metadata: { ...fifty, k50: 'v' } }), 400, 'too_many_fields', '/metadata');
        assert.equal((await postAuthorise(t, { ...example, metadata: { ['k'.repeat(40)]: 'v' } })).statusCode, 201);
        assertProblem(await postAuthorise(t, { ...example, metadata: { ['k'.repeat(41)]: 'v' } }), 400, 'invalid_key', `/metadata/${'k'.repeat(41)}`);
        assertProblem(await postAuthorise(t, { ...example, metadata: { '': 'v' } }), 400, 'invalid_key', '/metadata/');
        assertProblem(await postAuthorise(t, { ...example, metadata: { a: 'v'.repeat(501) } }), 400, 'too_long', '/metadata/a');
        assertProblem(await postAuthorise(t, { ...example, metadata: { a: 1 } }), 400, 'invalid_type', '/metadata/a');
        assertProblem(await postAuthorise(t, { ...example, metadata: { 'a/b': { nested: true } } }), 400, 'invalid_type', '/metadata/a~1b');
      });
    });

    describe('capture and return URL', () => {
      it('parses capture_delay and refuses it with manual capture', async () => {
        const ok = await post({ capture_delay: '1d' });
        assert.equal(ok.statusCode, 201, ok.body);
        assert.equal(ok.json().capture_delay, '1d');
        assertProblem(await post({ capture_delay: '1w' }), 400, 'invalid_capture_delay', '/capture_delay');
        assertProblem(await post({ capture_delay: '01h' }), 400, 'invalid_capture_delay', '/capture_delay');
        assertProblem(await post({ capture_delay: '30d' }), 400, 'capture_delay_too_long', '/capture_delay');
        assertProblem(await post({ capture: 'manual', capture_delay: '1d' }), 400, 'capture_delay_requires_auto', '/capture_delay');
        const later = await post({ capture: 'later' });
        assertProblem(later, 400, 'invalid_value', '/capture');
        // The message lists the values and quotes the field's description, which only Ajv's verbose errors carry.
        assert.match(later.json().detail, /^capture must be one of "auto", "manual" \(auto \(default\).*manual: capture with POST/);
        const manual = await post({ capture: 'manual' });
        assert.equal(manual.json().capture, 'manual');
      });

      it("takes only the channel's registered return URLs", async () => {
        const body = assertProblem(await post({ return_url: 'https://evil.example/steal' }), 400, 'return_url_not_registered', '/return_url');
        assert.match(body.detail, /\/sandbox\/return/);
        const ok = await post({ return_url: `${t.config.publicUrl}/sandbox/return` });
        assert.equal(ok.statusCode, 201, ok.body);
      });
    });

    describe('payment_data rules', () => {
      const cases: Array<[string, Json, Json, string, string]> = [
        ['a subsequent sub-type needs mit', { payment_sub_type: 'recurring-subsequent' }, {}, 'subsequent_requires_mit', '/payment_data/payment_sub_type'],
        ['an initial sub-type needs credential_on_file', { credential_on_file: false }, { store_for_future_use: false }, 'initial_requires_credential_on_file', '/payment_data/credential_on_file'],
        ['industry_usage is for mit', { payment_sub_type: 'one-off', industry_usage: 'no_show' }, {}, 'industry_usage_requires_mit', '/payment_data/industry_usage'],
        ['mit needs an agreement', { payment_type: 'mit', payment_sub_type: 'one-off' }, { store_for_future_use: false }, 'mit_requires_agreement', '/payment_data/payment_sub_type'],
        [
          'mit needs the initial reference',
          { payment_type: 'mit', payment_sub_type: 'recurring-subsequent', previous_network_reference: undefined, previous_payment_id: undefined },
          { store_for_future_use: false },
          'mit_requires_initial_reference',
          '/payment_data/previous_payment_id',
        ],
        ['storing needs cit', { payment_type: 'mit', payment_sub_type: 'recurring-subsequent' }, { store_for_future_use: true }, 'store_requires_cit', '/payment_method/store_for_future_use'],
      ];
      for (const [name, data, method, code, pointer] of cases) {
        it(name, async () => {
          const body = assertProblem(await post({ payment_data: data, payment_method: method }), 400);
          assert.ok(
            fieldErrors(body).some(([p, c]) => p === pointer && c === code),
            `expected ${code} at ${pointer}, got ${JSON.stringify(fieldErrors(body))}`,
          );
        });
      }

      it('refuses values outside the enumerations', async () => {
        assertProblem(await post({ payment_data: { payment_type: 'moto' } }), 400, 'invalid_value', '/payment_data/payment_type');
        assertProblem(await post({ payment_data: { payment_sub_type: 'weekly' } }), 400, 'invalid_value', '/payment_data/payment_sub_type');
        assertProblem(await post({ payment_data: { credential_on_file: 'true' } }), 400, 'invalid_type', '/payment_data/credential_on_file');
      });

      it('lists the allowed values of an enumerated field that was mistyped', async () => {
        const subType = assertProblem(await post({ payment_data: { payment_sub_type: 'recuring-initial' } }), 400, 'invalid_value', '/payment_data/payment_sub_type');
        assert.ok(
          subType.detail.startsWith('payment_data.payment_sub_type must be one of "one-off", "recurring-initial", "recurring-subsequent", "instalment-initial", "instalment-subsequent", "unscheduled-initial", "unscheduled-subsequent" ('),
          subType.detail,
        );
        const usage = assertProblem(await post({ payment_data: { industry_usage: 'noshow' } }), 400, 'invalid_value', '/payment_data/industry_usage');
        assert.match(usage.detail, /^payment_data\.industry_usage must be one of "none", "delayed_charge", "no_show", "reauthorisation", "resubmission" \(/);
      });
    });

    describe('Idempotency-Key header', () => {
      it('refuses a key with spaces or over 255 characters', async () => {
        assertProblem(await post({}, { 'idempotency-key': 'has space' }), 400, 'invalid_idempotency_key', '/headers/idempotency-key');
        assertProblem(await post({}, { 'idempotency-key': 'k'.repeat(256) }), 400, 'invalid_idempotency_key');
      });

      it('refuses a key holding a card number, which would be stored as sent, without quoting it back', async () => {
        for (const key of ['4242424242424242', 'order-5555-5555-5555-4444', 'retry/378282246310005']) {
          const res = await post({}, { 'idempotency-key': key });
          const body = assertProblem(res, 400, 'card_number_in_text', '/headers/idempotency-key');
          assert.ok(!/\d{4}[-/]?\d{4}/.test(res.body.replace(body.request_id, '')), res.body);
        }
        assert.deepEqual(await t.gateway.services.ctx.database.db.selectFrom('idempotency_keys').select('key').where('key', 'like', '%4444').execute(), []);
        // Order numbers and timestamps are not card numbers.
        for (const key of ['order-1001-attempt-1', '1732750000009', 'DE57432788149982433390']) assert.equal((await post({}, { 'idempotency-key': key })).statusCode, 201, key);
      });
    });

    describe('never a 5xx', () => {
      const expectClientAnswer = async (raw: string) => {
        const res = await postAuthorise(t, raw);
        assert.ok(res.statusCode < 500, `${res.statusCode} for ${raw.slice(0, 300)}: ${res.body}`);
        if (res.statusCode !== 201) {
          assert.ok(res.statusCode >= 400, `${res.statusCode} for ${raw.slice(0, 300)}`);
          assert.match(String(res.headers['content-type']), /^application\/problem\+json/);
          const body = res.json();
          assert.match(body.code, /^[a-z_]+$/, res.body);
          assert.equal(body.status, res.statusCode);
        }
      };

      it('answers random JSON with a 4xx problem', async () => {
        await fc.assert(fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), (v) => expectClientAnswer(JSON.stringify(v))), { numRuns: 150 });
      });

      it('answers random text with a 4xx problem', async () => {
        await fc.assert(fc.asyncProperty(fc.string({ maxLength: 200, unit: 'binary' }), expectClientAnswer), { numRuns: 100 });
      });

      it('answers random mutations of the valid example with 201 or a 4xx problem', async () => {
        const paths = leafPaths(example);
        const mutation = fc.record({
          path: fc.constantFrom(...paths),
          action: fc.oneof(
            fc.constant({ kind: 'delete' as const }),
            fc.jsonValue({ maxDepth: 2 }).map((value) => ({ kind: 'set' as const, value })),
            fc.string({ maxLength: 30 }).map((key) => ({ kind: 'add' as const, key })),
          ),
        });
        await fc.assert(
          fc.asyncProperty(fc.array(mutation, { minLength: 1, maxLength: 3 }), async (mutations) => {
            const body = structuredClone(example);
            for (const m of mutations) mutate(body, m.path, m.action);
            await expectClientAnswer(JSON.stringify(body));
          }),
          { numRuns: 200 },
        );
      });
    });
  });
}

/** Every path to a value in `v`, objects included, so a mutation can hit any level. */
function leafPaths(v: unknown, prefix: string[] = []): string[][] {
  if (!v || typeof v !== 'object' || Array.isArray(v)) return [prefix];
  const nested = Object.entries(v).flatMap(([k, child]) => leafPaths(child, [...prefix, k]));
  return prefix.length ? [prefix, ...nested] : nested;
}

function mutate(body: Json, path: string[], action: { kind: 'delete' } | { kind: 'set'; value: unknown } | { kind: 'add'; key: string }): void {
  let parent: unknown = body;
  for (const key of path.slice(0, -1)) {
    if (!parent || typeof parent !== 'object') return;
    parent = (parent as Json)[key];
  }
  if (!parent || typeof parent !== 'object' || Array.isArray(parent)) return;
  const last = path[path.length - 1]!;
  const target = parent as Json;
  if (action.kind === 'delete') delete target[last];
  else if (action.kind === 'set') target[last] = action.value;
  else if (target[last] && typeof target[last] === 'object' && !Array.isArray(target[last])) (target[last] as Json)[action.key] = 'x';
  else target[action.key] = 'x';
}

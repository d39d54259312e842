import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import nodemailer from 'nodemailer';
import { isCountryCode, isEmail, validateParty } from '../../src/domain/address.js';

const LETTERS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ';
const PAIRS = [...LETTERS].flatMap((a) => [...LETTERS].map((b) => a + b));

describe('isCountryCode', () => {
  it('knows all 249 assigned codes', () => {
    assert.equal(PAIRS.filter(isCountryCode).length, 249);
    for (const code of ['US', 'GB', 'DE', 'AX', 'BQ', 'CW', 'SS', 'SX', 'AQ', 'UM', 'PS', 'TW']) {
      assert.ok(isCountryCode(code), code);
    }
  });

  it('refuses reserved, user-assigned, withdrawn and lower-case codes', () => {
    for (const code of ['UK', 'EU', 'XK', 'AN', 'CS', 'YU', 'ZZ', 'us', 'USA', '', '__proto__']) {
      assert.equal(isCountryCode(code), false, code);
    }
  });
});

describe('isEmail', () => {
  it('accepts ordinary addresses', () => {
    for (const s of ['jane@example.com', 'jane.doe+shop@mail.example.co.uk', 'x@y.io', `${'a'.repeat(64)}@example.com`]) {
      assert.ok(isEmail(s), s);
    }
  });

  it('refuses what cannot be delivered', () => {
    for (const s of [
      '',
      'jane',
      'jane@',
      '@example.com',
      'jane@localhost',
      'jane@@example.com',
      'jane@doe@example.com',
      'jane doe@example.com',
      'jane@example.com ',
      'jane@example..com',
      'jane@.example.com',
      'jane@example.com.',
      `${'a'.repeat(65)}@example.com`,
      `jane@${'a'.repeat(250)}.com`,
    ]) {
      assert.equal(isEmail(s), false, s);
    }
  });
});

describe('validateParty', () => {
  const summary = (details: Parameters<typeof validateParty>[0], base = '/customer') =>
    validateParty(details, base).map((e) => `${e.pointer} ${e.code}`);

  it('accepts a complete, valid party and an empty one', () => {
    assert.deepEqual(
      validateParty({ email: 'jane@example.com', country: 'GB', phone: { country: '+44', number: '+44 20 7946 0958' } }, '/customer'),
      [],
    );
    assert.deepEqual(validateParty({}, '/customer'), []);
    assert.deepEqual(validateParty({ phone: {} }, '/customer'), []);
  });

  it('points each error under base', () => {
    assert.deepEqual(
      summary({ email: 'nope', country: 'UK', phone: { country: '4444', number: '12/34' } }, '/shipping_details'),
      [
        '/shipping_details/email invalid_email',
        '/shipping_details/country invalid_country',
        '/shipping_details/phone/number invalid_phone',
        '/shipping_details/phone/country invalid_phone',
      ],
    );
  });

  it('suggests the upper-case country code', () => {
    const [e] = validateParty({ country: 'gb' }, '/billing_details');
    assert.equal(e?.code, 'invalid_country');
    assert.match(e?.message ?? '', /Did you mean GB\?/);
    assert.doesNotMatch(validateParty({ country: 'UK' }, '')[0]?.message ?? '', /Did you mean/);
  });

  it('checks phone numbers by digit count', () => {
    assert.deepEqual(summary({ phone: { number: '1' } }), []);
    assert.deepEqual(summary({ phone: { number: '1'.repeat(20) } }), []);
    assert.deepEqual(summary({ phone: { number: '1'.repeat(21) } }), ['/customer/phone/number invalid_phone']);
    assert.deepEqual(summary({ phone: { number: '+' } }), ['/customer/phone/number invalid_phone']);
    assert.deepEqual(summary({ phone: { number: '   ' } }), ['/customer/phone/number invalid_phone']);
    assert.deepEqual(summary({ phone: { number: '44+20' } }), ['/customer/phone/number invalid_phone']);
    for (const number of ['020 7946 ext 5', '44+20', '+1 +2', '12/34', '(1) +2']) assert.deepEqual(summary({ phone: { number } }), ['/customer/phone/number invalid_phone'], number);
    // Written as forms take them: hyphens, dots and brackets between the digits.
    for (const number of ['(020) 7946 0958', '+1 (212) 555-0100', '212.555.0100', '555-123-4567', '(020)7946', '+44 20 7946 0958', '+52 1 (55) 1234 5678', '(+44) 20 7946 0958', '555 - 1234', ' 555 1234 ']) {
      assert.deepEqual(summary({ phone: { number } }), [], number);
    }
  });

  it('takes a calling code or an alpha-2 country as phone.country', () => {
    for (const country of ['1', '+1', '44', '+353', 'GB', 'US']) assert.deepEqual(summary({ phone: { country } }), [], country);
    for (const country of ['', '+', '1234', '+1-684', 'gb', 'GBR']) {
      assert.deepEqual(summary({ phone: { country } }), ['/customer/phone/country invalid_phone'], country);
    }
  });

  it('never throws and only reports the fields it was given', () => {
    const party = fc.record(
      {
        email: fc.string(),
        country: fc.string(),
        phone: fc.record({ country: fc.string(), number: fc.string() }, { requiredKeys: [] }),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(party, (details) => {
        for (const e of validateParty(details, '/customer')) {
          const field = e.pointer.slice('/customer/'.length).split('/');
          assert.notEqual(field.reduce<unknown>((o, k) => (o as Record<string, unknown>)[k], details), undefined);
        }
      }),
    );
  });

  it('accepts every generated email of the usual shape', () => {
    fc.assert(
      fc.property(fc.emailAddress(), (email) => {
        fc.pre(email.length <= 254 && email.indexOf('@') <= 64);
        assert.deepEqual(validateParty({ email }, ''), []);
      }),
    );
  });

  it('accepts only what the mailer sends to as written: no display name, group, comment or second entry', async () => {
    // What nodemailer makes of a To it is given: the envelope's recipients and the header.
    const transport = nodemailer.createTransport({ streamTransport: true, buffer: true });
    const sentTo = async (to: string) => {
      const info = (await transport.sendMail({ from: 'no-reply@tzero-pay.test', to, subject: 's', text: 't' })) as { envelope: { to: string[] }; message: Buffer };
      return { envelope: info.envelope.to, header: /^To: (.*)$/m.exec(info.message.toString())?.[1] ?? null };
    };
    for (const email of ['Refund-pending.Call-555-0100<jane@example.com>', 'jane(Your-card-is-blocked)@example.com', 'postmaster(@example.com', 'ops:jane@example.com;', 'root,jane@example.com', 'jane@example.com;root', '"jane"@example.com', 'jane\\@example.com', 'jane@[127.0.0.1]', 'ad\u0001min@example.com']) {
      assert.equal(isEmail(email), false, email);
    }
    // ASCII and C1 controls: whatever passes goes to itself alone (its domain in lower case,
    // the same mailbox), under no name.
    const char = (min: number, max: number) => fc.integer({ min, max }).map((c) => String.fromCharCode(c));
    const ascii = fc.string({ unit: fc.oneof({ arbitrary: char(0x21, 0x7e), weight: 30 }, char(0x00, 0x20), char(0x7f, 0x9f)), maxLength: 12 });
    await fc.assert(
      fc.asyncProperty(ascii, ascii, ascii, async (local, domain, tld) => {
        const email = `${local}@${domain}.${tld}`;
        fc.pre(isEmail(email));
        const sent = email.replace(/@.*$/, (d) => d.toLowerCase());
        assert.deepEqual(await sentTo(email), { envelope: [sent], header: sent });
      }),
      { numRuns: 300 },
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cardNumbersInText, holdsCardNumber, redactCardNumbers } from '../../src/domain/card-number-in-text.js';

describe('card numbers in free text', () => {
  it('finds them as people write them: unbroken, in groups of four, 4-6-5 and 4-6-4, among other words and digits', () => {
    for (const text of [
      '4242424242424242',
      'pan 4242 4242 4242 4242 thanks',
      '5555-5555-5555-4444',
      '378282246310005',
      '3782 822463 10005',
      '3056 930902 0004',
      '4242 4242 4242 4242 12/30',
      'ref 7 4242 4242 4242 4242',
      '4000056655665556.',
      '(6011111111111117)',
      '4000 0000 0000 0000 006',
      'card 4242.4242.4242.4242 exp',
      '5555/5555/5555/4444',
      '4242\u00a04242\u00a04242\u00a04242',
      '3782.822463.10005',
      '4242  4242  4242  4242',
      '4242 - 4242 - 4242 - 4242',
      '5555\u20135555\u20135555\u20134444',
      '4242\u30004242\u30004242\u30004242',
      '\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12',
      '\u30ab\u30fc\u30c9 \uff14\uff12\uff14\uff12 \uff14\uff12\uff14\uff12 \uff14\uff12\uff14\uff12 \uff14\uff12\uff14\uff12',
    ]) {
      assert.equal(holdsCardNumber(text), true, text);
    }
  });

  it('leaves numbers that no scheme could have issued, and digits inside words and identifiers', () => {
    for (const text of [
      '',
      'order 12345',
      '4242424242424241',
      '9999999999999995',
      '1732750000009',
      '42424242424242424242424',
      '+44 20 7946 0958 ext 12',
      '\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff12\uff14\uff11',
      'x3056930009020004y',
      'DE57 4327 8814 9982 4333 90',
      'PL12 4216 2803 3852 5207 2340 7590',
      'pm_01a21feee7108f4109205794964b49ef',
      '4242 42424 2424 242',
      'version 4242.4242.4242.4241',
      'on 2026.11.28 at 12/30/2026',
      '192.168.100.200/4242',
    ]) {
      assert.equal(holdsCardNumber(text), false, text);
    }
  });

  it('finds none in long digit-dense text that holds none', () => {
    assert.equal(holdsCardNumber('1 '.repeat(32_000)), false);
    assert.equal(holdsCardNumber('1234 '.repeat(16_000)), false);
  });

  it('redacts the card numbers of a message and nothing else', () => {
    assert.equal(redactCardNumbers('no channel "4242 4242 4242 4242" for pay_0a4242424242424242b, ref 1732750000009'), 'no channel "[card number]" for pay_0a4242424242424242b, ref 1732750000009');
    assert.equal(redactCardNumbers('nothing to hide'), 'nothing to hide');
    assert.equal(redactCardNumbers('\u756a\u53f7 \uff14\uff12\uff14\uff12 \uff14\uff12\uff14\uff12 \uff14\uff12\uff14\uff12 \uff14\uff12\uff14\uff12 \u3067\u3059 1234'), '\u756a\u53f7 [card number] \u3067\u3059 1234');
  });

  it('names each field holding one, a key by its object, and skips the fields meant for one', () => {
    const body = { payment_method: { number: '4242424242424242', name: { first_name: '4242424242424242' } }, metadata: { '5555555555554444': 'x', 'a/b': '6011 1111 1111 1117' }, reference: 'fine' };
    assert.deepEqual(
      cardNumbersInText(body, { payment_method: { number: true } }).map((e) => [e.pointer, e.code]),
      [
        ['/payment_method/name/first_name', 'card_number_in_text'],
        ['/metadata', 'card_number_in_text'],
        ['/metadata/a~1b', 'card_number_in_text'],
      ],
    );
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { duplicateNameIn } from '../../src/http/duplicate-names.js';

const check = (text: string) => duplicateNameIn(text, JSON.parse(text));

describe('names sent twice in one JSON object', () => {
  it('points at the second of two equal names, at any depth and inside arrays', () => {
    assert.equal(check('{"amount": 100, "amount": 100000}'), '/amount');
    assert.equal(check('{"customer":{"name":"a","email":"b","name":"c"}}'), '/customer/name');
    assert.equal(check('{"items":[{"x":1},{"x":1,"x":2}]}'), '/items/1/x');
    assert.equal(check('[[], [1, {"a": 1}], [{"b": [{"c": 1, "c": 2}]}]]'), '/2/0/b/0/c');
    assert.equal(check('{"a/b~":{"":1,"":2}}'), '/a~1b~0/');
    assert.equal(check('{"__proto__": 1, "__proto__": 2}'), '/__proto__');
  });

  it('compares names as JSON reads them, escapes decoded', () => {
    assert.equal(check('{"amount": 1, "\\u0061mount": 2}'), '/amount');
    assert.equal(check('{"k\\\\": 1, "k\\\\": 2}'), '/k\\');
    assert.equal(check('{"k\\"": 1, "k\\"": 2}'), '/k"');
  });

  it('lets equal names in different objects be, and string values that look like names', () => {
    assert.equal(check('{"a": {"id": 1}, "b": {"id": 1}, "id": 3}'), undefined);
    assert.equal(check('{"note": "\\"amount\\": 1, \\"amount\\": 2", "amount": 1}'), undefined);
    assert.equal(check('{"url": "https://x.test:8443/a", "at": "12:30", "quote": "\\":"}'), undefined);
    assert.equal(check('[{"a": 1}, {"a": 1}]'), undefined);
    assert.equal(check('"a"'), undefined);
  });

  it('never finds a repeat in what JSON.stringify writes, pretty or not', () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.boolean(), (value, pretty) => {
        assert.equal(check(JSON.stringify(value, null, pretty ? 2 : undefined)), undefined);
      }),
      { numRuns: 500 },
    );
  });

  it('always finds a name repeated anywhere in an object', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.string(), fc.jsonValue(), { minKeys: 1 }), fc.nat(), fc.jsonValue(), (object, pick, second) => {
        const names = Object.keys(object);
        const name = names[pick % names.length]!;
        const text = JSON.stringify(object);
        const repeated = `${text.slice(0, -1)},${JSON.stringify(name)}:${JSON.stringify(second)}}`;
        assert.equal(check(`{"outer":[${repeated}]}`), `/outer/0/${name.replaceAll('~', '~0').replaceAll('/', '~1')}`);
      }),
      { numRuns: 500 },
    );
  });
});

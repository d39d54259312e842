import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import SQLite from 'better-sqlite3';
import fc from 'fast-check';
import { ID_PREFIX, formatId, type IdKind } from '../../src/domain/ids.js';
import { ID_TAGS, textFromStored, readRow, storedParams, storedValue } from '../../src/adapters/storage/stored-values.js';
import { statementCache } from '../../src/adapters/storage/sqlite-connection.js';

const kinds = Object.keys(ID_PREFIX) as IdKind[];

test('every id prefix has its own tag', () => {
  for (const prefix of Object.values(ID_PREFIX)) assert.ok(ID_TAGS[prefix] !== undefined, `no tag for ${prefix}`);
  assert.equal(new Set(Object.values(ID_TAGS)).size, Object.keys(ID_TAGS).length);
});

test('an id is stored as 17 bytes and reads back as the same text', () => {
  fc.assert(
    fc.property(fc.constantFrom(...kinds), fc.integer({ min: 0, max: 2 ** 47 }), fc.uint8Array({ minLength: 10, maxLength: 10 }), (kind, ms, random) => {
      const id = formatId(kind, ms, random);
      const stored = storedValue(id);
      assert.ok(stored instanceof Uint8Array);
      assert.equal(stored.length, 17);
      assert.equal(textFromStored(stored), id);
    }),
  );
});

test('text that is not exactly an id stays text', () => {
  const id = formatId('payment', Date.now(), new Uint8Array(10).fill(7));
  for (const s of [id.toUpperCase(), `${id}x`, id.slice(0, -1), `zz_${id.slice(4)}`, ` ${id.slice(1)}`, 'order-1', '']) assert.equal(storedValue(s), s);
  fc.assert(fc.property(fc.string(), (s) => assert.equal(storedValue(s) === s, !/^[a-z]{2,3}_[0-9a-f]{32}$/.test(s) || !(s.split('_')[0]! in ID_TAGS))));
});

test('an id-shaped text is stored as bytes only when every digit is lowercase hex', () => {
  const digits = '0123456789abcdefABCDEFgz_-';
  fc.assert(
    fc.property(fc.constantFrom(...Object.keys(ID_TAGS)), fc.array(fc.constantFrom(...digits), { minLength: 32, maxLength: 32 }), (prefix, chars) => {
      const text = `${prefix}_${chars.join('')}`;
      const stored = storedValue(text);
      assert.equal(stored !== text, /^[0-9a-f]{32}$/.test(chars.join('')), text);
      assert.equal(textFromStored(stored) ?? stored, text);
    }),
  );
});

test('blobs that are not stored ids read back as they are', () => {
  for (const b of [Buffer.alloc(17, 1), Buffer.alloc(16, 0x48), Buffer.alloc(18, 0x48)]) assert.equal(textFromStored(b), undefined);
  const row = { body: Buffer.alloc(17, 2), n: 1, s: 'x' };
  assert.deepEqual(readRow({ ...row }), row);
});

test('parameters: ids become bytes, the rest and the caller’s array stay as they were', () => {
  const id = formatId('event', 1, new Uint8Array(10));
  const params = [id, 'order-1', 3, null];
  const out = storedParams(params);
  assert.notEqual(out, params);
  assert.equal(params[0], id);
  assert.deepEqual(out.slice(1), ['order-1', 3, null]);
  assert.equal(textFromStored(out[0]), id);
  const plain = ['a', 1];
  assert.equal(storedParams(plain), plain);
  assert.equal(textFromStored(storedParams({ id }).id), id);
});

/** The vault's sealed form: base64 IV, ciphertext and GCM tag (src/adapters/vault/envelope.ts). */
const sealedOf = (iv: Buffer, ct: Buffer, tag: Buffer) => `${iv.toString('base64')}.${ct.toString('base64')}.${tag.toString('base64')}`;

test('a sealed value is stored as its bytes, a quarter smaller, and reads back as the same text', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ maxLength: 300 }), fc.uint8Array({ minLength: 16, maxLength: 16 }), (iv, ct, tag) => {
      const text = sealedOf(Buffer.from(iv), Buffer.from(ct), Buffer.from(tag));
      const stored = storedValue(text);
      assert.ok(stored instanceof Uint8Array, text);
      assert.equal(stored.length, 1 + 12 + 16 + ct.length);
      assert.equal(textFromStored(stored), text);
    }),
  );
});

test('text shaped almost like a sealed value stays text', () => {
  const text = sealedOf(randomBytes(12), randomBytes(16), randomBytes(16));
  const [iv, ct, tag] = text.split('.') as [string, string, string];
  // 'QR==' has padding bits set: base64 decoders accept it, but it would come back as 'QQ=='.
  // The tag's last digit carries four such bits too ('R==' reads back as 'Q==').
  const loudTag = `${tag.slice(0, 21)}R==`;
  for (const s of [`${iv}.${ct}.${tag.slice(0, -2)}`, `${iv}x.${ct}.${tag}`, `${iv}.${ct}.${tag}.`, `${iv}.${ct.slice(0, -1)}.${tag}`, `${iv}.QR==.${tag}`, `${iv}.${ct}.${loudTag}`, text.replaceAll('.', '|')]) {
    assert.equal(storedValue(s), s, s);
  }
});

test('through a SQLite connection: equality, order and a merchant text that looks like an id', () => {
  const raw = new SQLite(':memory:');
  const prepare = statementCache(raw);
  prepare('create table t (id text primary key, reference text)').run([]);
  const ids = [3, 1, 2].map((n) => formatId('payment', n, new Uint8Array(10).fill(n)));
  const lookalike = formatId('payment', 9, new Uint8Array(10).fill(9));
  for (const id of ids) prepare('insert into t (id, reference) values (?, ?)').run([id, id === ids[0] ? lookalike : 'order']);
  assert.equal(raw.prepare('select count(*) from t where typeof(id) = ?').pluck().get('blob'), 3);
  assert.deepEqual((prepare('select id from t order by id').all([]) as Array<{ id: string }>).map((r) => r.id), [...ids].sort());
  assert.deepEqual(prepare('select id, reference from t where reference = ?').get([lookalike]), { id: ids[0], reference: lookalike });
  assert.deepEqual([...prepare('select id from t where id > ? order by id').iterate([ids[1]])], [{ id: ids[2] }, { id: ids[0] }]);
  raw.close();
});

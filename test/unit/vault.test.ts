import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import { describe, it } from 'node:test';
import { SensitiveCard, Vault } from '../../src/adapters/vault/envelope.js';
import { createLogger } from '../../src/logger.js';

const PAN = '4242424242424242';
const kek = (id: string) => ({ id, key: randomBytes(32) });

function vaultWith(active: { id: string; key: Buffer }, older: Array<{ id: string; key: Buffer }> = [], hmacKey = randomBytes(32)) {
  return new Vault({ active, all: new Map([active, ...older].map((k) => [k.id, k.key])) }, hmacKey);
}

describe('envelope vault', () => {
  it('round-trips a card, storing neither PAN nor CVC in clear', () => {
    const vault = vaultWith(kek('k1'));
    const sealed = vault.sealCard('pay_1', new SensitiveCard(PAN, '123'));
    assert.equal(sealed.kek_id, 'k1');
    const stored = JSON.stringify(sealed);
    assert.ok(!stored.includes(PAN) && !stored.includes(Buffer.from(PAN).toString('base64')));
    assert.ok(!stored.includes('"123"'));
    const opened = vault.openCard('pay_1', sealed);
    assert.equal(opened.pan, PAN);
    assert.equal(opened.cvc, '123');
  });

  it('uses a fresh data key and IV every time', () => {
    const vault = vaultWith(kek('k1'));
    const a = vault.sealCard('pay_1', new SensitiveCard(PAN, '123'));
    const b = vault.sealCard('pay_1', new SensitiveCard(PAN, '123'));
    assert.notEqual(a.wrapped_dek, b.wrapped_dek);
    assert.notEqual(a.pan_ct, b.pan_ct);
  });

  it('keeps the CVC optional and erasable on its own', () => {
    const vault = vaultWith(kek('k1'));
    const sealed = vault.sealCard('pay_1', new SensitiveCard(PAN, undefined));
    assert.equal(sealed.cvc_ct, null);
    const withCvc = vault.sealCard('pay_2', new SensitiveCard(PAN, '999'));
    const erased = vault.openCard('pay_2', { ...withCvc, cvc_ct: null });
    assert.equal(erased.pan, PAN);
    assert.equal(erased.cvc, undefined);
  });

  it('binds ciphertext to its record: moved or tampered data does not open', () => {
    const vault = vaultWith(kek('k1'));
    const sealed = vault.sealCard('pay_1', new SensitiveCard(PAN, '123'));
    assert.throws(() => vault.openCard('pay_2', sealed));
    const other = vault.sealCard('pay_2', new SensitiveCard('5555555555554444', '456'));
    assert.throws(() => vault.openCard('pay_1', { ...sealed, pan_ct: other.pan_ct }));
    const [iv, ct, tag] = sealed.pan_ct.split('.');
    const flipped = Buffer.from(ct!, 'base64');
    flipped[0]! ^= 1;
    assert.throws(() => vault.openCard('pay_1', { ...sealed, pan_ct: `${iv}.${flipped.toString('base64')}.${tag}` }));
    assert.throws(() => vault.openCard('pay_1', { ...sealed, pan_ct: 'garbage' }), /malformed/);
  });

  it('needs the KEK that wrapped a record, and says which one is missing', () => {
    const k1 = kek('k1');
    const sealed = vaultWith(k1).sealCard('pay_1', new SensitiveCard(PAN, '123'));
    assert.throws(() => vaultWith(kek('k2')).openCard('pay_1', sealed), /"k1" is not configured.*VAULT_KEK/);
    // The same id with other key material fails authentication, not silently.
    assert.throws(() => vaultWith({ id: 'k1', key: randomBytes(32) }).openCard('pay_1', sealed));
  });

  it('rotates: an old KEK still opens, rewrap moves the data key under the new one without touching ciphertext', () => {
    const k1 = kek('k1');
    const k2 = kek('k2');
    const sealed = vaultWith(k1).sealCard('pay_1', new SensitiveCard(PAN, '123'));
    const during = vaultWith(k2, [k1]);
    assert.equal(during.openCard('pay_1', sealed).pan, PAN);
    const rewrapped = { ...sealed, ...during.rewrap('pay_1', sealed) };
    assert.equal(rewrapped.kek_id, 'k2');
    assert.equal(rewrapped.pan_ct, sealed.pan_ct);
    assert.equal(rewrapped.cvc_ct, sealed.cvc_ct);
    const afterwards = vaultWith(k2);
    assert.equal(afterwards.openCard('pay_1', rewrapped).pan, PAN);
    assert.throws(() => afterwards.openCard('pay_1', sealed));
  });

  it('seals strings and bytes the same way', () => {
    const k1 = kek('k1');
    const vault = vaultWith(k1);
    const packed = vault.sealString('ch_1', 'rsk_secret');
    assert.ok(packed.startsWith('k1|'));
    assert.ok(!packed.includes('rsk_secret'));
    assert.equal(vault.openString('ch_1', packed), 'rsk_secret');
    assert.throws(() => vault.openString('ch_2', packed));
    assert.throws(() => vault.openString('ch_1', 'k1|nope'), /malformed/);
    const bytes = randomBytes(100);
    assert.deepEqual(vault.openBytes('doc_1', vault.sealBytes('doc_1', bytes)), bytes);
    assert.equal(vaultWith(kek('k2'), [k1]).openString('ch_1', packed), 'rsk_secret');
  });

  it('fingerprints with a keyed hash: stable per key, different across keys, not a plain SHA-256', () => {
    const hmacKey = randomBytes(32);
    const a = vaultWith(kek('k1'), [], hmacKey);
    const b = vaultWith(kek('k2'), [], hmacKey);
    const other = vaultWith(kek('k1'));
    assert.equal(a.fingerprint(PAN), b.fingerprint(PAN));
    assert.notEqual(a.fingerprint(PAN), other.fingerprint(PAN));
    assert.notEqual(a.fingerprint(PAN), a.fingerprint('5555555555554444'));
    assert.match(a.fingerprint(PAN), /^[A-Za-z0-9_-]{22}$/);
    const sha = createHash('sha256').update(PAN).digest();
    for (const encoding of ['hex', 'base64', 'base64url'] as const) assert.ok(!sha.toString(encoding).startsWith(a.fingerprint(PAN).slice(0, 10)));
  });
});

describe('SensitiveCard', () => {
  const card = new SensitiveCard(PAN, '123');

  it('redacts itself in JSON, strings and inspection', () => {
    for (const shown of [JSON.stringify({ card }), String(card), `${card}`, inspect(card), inspect({ nested: { card } }, { depth: 5 })]) {
      assert.ok(!shown.includes(PAN), shown);
      assert.ok(!shown.includes('123'), shown);
      assert.match(shown, /redacted/);
    }
    assert.deepEqual(Object.keys(card), []);
  });

  it('stays redacted in the gateway logger, and card fields by name are censored', () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    });
    const log = createLogger('info', sink as never);
    log.info({ card }, 'card object');
    log.info({ payment_method: { number: PAN, cvc: '123' }, body: { secret_key: 'sk_' + 'a'.repeat(32), payment_method: { number: PAN, cvc: '123' } } }, 'raw fields');
    log.info({ req: { method: 'GET', url: '/pay/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQ?x=1', id: 'req_1', headers: { 'x-secret-key': 'sk_x' } } }, 'request');
    const out = lines.join('');
    assert.equal(lines.length, 3);
    assert.ok(!out.includes(PAN), out);
    assert.ok(!out.includes('"123"'), out);
    assert.ok(!out.includes('sk_aaaa'), out);
    assert.ok(!out.includes('abcdefghijklmnop'), out);
    assert.ok(!out.includes('sk_x'), out);
    assert.match(out, /\/pay\/\[token\]/);
  });
});

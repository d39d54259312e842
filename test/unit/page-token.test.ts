import assert from 'node:assert/strict';
import { createHmac, hkdfSync, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { PageTokens } from '../../src/app/page-token.js';
import { formatId } from '../../src/domain/ids.js';
import { redactUrl } from '../../src/logger.js';

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const paymentId = () => formatId('payment', Date.now(), randomBytes(10));

/** The token split at its separator: ids never contain `-`, the MAC may. */
function parts(token: string): { id: string; mac: string } {
  const at = token.indexOf('-');
  return { id: token.slice(0, at), mac: token.slice(at + 1) };
}

describe('hosted-page tokens', () => {
  const hmacKey = randomBytes(32);
  const tokens = PageTokens.of(hmacKey);

  it('opens the payment it was minted for', () => {
    const id = paymentId();
    const token = tokens.mint(id);
    assert.match(token, /^pay_[0-9a-f]{32}-[A-Za-z0-9_-]{43}$/);
    assert.equal(parts(token).id, id);
    assert.equal(tokens.paymentIdOf(token), id);
  });

  it('is the documented MAC of the payment id, so URLs survive restarts and deploys', () => {
    const id = paymentId();
    const pageKey = Buffer.from(hkdfSync('sha256', hmacKey, Buffer.alloc(0), 'tzero checkout page v1', 32));
    const mac = createHmac('sha256', pageKey).update(`checkout v1\n${id}`).digest('base64url');
    assert.equal(tokens.mint(id), `${id}-${mac}`);
    assert.equal(PageTokens.of(Buffer.from(hmacKey)).mint(id), `${id}-${mac}`);
  });

  it('refuses a MAC with one character changed', () => {
    const token = tokens.mint(paymentId());
    const { id, mac } = parts(token);
    for (const at of [0, 21, 42]) {
      // +4 changes a bit the last character carries too (see the next test).
      const wrong = mac.slice(0, at) + BASE64URL[(BASE64URL.indexOf(mac[at]!) + 4) % 64] + mac.slice(at + 1);
      assert.equal(tokens.paymentIdOf(`${id}-${wrong}`), null, `MAC changed at ${at}`);
    }
  });

  it('refuses another spelling of the right MAC', () => {
    const { id, mac } = parts(tokens.mint(paymentId()));
    // The last of 43 characters carries 4 bits of the MAC and 2 that decoders ignore.
    const last = BASE64URL.indexOf(mac.at(-1)!);
    const respelt = mac.slice(0, -1) + BASE64URL[last ^ 1];
    assert.deepEqual(Buffer.from(respelt, 'base64url'), Buffer.from(mac, 'base64url'));
    assert.equal(tokens.paymentIdOf(`${id}-${respelt}`), null);
  });

  it('refuses a truncated or extended token', () => {
    const token = tokens.mint(paymentId());
    const { id } = parts(token);
    for (const bad of [token.slice(0, -1), token.slice(0, -22), `${id}-`, id, token.slice(1), `${token}A`, `${token}=`, '']) {
      assert.equal(tokens.paymentIdOf(bad), null, bad);
    }
  });

  it("refuses this MAC on another payment's id", () => {
    const { mac } = parts(tokens.mint(paymentId()));
    const other = paymentId();
    assert.equal(tokens.paymentIdOf(`${other}-${mac}`), null);
    assert.equal(tokens.paymentIdOf(tokens.mint(other)), other);
  });

  it('refuses a token whose separator is missing, doubled or another character', () => {
    const { id, mac } = parts(tokens.mint(paymentId()));
    for (const bad of [`${id}${mac}`, `${id}--${mac}`, `${id}.${mac}`, `${id}_${mac}`, `${id}~${mac}`, `${id}/${mac}`, `${mac}-${id}`]) {
      assert.equal(tokens.paymentIdOf(bad), null, bad);
    }
  });

  it('refuses an id that is not a payment id', () => {
    const id = paymentId();
    const event = `evt_${id.slice(4)}`;
    const upper = `pay_${id.slice(4).toUpperCase()}`;
    for (const other of [event, upper]) {
      // Even with the MAC computed over that text, only payment ids are ever looked up.
      const pageKey = Buffer.from(hkdfSync('sha256', hmacKey, Buffer.alloc(0), 'tzero checkout page v1', 32));
      const mac = createHmac('sha256', pageKey).update(`checkout v1\n${other}`).digest('base64url');
      assert.equal(tokens.paymentIdOf(`${other}-${mac}`), null, other);
    }
  });

  it('refuses a token minted under another HMAC key', () => {
    const id = paymentId();
    assert.equal(PageTokens.of(randomBytes(32)).paymentIdOf(tokens.mint(id)), null);
  });

  it('is redacted whole from logged URLs', () => {
    const token = tokens.mint(paymentId());
    assert.equal(redactUrl(`/pay/${token}/confirm`), '/pay/[token]/confirm');
  });
});

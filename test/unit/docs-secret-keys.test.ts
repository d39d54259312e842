import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { formatSecretKey, isWellFormedSecretKey, KEY_MODES } from '../../src/domain/secret-key.js';

const root = new URL('../../', import.meta.url);
const documents = ['README.md', ...readdirSync(new URL('docs/', root)).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/** The shape of every key `key create` and the sandbox's first boot hand out now: the mode after `sk_`. */
const ISSUED = /^sk_(?:test|live)_[0-9a-f]{32}$/;

describe('secret keys shown in the merchant documentation', () => {
  it('look like the keys the gateway issues, so a merchant comparing theirs is not misled', () => {
    const shown = documents.flatMap((file) =>
      [...readFileSync(new URL(file, root), 'utf8').matchAll(/\bsk_[0-9a-z_]*[0-9a-f]{32}\b/g)].map((m) => ({ file, key: m[0] })),
    );
    assert.ok(shown.length > 0, 'the documentation shows at least one key');
    for (const { file, key } of shown) {
      assert.ok(isWellFormedSecretKey(key), `${file}: ${key} is a well-formed key`);
      assert.match(key, ISSUED, `${file}: ${key} has the mode prefix issued keys carry`);
    }
  });

  it('the pattern above is the one issued keys follow', () => {
    for (const mode of KEY_MODES) assert.match(formatSecretKey(randomBytes(16), mode), ISSUED);
  });
});

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../support/gateway.js';
import { answeredCodes } from '../support/answered-codes.js';

const root = new URL('../../', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, root), 'utf8');

describe('every error code the gateway answers is documented', () => {
  let t: TestGateway;
  before(async () => {
    t = await startTestGateway({ dialect: 'sqlite' });
  });
  after(() => t?.close());

  it('reads every code from the source: no constructor gets a code it could not see', () => {
    const { codes, unseen } = answeredCodes();
    assert.deepEqual(unseen, [], 'a DomainError or problem() given a code from elsewhere: collect its codes in NAMED and list the site in FORWARDED');
    for (const known of ['invalid_json', 'initial_payment_not_found', 'url_scheme_not_allowed', 'compliance_expired', 'malformed_path', 'request_timeout', 'capture_failed', 'unknown_field']) {
      assert.ok(codes.has(known), `${known} is collected`);
    }
  });

  it('names each in the README, docs/*.md or the served OpenAPI, where merchants and operators look', async () => {
    const openapi = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).body;
    const docs = ['README.md', ...readdirSync(new URL('docs', root)).filter((f) => f.endsWith('.md') && f !== 'benchmarks.md').map((f) => `docs/${f}`)].map(read);
    const text = [openapi, ...docs].join('\n');
    const missing = [...answeredCodes().codes].filter(([code]) => !new RegExp(`(?<![a-z0-9_])${code}(?![a-z0-9_])`).test(text)).map(([code, file]) => `${code} (${file})`);
    assert.deepEqual(missing, []);
  });
});

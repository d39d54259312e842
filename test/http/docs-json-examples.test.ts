import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { startTestGateway, type TestGateway } from '../support/gateway.js';

type Json = Record<string, any>;

const root = new URL('../../', import.meta.url);
const documents = ['README.md', ...readdirSync(new URL('docs/', root)).filter((f) => f.endsWith('.md')).map((f) => `docs/${f}`)];

/**
 * A JSON example as the guides print it, made parseable: `//` comments, `"…": "…"` members and
 * bare `…` placeholders for what the example leaves out are dropped. A fragment (`"payment_data": {…}`)
 * is wrapped in braces.
 */
function parseExample(text: string): Json {
  const cleaned = text
    .replace(/^\s*\/\/.*$/gm, '')
    .replace(/"…": "[^"]*",?/g, '')
    .replace(/…/g, '')
    .replace(/,(\s*,)+/g, ',')
    .replace(/,(\s*[}\]])/g, '$1');
  return JSON.parse(cleaned.trim().startsWith('{') ? cleaned : `{${cleaned}}`) as Json;
}

/** Every member path an example shows, an array's entries as `0`. */
function memberPaths(value: unknown, prefix: string[] = []): string[][] {
  if (Array.isArray(value)) return value.flatMap((v) => memberPaths(v, [...prefix, '0']));
  if (!value || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => [[...prefix, k], ...memberPaths(v, [...prefix, k])]);
}

describe('the JSON examples in README.md and docs/ show only what the API reference describes', () => {
  let t: TestGateway;
  let doc: Json;
  before(async () => {
    t = await startTestGateway({ dialect: 'sqlite' });
    doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json();
  });
  after(() => t?.close());

  const resolve = (schema: Json): Json => {
    let s = schema;
    while (typeof s.$ref === 'string') s = (s.$ref as string).slice(2).split('/').reduce((o: Json, k) => o[k], doc);
    return s;
  };

  /** Whether the schema (or one of its variants) has the member path. */
  const describes = (schema: Json, path: string[]): boolean => {
    const s = resolve(schema);
    const variants = [...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? [])] as Json[];
    if (variants.length > 0 && variants.some((v) => describes(v, path))) return true;
    if (path.length === 0) return true;
    const [head, ...rest] = path as [string, ...string[]];
    if (head === '0' && s.items) return describes(s.items, rest);
    if (s.properties?.[head]) return describes(s.properties[head], rest);
    if (s.additionalProperties && typeof s.additionalProperties === 'object') return describes(s.additionalProperties, rest);
    return false;
  };

  const answer = (path: string, method: string, status: string): Json => doc.paths[path][method].responses[status].content['application/json'].schema;

  /** The schema an example is an instance of, told by its `object` (a fragment is part of an authorise request). */
  const schemaOf = (example: Json, fragment: boolean): Json | undefined => {
    if (fragment) return doc.paths['/payment/authorise'].post.requestBody.content['application/json'].schema;
    if (typeof example.type === 'string' && /^https?:\/\/[^/]+\/errors\/[a-z0-9_]+$/.test(example.type)) return doc.components.schemas.Problem;
    const listed = example.object === 'list' ? (example.data?.[0] as Json | undefined)?.object ?? 'payment' : undefined;
    const schemas: Record<string, () => Json> = {
      payment: () => doc.components.schemas.Payment,
      refund: () => doc.components.schemas.Refund,
      webhook_endpoint: () => answer('/webhook-endpoints', 'post', '201'),
      compliance_document: () => answer('/merchant/compliance/documents', 'post', '201'),
      compliance: () => answer('/merchant/compliance', 'get', '200'),
      event: () => resolve(answer('/events', 'get', '200')).properties.data.items,
      'list of payment': () => answer('/payments', 'get', '200'),
      'list of payment_method': () => answer('/customers/{reference}/payment-methods', 'get', '200'),
    };
    // An example that leaves `object` out is told by its id's prefix.
    const kind = example.object ?? (String(example.id).startsWith('pay_') ? 'payment' : undefined);
    return schemas[listed ? `list of ${listed}` : String(kind)]?.();
  };

  it('names no member the gateway does not answer (or take)', () => {
    let checked = 0;
    const strays: string[] = [];
    for (const file of documents) {
      for (const [, text] of readFileSync(new URL(file, root), 'utf8').matchAll(/```jsonc?\n([\s\S]*?)```/g)) {
        const fragment = !text!.trim().startsWith('{') && !text!.trim().startsWith('//');
        const example = parseExample(text!);
        // The sandbox's credentials file is no API answer.
        if ('secret_key' in example) continue;
        const schema = schemaOf(example, fragment);
        assert.ok(schema, `${file}: no API answer matches the example ${text!.slice(0, 80)}`);
        checked++;
        for (const path of memberPaths(example)) {
          // A compliance reminder adds days_before_expiry to the status it carries (docs/webhooks.md).
          if (path.join('/') === 'data/object/days_before_expiry') continue;
          if (!describes(schema, path)) strays.push(`${file}: /${path.join('/')}`);
        }
      }
    }
    assert.ok(checked >= 10, `only ${checked} examples found`);
    assert.deepEqual(strays, []);
  });
});

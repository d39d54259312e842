import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, it } from 'node:test';
import { passagesFor } from '../../src/http/error-types.js';

describe('problem type passages on a deployment without the documents', () => {
  it('answers from the OpenAPI document alone when README.md and docs/ are absent', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tzero-nodocs-'));
    try {
      const openapi = { paths: { '/payments': { get: { responses: { '400': { description: 'invalid_cursor: the cursor names no payment.' } } } } } };
      const passages = passagesFor('invalid_cursor', openapi, pathToFileURL(`${dir}/`));
      assert.deepEqual(passages, [{ source: 'GET /payments', status: 400, text: 'invalid_cursor: the cursor names no payment.' }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

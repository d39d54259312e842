import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../support/process.js';

const source = readFileSync(join(REPO_ROOT, 'src/config.ts'), 'utf8');

/** README's "Configuration" table: variable → [default, meaning]. */
function documented(): Map<string, [string, string]> {
  const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Configuration'), readme.indexOf('### Benchmark'));
  const rows = new Map<string, [string, string]>();
  for (const line of section.split('\n')) {
    const m = /^\| `([A-Z][A-Z0-9_]+)` \| (.*?) \| (.*) \|$/.exec(line);
    if (m) rows.set(m[1]!, [m[2]!, m[3]!]);
  }
  return rows;
}

/** Every variable config.ts reads: `env.X`, `env, 'X'` (int, bool) and live mode's list of required ones. */
function read(): Set<string> {
  const names = new Set<string>();
  for (const m of source.matchAll(/env\.([A-Z][A-Z0-9_]+)|\(env, '([A-Z][A-Z0-9_]+)'/g)) names.add((m[1] ?? m[2])!);
  for (const m of /const missing = \[([^\]]*)\]/.exec(source)![1]!.matchAll(/'([A-Z_]+)'/g)) names.add(m[1]!);
  return names;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : []));
}

describe("README's configuration table", () => {
  it('lists exactly the variables the gateway reads', () => {
    assert.deepEqual([...documented().keys()].sort(), [...read()].sort());
  });

  it('gives each whole-number setting the default and range the code has', () => {
    const rows = documented();
    const calls = [...source.matchAll(/int\(env, '([A-Z_]+)', ([\d_]+|\w+), ([\d_]+), ([\d_]+)\)/g)];
    assert.ok(calls.length >= 15, `found ${calls.length} int() settings`);
    const n = (s: string) => Number(s.replaceAll('_', ''));
    for (const [, name, fallback, min, max] of calls) {
      const [shownDefault, meaning] = rows.get(name!)!;
      // OPERATOR_PORT is read only when set; RATE_LIMIT_BURST defaults to another variable.
      if (/^[\d_]+$/.test(fallback!) && shownDefault !== '—') assert.match(shownDefault, new RegExp(`^\`${n(fallback!)}\``), `${name}'s default`);
      assert.match(meaning, new RegExp(`\\((?:range )?${n(min!)}–${n(max!)}[;),]`), `${name}'s range`);
    }
  });

  it('config.ts stays the only reader of process.env, so the table is the whole story', () => {
    const readers = sourceFiles(join(REPO_ROOT, 'src')).filter((f) => !f.endsWith('/config.ts') && /process\.env/.test(readFileSync(f, 'utf8')));
    assert.deepEqual(readers, []);
  });
});

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { TEST_CARDS } from '../../src/adapters/acquirers/sandbox/test-cards.js';

/** The rows of a document's test card table: the card's digits and what the row promises in code spans. */
function documentedCards(file: string, heading: string): Map<string, string[]> {
  const text = readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
  const section = text.slice(text.indexOf(heading)).split(/\n## /)[0]!;
  const rows = new Map<string, string[]>();
  for (const [, card, outcome] of section.matchAll(/^\| `?([\d ]{13,23})`? \| (.*)\|$/gm)) {
    rows.set(card!.replaceAll(' ', ''), [...outcome!.matchAll(/`([^`]+)`/g)].map((m) => m[1]!));
  }
  return rows;
}

// GET /sandbox/test-cards publishes each card's description as its outcome.
const published = new Map(TEST_CARDS.map((c) => [c.number, c.description]));

describe('the test cards documented and published at GET /sandbox/test-cards', () => {
  it('are the same cards in the README as at the endpoint', () => {
    assert.deepEqual([...documentedCards('README.md', '## Test cards').keys()].sort(), [...published.keys()].sort());
  });

  for (const [file, heading] of [['README.md', '## Test cards'], ['docs/lifecycle.md', '## Test cards (sandbox)']] as const) {
    it(`say at the endpoint what ${file} promises of each card`, () => {
      for (const [card, promised] of documentedCards(file, heading)) {
        const outcome = published.get(card);
        assert.ok(outcome, `${file} lists ${card}, the endpoint does not`);
        for (const term of promised) assert.ok(outcome.includes(term), `${card}: ${file} says \`${term}\`, the endpoint says "${outcome}"`);
      }
    });
  }

  it('say, as the README does, that the default immediate capture of 4000 0000 0000 0259 is refused too', () => {
    const rows = ['README.md', 'docs/lifecycle.md'].map((file) => readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8').split('\n').find((l) => l.startsWith('| 4000 0000 0000 0259'))!);
    for (const said of [...rows, published.get('4000000000000259')!]) assert.match(said, /immediate automatic capture/);
  });
});

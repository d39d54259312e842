import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { idFactory } from '../../src/app/context.js';
import { ManualClock } from '../../src/ports/clock.js';

describe('ids', () => {
  it('sort in the order they were made, also many in one millisecond and when the clock steps back', () => {
    const clock = new ManualClock(Date.UTC(2030, 0, 1));
    const newId = idFactory(clock);
    const ids: string[] = [];
    for (let i = 0; i < 5_000; i++) {
      ids.push(newId(i % 2 ? 'event' : 'payment'));
      if (i === 2_500) clock.advance(-10);
    }
    const events = ids.filter((id) => id.startsWith('evt_'));
    assert.deepEqual([...events].sort(), events);
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) assert.match(id, /^(evt|pay)_[0-9a-f]{32}$/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Metrics } from '../../src/app/metrics.js';
import { Loop } from '../../src/workers/loop.js';

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('a worker loop, as the metrics show it', () => {
  it('counts runs by outcome and says when one last succeeded, so a stuck or failing worker can be alerted on', async () => {
    const metrics = new Metrics();
    const outcomes: Array<() => Promise<number>> = [
      async () => 0,
      async () => {
        throw new Error('a bug');
      },
      async () => {
        throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
      },
    ];
    let runs = 0;
    let stuck: () => void = () => {};
    const loop = new Loop('probe', 5, () => outcomes[runs++]?.() ?? new Promise<number>((resolve) => (stuck = () => resolve(0))), pino({ level: 'silent' }), metrics);
    const before = Date.now();
    loop.start();
    try {
      while (runs <= outcomes.length) await new Promise((r) => setTimeout(r, 5));
      const text = metrics.render([]);
      assert.match(text, /^# TYPE tzero_worker_runs_total counter$/m);
      assert.equal(sample(text, 'tzero_worker_runs_total{worker="probe",outcome="succeeded"}'), 1);
      assert.equal(sample(text, 'tzero_worker_runs_total{worker="probe",outcome="failed"}'), 1);
      assert.equal(sample(text, 'tzero_worker_runs_total{worker="probe",outcome="database_unavailable"}'), 1);
      assert.match(text, /^# TYPE tzero_worker_last_success_timestamp_seconds gauge$/m);
      // The fourth run hangs: the last success stays the first run's, however long it hangs.
      const last = sample(text, 'tzero_worker_last_success_timestamp_seconds{worker="probe"}')!;
      assert.ok(last >= Math.floor(before / 1000) && last <= Date.now() / 1000, String(last));
    } finally {
      stuck();
      await loop.stop();
      metrics.close();
    }
  });
});

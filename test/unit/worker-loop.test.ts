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

describe('a worker loop that keeps failing', () => {
  it('logs the error once, then at most once a minute while it keeps failing the same way, and once when it runs again', async () => {
    const metrics = new Metrics();
    const lines: Array<Record<string, any>> = [];
    const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, any>) });
    let now = 1_000_000;
    // A message can quote what it choked on; the reminder line does not go through the err serializer.
    let failure: string | null = 'a bug at 4242424242424242';
    let runs = 0;
    const loop = new Loop(
      'probe',
      1,
      async () => {
        runs++;
        if (failure !== null) throw new Error(failure);
        return 0;
      },
      log,
      metrics,
      () => now,
    );
    const ranMore = async (n: number) => {
      const target = runs + n;
      while (runs < target) await new Promise((r) => setTimeout(r, 1));
    };
    const logged = () => lines.filter((l) => l.worker === 'probe');
    loop.start();
    try {
      await ranMore(20);
      assert.equal(logged().length, 1, JSON.stringify(logged()));
      assert.equal(logged()[0]!.level, 50);
      assert.equal(logged()[0]!.msg, 'worker run failed');
      assert.match(logged()[0]!.err.stack, /a bug/, 'the first failure carries the error');

      now += 59_999;
      await ranMore(5);
      assert.equal(logged().length, 1, 'nothing more within the minute');
      now += 1;
      await ranMore(5);
      assert.equal(logged().length, 2, JSON.stringify(logged()));
      assert.equal(logged()[1]!.msg, 'worker run still failing');
      assert.equal(logged()[1]!.error, 'a bug at [digits redacted]');
      assert.ok(logged()[1]!.failed_runs > 20);
      await ranMore(5);
      assert.equal(logged().length, 2);

      failure = 'another bug';
      await ranMore(5);
      assert.equal(logged().length, 3, 'a new error is told at once');
      assert.match(logged()[2]!.err.message, /another bug/);

      now += 5_000;
      failure = null;
      await ranMore(5);
      assert.equal(logged().length, 4, JSON.stringify(logged()));
      assert.equal(logged()[3]!.level, 30);
      assert.equal(logged()[3]!.msg, 'worker runs again after failing');
      assert.equal(logged()[3]!.failing_ms, 65_000);
    } finally {
      await loop.stop();
      metrics.close();
    }
  });
});

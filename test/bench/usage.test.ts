import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { cpuSeconds, watchUsage } from '../../bench/lib/processes.js';

/** A process that uses `ms` of CPU, then waits to be ended (so its CPU can still be read). */
async function busyFor(ms: number): Promise<{ pid: number; end(): Promise<void> }> {
  const script = `while (process.cpuUsage().user < ${ms * 1000}); process.stdout.write('done\\n'); setInterval(() => {}, 1000);`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout!, 'data');
  return {
    pid: child.pid!,
    async end() {
      child.kill();
      await once(child, 'exit');
    },
  };
}

/**
 * The benchmark counts a PostgreSQL backend that connects during a window (a pool growing
 * under a new kind of load) as the database's CPU, not as other work on the machine.
 */
describe('benchmark CPU accounting', () => {
  it('counts a companion that joined during the window as the database, not as others', async () => {
    const stopWithout = watchUsage(process.pid);
    const stopWith = watchUsage(process.pid);
    const newcomer = await busyFor(300);
    try {
      const burnt = cpuSeconds(newcomer.pid);
      assert.ok(burnt >= 0.3, `the newcomer used ${burnt} s of CPU`);
      const without = stopWithout();
      const joined = stopWith([newcomer.pid]);
      assert.equal(without.companionsPercent, 0);
      const seconds = burnt / (joined.companionsPercent / 100);
      assert.ok(joined.companionsPercent > 0, 'the newcomer counts as the database');
      assert.ok(seconds > 0.3 && seconds < 60, `window of ${seconds} s`);
      assert.ok(joined.othersPercent <= without.othersPercent - joined.companionsPercent + 5, `others ${joined.othersPercent} % against ${without.othersPercent} % without`);
    } finally {
      await newcomer.end();
    }
  });
});

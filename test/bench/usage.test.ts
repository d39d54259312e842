import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, rmSync } from 'node:fs';
import { describe, it } from 'node:test';
import pg from 'pg';
import { postmasterPid } from '../../bench/lib/postgres.js';
import { cpuSeconds, startGateway, treeCpuSeconds, watchUsage } from '../../bench/lib/processes.js';
import { DIALECTS } from '../support/gateway.js';
import { ADMIN_URL, freshPostgresDatabase } from '../support/postgres.js';

/** Runs a child process that uses `ms` of CPU and exits; resolves once it has been reaped. */
async function childBurning(ms: number): Promise<void> {
  const child = spawn(process.execPath, ['-e', `while (process.cpuUsage().user < ${ms * 1000});`], { stdio: 'ignore' });
  const [code] = (await once(child, 'exit')) as [number | null];
  assert.equal(code, 0);
}

/**
 * The benchmark reads the database's CPU as PostgreSQL's whole process tree, so backends
 * that connect and leave inside a window (a pool growing under a new kind of load) count as
 * the database's work, not as other work on the machine.
 */
describe('benchmark CPU accounting', () => {
  it('counts the CPU of children that have already ended', async () => {
    const tree0 = treeCpuSeconds(process.pid);
    const own0 = cpuSeconds(process.pid);
    await childBurning(300);
    const children = treeCpuSeconds(process.pid) - tree0 - (cpuSeconds(process.pid) - own0);
    assert.ok(children >= 0.28, `the ended child's ${children} s`);
  });

  it('takes the database CPU from a reading, apart from other work', async () => {
    const ended = () => treeCpuSeconds(process.pid) - cpuSeconds(process.pid);
    const stopWithout = watchUsage(process.pid);
    const stopWith = watchUsage(process.pid, ended);
    await childBurning(300);
    const without = stopWithout();
    const withDb = stopWith();
    assert.equal(without.companionsPercent, 0);
    assert.ok(withDb.companionsPercent > 0, 'the child counts as the database');
    assert.ok(withDb.othersPercent < without.othersPercent, `others ${withDb.othersPercent} % against ${without.othersPercent} % without`);
  });

  it("counts a PostgreSQL connection that came and went in the postmaster's tree", async () => {
    const postmaster = await postmasterPid();
    assert.ok(postmaster !== null, 'PostgreSQL runs on this machine');
    const before = treeCpuSeconds(postmaster);
    const client = new pg.Client({ connectionString: ADMIN_URL });
    await client.connect();
    const { rows } = await client.query<{ pid: number }>('select pg_backend_pid() as pid');
    await client.query('select count(*) from generate_series(1, 3000000)');
    const backend = cpuSeconds(rows[0]!.pid);
    await client.end();
    for (let i = 0; i < 100 && existsSync(`/proc/${rows[0]!.pid}`); i++) await new Promise((ok) => setTimeout(ok, 50));
    assert.ok(!existsSync(`/proc/${rows[0]!.pid}`), 'the backend has exited');
    // Its time now lives only in the postmaster's count of its ended children.
    const after = treeCpuSeconds(postmaster);
    assert.ok(backend >= 0.05, `the query used ${backend} s`);
    assert.ok(after - before >= backend - 0.02, `the tree grew ${after - before} s, the backend used ${backend} s`);
  });
});

/** The benchmark's gateway runs on both databases with the sandbox key it reads back (the PostgreSQL rows once lost it). */
describe('benchmark gateway processes', () => {
  for (const dialect of DIALECTS) {
    it(`starts on ${dialect} and authenticates with the sandbox key`, async () => {
      const db = dialect === 'postgres' ? await freshPostgresDatabase() : null;
      const gateway = await startGateway({ databaseUrl: db?.url });
      try {
        const res = await fetch(`${gateway.url}/payments?limit=1`, { headers: { 'x-secret-key': gateway.secretKey } });
        assert.equal(res.status, 200, await res.text());
      } finally {
        await gateway.stop();
        await db?.drop();
        rmSync(gateway.dataDir, { recursive: true, force: true });
      }
    });
  }
});

import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { countFsyncs, postgresPids } from './fsync.js';
import { type Measurement, Samples } from './load.js';
import { postgresCpu } from './postgres.js';
import { removeDir, tempDir, type Usage, watchUsage } from './processes.js';

export interface CommitMeasurement extends Measurement {
  fsyncs: number | null;
  usage: Usage;
}

/** About the size of a payment row with its details JSON, so each commit writes a realistic page. */
const PAYLOAD = 'x'.repeat(1200);

/**
 * Baseline B on SQLite: one row per transaction, WAL, synchronous=FULL (the gateway's own
 * settings), back to back on one connection: the disk's durable-commit limit.
 */
export async function sqliteCommits(seconds: number): Promise<CommitMeasurement> {
  const dir = tempDir('tzero-bench-commits-');
  const db = new SQLite(join(dir, 'commits.sqlite'));
  try {
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec('create table commits (id integer primary key, payload text not null)');
    const insert = db.prepare('insert into commits (payload) values (?)');
    const latencies = new Samples();
    const fsyncs = await countFsyncs([process.pid]);
    const watch = watchUsage(process.pid);
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    let n = 0;
    for (let t = t0; t < end; n++) {
      insert.run(PAYLOAD);
      const now = performance.now();
      latencies.add(now - t);
      t = now;
    }
    const elapsed = (performance.now() - t0) / 1000;
    const usage = watch();
    const counted = await fsyncs.stop();
    const [p50, p99, p999] = latencies.percentiles(50, 99, 99.9);
    return { rate: n / elapsed, p50: p50!, p99: p99!, p999: p999!, ok: n, errors: 0, seconds: elapsed, statuses: {}, fsyncs: counted, usage };
  } finally {
    db.close();
    removeDir(dir);
  }
}

/**
 * Baseline B on PostgreSQL: single-row INSERTs in autocommit (one transaction each) with
 * synchronous_commit=on, from `connections` clients at once. With one client this is the
 * per-commit flush limit; with several, PostgreSQL already shares WAL flushes.
 */
export async function postgresCommits(url: string, adminUrl: string, seconds: number, connections: number): Promise<CommitMeasurement> {
  const database = new URL(url).pathname.slice(1);
  const clients = await Promise.all(
    Array.from({ length: connections }, async () => {
      const c = new pg.Client({ connectionString: url });
      await c.connect();
      return c;
    }),
  );
  try {
    const setting = await clients[0]!.query<{ synchronous_commit: string }>('show synchronous_commit');
    if (setting.rows[0]?.synchronous_commit !== 'on') throw new Error(`synchronous_commit is ${setting.rows[0]?.synchronous_commit}, not on`);
    await clients[0]!.query('create table if not exists bench_commits (id bigserial primary key, payload text not null)');
    const latencies = new Samples();
    const backends = await postgresPids(adminUrl, database);
    const fsyncs = await countFsyncs(backends);
    const watch = watchUsage(process.pid, await postgresCpu(backends));
    const t0 = performance.now();
    const end = t0 + seconds * 1000;
    let n = 0;
    await Promise.all(
      clients.map(async (c) => {
        while (performance.now() < end) {
          const t = performance.now();
          await c.query({ name: 'bench_commit', text: 'insert into bench_commits (payload) values ($1)', values: [PAYLOAD] });
          latencies.add(performance.now() - t);
          n++;
        }
      }),
    );
    const elapsed = (performance.now() - t0) / 1000;
    const usage = watch();
    const counted = await fsyncs.stop();
    const [p50, p99, p999] = latencies.percentiles(50, 99, 99.9);
    return { rate: n / elapsed, p50: p50!, p99: p99!, p999: p999!, ok: n, errors: 0, seconds: elapsed, statuses: {}, fsyncs: counted, usage };
  } finally {
    await Promise.all(clients.map((c) => c.end()));
  }
}

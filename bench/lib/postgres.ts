import { readdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import pg from 'pg';
import { ADMIN_URL, freshPostgresDatabase } from '../../test/support/postgres.js';
import { parentPid, treeCpuSeconds } from './processes.js';

export { ADMIN_URL, freshPostgresDatabase };

async function reachable(): Promise<string | null> {
  const c = new pg.Client({ connectionString: ADMIN_URL, connectionTimeoutMillis: 3000 });
  try {
    await c.connect();
    const r = await c.query<{ server_version: string }>('show server_version');
    return r.rows[0]?.server_version ?? 'unknown';
  } catch {
    return null;
  } finally {
    await c.end().catch(() => {});
  }
}

/**
 * The PostgreSQL the tests use (127.0.0.1:5432, trust auth). Started the way
 * scripts/test.sh starts it when it is installed but down; the caller skips the
 * PostgreSQL rows, with the reason, when it cannot be had.
 */
export async function ensurePostgres(): Promise<{ version: string } | { error: string }> {
  let version = await reachable();
  if (version) return { version };
  let clusters: string[] = [];
  try {
    clusters = readdirSync('/etc/postgresql');
  } catch {
    return { error: `no PostgreSQL at ${new URL(ADMIN_URL).host} and none installed (/etc/postgresql missing)` };
  }
  for (const v of clusters) spawnSync('pg_ctlcluster', ['--skip-systemctl-redirect', v, 'main', 'start'], { stdio: 'ignore' });
  for (let i = 0; i < 30 && !version; i++) {
    await new Promise((ok) => setTimeout(ok, 1000));
    version = await reachable();
  }
  return version ? { version } : { error: `PostgreSQL at ${new URL(ADMIN_URL).host} did not come up` };
}

/**
 * The PostgreSQL server's postmaster, the parent of every backend: found as the parent of
 * a connection of ours, so null when the server is not a process of this machine.
 */
export async function postmasterPid(): Promise<number | null> {
  const c = new pg.Client({ connectionString: ADMIN_URL });
  try {
    await c.connect();
    const r = await c.query<{ pid: number }>('select pg_backend_pid() as pid');
    return parentPid(r.rows[0]!.pid);
  } catch {
    return null;
  } finally {
    await c.end().catch(() => {});
  }
}

let postmaster: Promise<number | null> | undefined;

/**
 * PostgreSQL's CPU for watchUsage: the postmaster's whole process tree (backends that
 * connect while a pool grows or come and go, the WAL writer, the checkpointer,
 * autovacuum), or `pids` when the server is not a process of this machine.
 */
export async function postgresCpu(pids: number[]): Promise<number[] | (() => number)> {
  const root = await (postmaster ??= postmasterPid());
  return root === null ? pids : () => treeCpuSeconds(root);
}

import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import pg from 'pg';

/**
 * Counts fsync + fdatasync system calls made by given processes during a window.
 *
 * Preferred: `perf stat` on the kernel's syscall tracepoints, which counts in the kernel
 * and does not slow the process down. Fallback: `strace -c -f`, which stops the process
 * on every system call (so throughput measured under it is lower: the table marks such
 * figures); strace is installed with apt-get when missing and we are root.
 */
export type FsyncMethod = 'perf' | 'strace' | 'none';

let method: FsyncMethod | undefined;
let why = '';

function works(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore', timeout: 10_000 }).status === 0;
}

export function fsyncMethod(): { method: FsyncMethod; why: string } {
  if (method) return { method, why };
  if (works('perf', ['stat', '-x,', '-e', 'syscalls:sys_enter_fdatasync', '--', 'true'])) {
    method = 'perf';
    why = 'perf stat on syscalls:sys_enter_fsync/fdatasync tracepoints';
    return { method, why };
  }
  if (!works('strace', ['-V']) && process.getuid?.() === 0) {
    process.stdout.write('  (installing strace with apt-get to count fsync calls)\n');
    spawnSync('apt-get', ['update', '-qq'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    spawnSync('apt-get', ['install', '-y', '-qq', 'strace'], { stdio: 'ignore', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  }
  if (works('strace', ['-V'])) {
    method = 'strace';
    why = 'strace -c -f -e trace=fsync,fdatasync (slows the traced process)';
  } else {
    method = 'none';
    why = 'neither perf tracepoints nor strace are usable here';
  }
  return { method, why };
}

export interface FsyncCounter {
  /** Ends the window; resolves to the number of fsync-family calls, or null if not countable. */
  stop(): Promise<number | null>;
}

function collect(child: ChildProcess): Promise<string> {
  let text = '';
  child.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  child.stdout?.on('data', (d: Buffer) => (text += d.toString()));
  return new Promise((ok) => child.once('exit', () => ok(text)));
}

function parsePerf(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) {
    const [count, , event] = line.split(',');
    if (event?.startsWith('syscalls:sys_enter_f') && /^\d+$/.test(count ?? '')) n += Number(count);
  }
  return n;
}

function parseStrace(text: string): number {
  let n = 0;
  for (const line of text.split('\n')) {
    const cols = line.trim().split(/\s+/);
    const name = cols[cols.length - 1];
    if (name === 'fsync' || name === 'fdatasync') {
      // % time, seconds, usecs/call, calls, [errors], syscall
      n += Number(cols[3]);
    }
  }
  return n;
}

export async function countFsyncs(pids: number[]): Promise<FsyncCounter> {
  const { method: m } = fsyncMethod();
  if (m === 'none' || pids.length === 0) return { stop: async () => null };
  const child =
    m === 'perf'
      ? spawn('perf', ['stat', '-x,', '-e', 'syscalls:sys_enter_fsync,syscalls:sys_enter_fdatasync', '-p', pids.join(',')], { stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn('strace', ['-c', '-f', '-e', 'trace=fsync,fdatasync', ...pids.flatMap((p) => ['-p', String(p)])], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = collect(child);
  // Both tools need a moment to attach before the window starts.
  await new Promise((ok) => setTimeout(ok, 300));
  return {
    async stop() {
      child.kill('SIGINT');
      const text = await output;
      return m === 'perf' ? parsePerf(text) : parseStrace(text);
    },
  };
}

/** PostgreSQL server processes that commit for `database`, plus the WAL writer. */
export async function postgresPids(adminUrl: string, database: string): Promise<number[]> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const r = await client.query<{ pid: number }>("select pid from pg_stat_activity where datname = $1 or backend_type = 'walwriter'", [database]);
    return r.rows.map((row) => row.pid);
  } finally {
    await client.end();
  }
}

/** Per-event counts of syscall tracepoints (perf only; null without it), e.g. ['pwrite64', 'fsync']. */
export async function countSyscalls(pids: number[], names: string[]): Promise<{ stop(): Promise<Record<string, number> | null> }> {
  if (fsyncMethod().method !== 'perf') return { stop: async () => null };
  const child = spawn('perf', ['stat', '-x,', '-e', names.map((n) => `syscalls:sys_enter_${n}`).join(','), '-p', pids.join(',')], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output = collect(child);
  await new Promise((ok) => setTimeout(ok, 300));
  return {
    async stop() {
      child.kill('SIGINT');
      const counts: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]));
      for (const line of (await output).split('\n')) {
        const [count, , event] = line.split(',');
        const name = event?.replace('syscalls:sys_enter_', '');
        if (name && name in counts && /^\d+$/.test(count ?? '')) counts[name] = Number(count);
      }
      return counts;
    },
  };
}

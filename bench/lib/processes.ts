import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sandboxCredentialsFile } from '../../src/server.js';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const CLOCK_TICKS = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.once('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => ok(port));
    });
  });
}

/** /proc/<pid>/stat's fields after the parenthesised command name (state is [0], ppid [1]). */
function statFields(pid: number | string): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}

export function parentPid(pid: number): number {
  return Number(statFields(pid)[1]);
}

/** CPU seconds (user + system) the process has used so far. */
export function cpuSeconds(pid: number): number {
  const fields = statFields(pid);
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/**
 * CPU seconds a process and its children have used so far: its own, its live children's,
 * and those of children that have ended (the kernel adds them to the parent's cutime and
 * cstime when it reaps them). For PostgreSQL's postmaster that is every backend, the WAL
 * writer, the checkpointer and autovacuum, including connections that came and went
 * inside a measurement window.
 */
export function treeCpuSeconds(root: number): number {
  const own = statFields(root);
  let ticks = Number(own[11]) + Number(own[12]) + Number(own[13]) + Number(own[14]);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const fields = statFields(entry);
      if (Number(fields[1]) === root) ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // A process that ended while the list was read.
    }
  }
  return ticks / CLOCK_TICKS;
}

export function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * CPU seconds the machine's processes have used, and seconds the hypervisor ran someone
 * else while this virtual machine wanted a CPU (steal), from /proc/stat.
 */
export function machineCpuSeconds(): { used: number; stolen: number } {
  const [, ...fields] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  // user nice system idle iowait irq softirq steal
  const n = fields.map(Number);
  return { used: (n[0]! + n[1]! + n[2]! + n[5]! + n[6]!) / CLOCK_TICKS, stolen: n[7]! / CLOCK_TICKS };
}

export interface Usage {
  /** Share of one core, in percent, over the window. */
  cpuPercent: number;
  /**
   * CPU used by everything but the server and this load generator, in percent of one
   * core: other work on the machine that the figures had to share it with.
   */
  othersPercent: number;
  /**
   * Time the hypervisor gave this machine's CPUs to other guests while they had work, in
   * percent of one core: on a shared host the figures drop with it though nothing here changed.
   */
  stealPercent: number;
  /** CPU of the `companions` (PostgreSQL backends), in percent of one core. */
  companionsPercent: number;
  /** CPU of this process (the load generator), in percent of one core. */
  generatorPercent: number;
  /** Highest resident set size sampled during the window. */
  rssMaxBytes: number;
  rssEndBytes: number;
}

function cpuOf(pids: number[]): number {
  let total = 0;
  for (const p of pids) {
    try {
      total += cpuSeconds(p);
    } catch {
      // A database backend that went away; its CPU is simply not counted.
    }
  }
  return total;
}

/**
 * Samples a process's CPU and RSS over a window: `const stop = watchUsage(pid); ...; const u = stop();`.
 * `companions` (the database serving the run: PostgreSQL backends by pid, or a reading of
 * the whole server's CPU such as treeCpuSeconds of its postmaster) are part of the system
 * under test, so their CPU is not counted as other work.
 */
export function watchUsage(pid: number, companions: number[] | (() => number) = []): () => Usage {
  const t0 = performance.now();
  const cpu0 = cpuSeconds(pid);
  const dbCpu = typeof companions === 'function' ? companions : () => cpuOf(companions.filter((p) => p !== pid && p !== process.pid));
  const db0 = dbCpu();
  const gen0 = pid === process.pid ? 0 : cpuSeconds(process.pid);
  const machine0 = machineCpuSeconds();
  let rssMax = rssBytes(pid);
  const timer = setInterval(() => {
    try {
      rssMax = Math.max(rssMax, rssBytes(pid));
    } catch {
      // The process ended; the window's caller reports that.
    }
  }, 200);
  return () => {
    clearInterval(timer);
    const seconds = (performance.now() - t0) / 1000;
    if (!existsSync(`/proc/${pid}`)) throw new Error(`process ${pid} ended during the measurement`);
    const rssEnd = rssBytes(pid);
    const server = cpuSeconds(pid) - cpu0;
    const machine = machineCpuSeconds();
    const database = dbCpu() - db0;
    const generator = pid === process.pid ? 0 : cpuSeconds(process.pid) - gen0;
    const others = machine.used - machine0.used - server - generator - database;
    return {
      cpuPercent: (server / seconds) * 100,
      othersPercent: Math.max(0, (others / seconds) * 100),
      stealPercent: ((machine.stolen - machine0.stolen) / seconds) * 100,
      companionsPercent: (database / seconds) * 100,
      generatorPercent: ((pid === process.pid ? server : generator) / seconds) * 100,
      rssMaxBytes: Math.max(rssMax, rssEnd), rssEndBytes: rssEnd };
  };
}

/**
 * Each thread's CPU time and time spent runnable but waiting for a CPU, in seconds
 * (`/proc/<pid>/task/<tid>/schedstat`), keyed by thread id.
 */
export function threadTimes(pid: number): Map<string, { cpu: number; wait: number }> {
  const times = new Map<string, { cpu: number; wait: number }>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const [cpu, wait] = readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').split(' ').map(Number);
      times.set(tid, { cpu: cpu! / 1e9, wait: wait! / 1e9 });
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return times;
}

export interface Child {
  pid: number;
  url: string;
  port: number;
  /** Last lines the process wrote, for error messages. */
  output(): string;
  /** How the process ended, or null while it runs. */
  ended(): string | null;
  stop(): Promise<void>;
}

function keepTail(child: ChildProcess): { text: () => string; onLine: (fn: (line: string) => void) => void } {
  let tail = '';
  const listeners: Array<(line: string) => void> = [];
  const take = (chunk: Buffer) => {
    const s = chunk.toString();
    tail = (tail + s).slice(-8000);
    for (const line of s.split('\n')) for (const fn of listeners) fn(line);
  };
  child.stdout?.on('data', take);
  child.stderr?.on('data', take);
  return { text: () => tail, onLine: (fn) => listeners.push(fn) };
}

/**
 * Starts a Node program as its own process (its own event loop and core) and waits for
 * `readyPattern` on its output. The load generator never shares a loop with the server.
 */
export async function startChild(opts: { args: string[]; env: Record<string, string | undefined>; port: number; readyPattern: RegExp; timeoutMs?: number }): Promise<Child> {
  const child = spawn(process.execPath, opts.args, { cwd: REPO, env: opts.env as NodeJS.ProcessEnv, stdio: ['ignore', 'pipe', 'pipe'] });
  const out = keepTail(child);
  let ended: string | null = null;
  const exited = new Promise<number | null>((ok) =>
    child.once('exit', (code, signal) => {
      ended = signal ? `killed by ${signal}` : `exited with code ${code}`;
      ok(code);
    }),
  );
  await new Promise<void>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${opts.args.join(' ')} did not start within ${opts.timeoutMs ?? 60_000} ms:\n${out.text()}`)), opts.timeoutMs ?? 60_000);
    out.onLine((line) => {
      if (opts.readyPattern.test(line)) {
        clearTimeout(timer);
        ok();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      fail(new Error(`${opts.args.join(' ')} exited with ${code} before it was ready:\n${out.text()}`));
    });
  });
  return {
    pid: child.pid!,
    port: opts.port,
    url: `http://127.0.0.1:${opts.port}`,
    output: out.text,
    ended: () => ended,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

export interface GatewayChild extends Child {
  dataDir: string;
  secretKey: string;
}

export interface GatewayOptions {
  /** A checkout of the gateway to run (bench/ab.ts); this one by default. */
  checkout?: string;
  dataDir?: string;
  databaseUrl?: string | undefined;
  env?: Record<string, string>;
  cpuProfDir?: string;
}

/** The real server: `node --import tsx src/cli/main.ts serve` on a free port. */
export async function startGateway(opts: GatewayOptions = {}): Promise<GatewayChild> {
  const dataDir = opts.dataDir ?? tempDir('tzero-bench-');
  const port = await freePort();
  const env: Record<string, string | undefined> = {
    ...process.env,
    GATEWAY_MODE: 'sandbox',
    DATA_DIR: dataDir,
    HOST: '127.0.0.1',
    PORT: String(port),
    PUBLIC_URL: `http://127.0.0.1:${port}`,
    LOG_LEVEL: 'warn',
    DATABASE_URL: opts.databaseUrl,
    ...opts.env,
  };
  const main = opts.checkout ? join(resolve(opts.checkout), 'src/cli/main.ts') : 'src/cli/main.ts';
  const args = [...(opts.cpuProfDir ? ['--cpu-prof', `--cpu-prof-dir=${opts.cpuProfDir}`] : []), '--import', 'tsx', main, 'serve'];
  const child = await startChild({ args, env, port, readyPattern: /listening on/ });
  // A checkout older than per-database credential files (bench:ab) wrote this one name for both databases.
  const file = [sandboxCredentialsFile({ dataDir, databaseUrl: opts.databaseUrl }), join(dataDir, 'sandbox-credentials.json')].find((f) => existsSync(f))!;
  const credentials = JSON.parse(readFileSync(file, 'utf8')) as { secret_key: string };
  return { ...child, dataDir, secretKey: credentials.secret_key };
}

export async function startEcho(): Promise<Child> {
  const port = await freePort();
  return startChild({ args: ['--import', 'tsx', 'bench/echo-server.ts'], env: { ...process.env, PORT: String(port) }, port, readyPattern: /echo listening/ });
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

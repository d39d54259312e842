import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { bodyFactory } from './bodies.js';
import { jsonHeaders } from './flows.js';
import { postEach, runLoad } from './load.js';
import { REPO, removeDir, startGateway, tempDir } from './processes.js';
import { format, table } from './report.js';
import { countSyscalls, fsyncMethod } from './fsync.js';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: CallFrame }>;
  /** Microseconds on the system's monotonic clock (what process.hrtime() reads too). */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

function location(url: string): string {
  if (!url) return '(native)';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('/node_modules/');
  if (nm >= 0) return path.slice(nm + '/node_modules/'.length);
  return path.startsWith(REPO + '/') ? path.slice(REPO.length + 1) : path;
}

/** Where a frame belongs: a package, a layer of src/, Node itself, or V8's own buckets. */
function category(frame: CallFrame): string {
  if (frame.functionName.startsWith('(')) return frame.functionName;
  const loc = location(frame.url);
  if (loc === '(native)') return '(native: V8 builtins and addons)';
  if (loc.startsWith('node:')) return 'node: core';
  const pkg = /^(@[^/]+\/[^/]+|[^/]+)\//.exec(loc);
  if (loc.startsWith('src/')) return loc.split('/').slice(0, loc.startsWith('src/adapters/') ? 3 : 2).join('/');
  return pkg ? pkg[1]! : loc;
}

export interface SelfTime {
  name: string;
  where: string;
  ms: number;
  share: number;
}

/**
 * Self time per function (and per category) from a V8 .cpuprofile, counting only the
 * samples taken inside `window` (monotonic µs) when one is given.
 */
export function analyse(profile: CpuProfile, window?: { from: number; to: number }): { total: number; functions: SelfTime[]; categories: SelfTime[] } {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const fn = new Map<string, SelfTime>();
  const cat = new Map<string, SelfTime>();
  let total = 0;
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (window && (at < window.from || at > window.to)) return;
    const ms = (profile.timeDeltas[i] ?? 0) / 1000;
    const frame = byId.get(id)!;
    total += ms;
    const where = frame.url ? `${location(frame.url)}:${frame.lineNumber + 1}` : '(native)';
    const key = `${frame.functionName}\u0000${where}`;
    const f = fn.get(key) ?? { name: frame.functionName || '(anonymous)', where, ms: 0, share: 0 };
    f.ms += ms;
    fn.set(key, f);
    const c = category(frame);
    const g = cat.get(c) ?? { name: c, where: '', ms: 0, share: 0 };
    g.ms += ms;
    cat.set(c, g);
  });
  const rank = (m: Map<string, SelfTime>) => [...m.values()].map((s) => ({ ...s, share: s.ms / total })).sort((a, b) => b.ms - a.ms);
  return { total, functions: rank(fn), categories: rank(cat) };
}

export function renderProfile(a: ReturnType<typeof analyse>, top = 25): string {
  const fns = table(
    ['#', 'self ms', 'self %', 'function', 'where'],
    a.functions.slice(0, top).map((f, i) => [String(i + 1), format.fixed(f.ms, 0), format.fixed(f.share * 100, 1), f.name, f.where]),
    new Set([0, 1, 2]),
  );
  const cats = table(
    ['category', 'self ms', 'self %'],
    a.categories.slice(0, 15).map((c) => [c.name, format.fixed(c.ms, 0), format.fixed(c.share * 100, 1)]),
    new Set([1, 2]),
  );
  return `Top ${top} self-time functions (${format.fixed(a.total, 0)} ms sampled):\n\n${fns}\n\nBy package / source layer:\n\n${cats}`;
}

/**
 * `npm run bench -- --profile`: the SQLite authorise load against a server started with
 * --cpu-prof; prints the top self-time functions. The .cpuprofile is kept (open it in
 * Chrome DevTools → Performance, or speedscope) in BENCH_PROFILE_DIR or a temp dir.
 */
export async function profileAuthorise(opts: { seconds: number; connections: number; warmupSeconds: number; runId: string }): Promise<void> {
  const profDir = process.env.BENCH_PROFILE_DIR || tempDir('tzero-profile-');
  mkdirSync(profDir, { recursive: true });
  const dataDir = tempDir('tzero-bench-');
  const started = Date.now();
  const gw = await startGateway({ dataDir, cpuProfDir: profDir });
  let result;
  let split = '';
  const window = { from: 0, to: 0 };
  try {
    const requests = (tag: string) => postEach('/payment/authorise', jsonHeaders(gw.secretKey), bodyFactory(`${opts.runId}-${tag}`));
    await runLoad({ url: gw.url, connections: opts.connections, seconds: opts.warmupSeconds, requests: requests('warm'), expect: (s) => s === 201 });
    const perf = fsyncMethod().method === 'perf' ? spawn('perf', ['record', '-F', '499', '-o', join(profDir, 'perf.data'), '-p', String(gw.pid)], { stdio: 'ignore' }) : null;
    const perfDone = perf ? new Promise((ok) => perf.once('exit', ok)) : Promise.resolve();
    const syscalls = await countSyscalls([gw.pid], SYSCALLS);
    const before = threadTimes(gw.pid);
    window.from = Number(process.hrtime.bigint() / 1000n);
    result = await runLoad({ url: gw.url, connections: opts.connections, seconds: opts.seconds, requests: requests('prof'), expect: (s) => s === 201 });
    window.to = Number(process.hrtime.bigint() / 1000n);
    const after = threadTimes(gw.pid);
    perf?.kill('SIGINT');
    await perfDone;
    split = timeSplit(before, after, (window.to - window.from) / 1000, result.ok, await syscalls.stop());
  } finally {
    await gw.stop();
    removeDir(dataDir);
  }
  // Node names each thread's profile CPU.<date>.<time>.<pid>.<thread id>.<seq>: the main
  // thread is thread 0. Of the others (the SQLite writer, tsx's module-hook threads) the
  // one that did the most is shown too.
  const profiles = readdirSync(profDir)
    .filter((f) => f.endsWith('.cpuprofile') && f.includes(`.${gw.pid}.`))
    .map((f) => join(profDir, f))
    .filter((f) => statSync(f).mtimeMs >= started)
    .map((file) => {
      const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
      // Only the measured run, not boot and warm-up; the whole life if the clocks disagree.
      const inWindow = analyse(profile, window);
      const analysis = inWindow.total > 0 ? inWindow : analyse(profile);
      const idle = analysis.categories.find((c) => c.name === '(idle)')?.ms ?? 0;
      return { file, thread: Number(/\.(\d+)\.\d+\.cpuprofile$/.exec(file)?.[1]), analysis, windowed: inWindow.total > 0, busy: analysis.total - idle };
    })
    .sort((a, b) => b.busy - a.busy);
  const main = profiles.find((p) => p.thread === 0);
  if (!main) throw new Error(`the server wrote no main-thread .cpuprofile into ${profDir}`);
  const other = profiles.find((p) => p !== main);
  const scope = (p: typeof main) => (p.analysis.total > 0 && p.windowed ? 'samples of the measured run only' : "the server's whole life: the run's window could not be matched");
  process.stdout.write(
    `authorise on SQLite under --cpu-prof, closed loop ${opts.connections} connections, ${opts.seconds} s (after ${opts.warmupSeconds} s warm-up): ` +
      `${format.whole(result.rate)} req/s, p99 ${format.ms(result.p99)} ms, ${result.errors} errors\n` +
      `profile: ${main.file} (main thread; ${scope(main)})\n\n${renderProfile(main.analysis)}\n`,
  );
  if (other) {
    process.stdout.write(
      `\nbusiest other thread (the SQLite writer under this load): ${other.file} (${scope(other)}; wall-clock samples, so a COMMIT's fsync counts as the function that waits for it)\n\n` +
        `${renderProfile(other.analysis, 15)}\n`,
    );
  }
  const idle = main.analysis.categories.find((c) => c.name === '(idle)');
  process.stdout.write(`\n${split}${idle ? `; V8 counted ${format.fixed(idle.share * 100, 1)} % of its samples as idle (waiting in epoll)` : ''}\n`);
  const native = nativeView(join(profDir, 'perf.data'));
  if (native) process.stdout.write(`\n${native}\n`);
}

const SYSCALLS = ['fsync', 'fdatasync', 'pwrite64', 'writev', 'read'];

interface ThreadTimes {
  onCpuNs: number;
  runqueueNs: number;
  writeBytes: number;
}

/** The main thread's time on a CPU and waiting for one (schedstat), and the process's bytes sent to storage. */
function threadTimes(pid: number): ThreadTimes {
  const [on, wait] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
  const io = /write_bytes:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/io`, 'utf8'));
  return { onCpuNs: on!, runqueueNs: wait!, writeBytes: io ? Number(io[1]) : 0 };
}

/**
 * V8's sampler runs on wall-clock time, so a main thread blocked inside a system call
 * (SQLite's pwrite and fsync) is charged to the JS function that made the call. The
 * scheduler's own counters say how much of the run the thread really computed.
 */
function timeSplit(a: ThreadTimes, b: ThreadTimes, ms: number, payments: number, calls: Record<string, number> | null): string {
  const on = (b.onCpuNs - a.onCpuNs) / 1e6 / ms;
  const wait = (b.runqueueNs - a.runqueueNs) / 1e6 / ms;
  const pct = (x: number) => `${format.fixed(x * 100, 1)} %`;
  const per = (n: number) => format.fixed(n / payments, 2);
  const io = calls
    ? `Per payment: ${per(calls.pwrite64 ?? 0)} pwrite64, ${per((calls.fsync ?? 0) + (calls.fdatasync ?? 0))} fsync/fdatasync ` +
      `(${format.fixed(payments / Math.max(1, (calls.fsync ?? 0) + (calls.fdatasync ?? 0)), 1)} payments per fsync), ${per(calls.writev ?? 0)} writev, ${per(calls.read ?? 0)} read; `
    : '';
  return (
    `${io}${format.whole((b.writeBytes - a.writeBytes) / payments)} bytes sent to storage (write_bytes).\n` +
    `Main thread over the run: on a CPU ${pct(on)}, runnable but waiting for a CPU ${pct(wait)}, off CPU ${pct(Math.max(0, 1 - on - wait))} ` +
    `(blocked in system calls such as fsync, or idle)`
  );
}

function perfReport(file: string, sort: string, extra: string[] = []): Array<{ share: string; name: string }> {
  const r = spawnSync('perf', ['report', '-i', file, '--no-children', '--sort', sort, '--stdio', '-g', 'none', ...extra], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return r.stdout
    .split('\n')
    .map((l) => /^\s+([\d.]+%)\s+(.+?)\s*$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ share: m[1]!, name: m[2]!.replace(/\s+/g, ' ') }));
}

/**
 * What V8's profile cannot see: time inside native code (SQLite in better_sqlite3.node,
 * the kernel's write/fsync paths, libc malloc) is charged there to whichever JS function
 * called it. `perf record` on the whole process splits it by library and symbol.
 */
function nativeView(file: string): string | null {
  try {
    statSync(file);
  } catch {
    return null;
  }
  const dsos = perfReport(file, 'dso').slice(0, 8);
  const symbols = perfReport(file, 'dso,sym').slice(0, 20);
  if (!dsos.length) return null;
  return (
    `Native view (perf record -F 499 on the server process, all threads, same window):\n\n` +
    table(['share', 'library'], dsos.map((d) => [d.share, d.name]), new Set([0])) +
    '\n\n' +
    table(['share', 'library / symbol'], symbols.map((d) => [d.share, d.name]), new Set([0]))
  );
}

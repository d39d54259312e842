import autocannon, { type RequestSpec } from 'autocannon';

/** A growable list of millisecond samples with exact percentiles. */
export class Samples {
  private data = new Float64Array(1 << 16);
  private n = 0;

  add(ms: number): void {
    if (this.n === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.n++] = ms;
  }

  get count(): number {
    return this.n;
  }

  percentiles(...ps: number[]): number[] {
    if (this.n === 0) return ps.map(() => NaN);
    const sorted = this.data.slice(0, this.n).sort();
    return ps.map((p) => sorted[Math.min(this.n - 1, Math.max(0, Math.ceil((p / 100) * this.n) - 1))]!);
  }
}

export interface Measurement {
  /** Successful operations per second (requests, or whole flows for flow runs). */
  rate: number;
  p50: number;
  p99: number;
  p999: number;
  ok: number;
  errors: number;
  seconds: number;
  /** HTTP status → count, plus `error`/`timeout` for connection failures. */
  statuses: Record<string, number>;
}

export interface LoadOptions {
  url: string;
  connections: number;
  seconds: number;
  /** Fixed rate (requests/s over all connections); closed-loop when absent. */
  overallRate?: number;
  /** Stop after this many requests instead of after `seconds`. */
  amount?: number;
  requests: RequestSpec[];
  /** Which response statuses count as success; the rest are errors. */
  expect: (status: number) => boolean;
}

/**
 * One autocannon run. Latencies are taken from every response's own timing (sub-ms
 * precision) rather than autocannon's whole-millisecond histogram.
 */
export async function runLoad(opts: LoadOptions): Promise<Measurement> {
  const latencies = new Samples();
  const statuses: Record<string, number> = {};
  let ok = 0;
  let bad = 0;
  const instance = autocannon({
    url: opts.url,
    connections: opts.connections,
    ...(opts.amount ? { amount: opts.amount } : { duration: opts.seconds }),
    timeout: 30,
    requests: opts.requests,
    ...(opts.overallRate ? { overallRate: Math.max(1, Math.round(opts.overallRate)) } : {}),
  });
  instance.on('response', (_client: unknown, status: number, _bytes: number, ms: number) => {
    statuses[status] = (statuses[status] ?? 0) + 1;
    if (opts.expect(status)) {
      ok++;
      latencies.add(ms);
    } else {
      bad++;
    }
  });
  const result = await instance;
  if (result.errors) statuses.error = result.errors;
  if (result.timeouts) statuses.timeout = result.timeouts;
  const [p50, p99, p999] = latencies.percentiles(50, 99, 99.9);
  return { rate: ok / result.duration, p50: p50!, p99: p99!, p999: p999!, ok, errors: bad + result.errors + result.timeouts, seconds: result.duration, statuses };
}

/** Requests that POST a body made fresh for each request. */
export function postEach(path: string, headers: Record<string, string>, body: (n: number) => string): RequestSpec[] {
  let n = 0;
  return [{ method: 'POST', path, headers, setupRequest: (req) => ({ ...req, method: 'POST', path, headers, body: body(n++) }) }];
}

export function getEach(headers: Record<string, string>, path: (n: number) => string): RequestSpec[] {
  let n = 0;
  return [{ method: 'GET', path: path(0), headers, setupRequest: (req) => ({ ...req, method: 'GET', path: path(n++), headers }) }];
}

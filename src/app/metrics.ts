import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { DeliveriesTable } from '../adapters/storage/schema.js';

/** Upper bounds in seconds: a payment's answer sits in the low milliseconds, a callback's in tens to thousands. */
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

class Histogram {
  /** Per bucket, not cumulative: observing touches one slot; rendering adds them up. */
  readonly counts = new Float64Array(DURATION_BUCKETS.length);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    this.sum += seconds;
    this.count++;
    for (let i = 0; i < DURATION_BUCKETS.length; i++) {
      if (seconds <= DURATION_BUCKETS[i]!) {
        this.counts[i]!++;
        return;
      }
    }
  }

  lines(name: string, labels: string): string[] {
    const out: string[] = [];
    let cumulative = 0;
    DURATION_BUCKETS.forEach((le, i) => {
      cumulative += this.counts[i]!;
      out.push(`${name}_bucket{${labels},le="${le}"} ${cumulative}`);
    });
    out.push(`${name}_bucket{${labels},le="+Inf"} ${this.count}`, `${name}_sum{${labels}} ${this.sum}`, `${name}_count{${labels}} ${this.count}`);
    return out;
  }
}

interface RouteSeries {
  duration: Histogram;
  statuses: Map<number, number>;
}

export type DeliveryKind = DeliveriesTable['kind'];
export type DeliveryOutcome = 'succeeded' | 'retrying' | 'failed' | 'cancelled';

/** How a worker's run ended: `database_unavailable` is the outage tzero_database_up shows; `failed`, anything else. */
export type WorkerOutcome = 'succeeded' | 'failed' | 'database_unavailable';

/** How a release of money the acquirer held ended (src/app/releases.ts); `failed` leaves it to an operator. */
export type ReleaseOutcome = 'succeeded' | 'nothing_held' | 'failed';

/** A call to the acquirer connector (src/ports/acquirer.ts). */
export type AcquirerOperation = 'authorise' | 'capture' | 'void' | 'refund';

export interface Gauge {
  name: string;
  help: string;
  value: number;
}

/** A label value as the text format wants it (backslash, quote and newline escaped). */
function label(value: string): string {
  return value.replace(/[\\"\n]/g, (c) => (c === '\n' ? '\\n' : `\\${c}`));
}

function header(name: string, type: 'counter' | 'gauge' | 'histogram', help: string): string[] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
}

/**
 * What this process has done since it started, for an operator's Prometheus (text format
 * 0.0.4, GET /operator/metrics). Kept in memory per process: each gateway process is
 * scraped on its own. Routes are labelled by their template, never by the URL asked for
 * (which could hold a card number, and has no bound).
 */
export class Metrics {
  private readonly routes = new Map<string, Map<string, RouteSeries>>();
  private readonly deliveries = new Map<string, number>();
  private readonly deliveryDurations = new Map<DeliveryKind, Histogram>();
  private readonly releases = new Map<ReleaseOutcome, number>();
  private readonly acquirerRequests = new Map<string, number>();
  private readonly acquirerDurations = new Map<AcquirerOperation, Histogram>();
  private readonly workerRuns = new Map<string, number>();
  /** Unix seconds of each worker's last run that succeeded. */
  private readonly workerSucceededAt = new Map<string, number>();
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 });
  private readonly startedAt = Date.now();

  constructor() {
    this.loopDelay.enable();
    // The series the README's alerts watch exist at 0 from the start: Prometheus's increase()
    // and rate() see nothing in a series whose first sample is already 1, so a release given up
    // once, or one callback given up, would never fire its alert.
    for (const outcome of ['succeeded', 'nothing_held', 'failed'] as const) this.releases.set(outcome, 0);
    for (const kind of ['webhook', 'email'] as const) this.deliveries.set(`kind="${kind}",outcome="failed"`, 0);
    for (const outcome of ['error', 'pending', 'threw']) this.acquirerRequests.set(`operation="authorise",outcome="${outcome}"`, 0);
    for (const operation of ['capture', 'void', 'refund'] as const) {
      for (const outcome of ['failed', 'pending', 'threw']) this.acquirerRequests.set(`operation="${operation}",outcome="${outcome}"`, 0);
    }
  }

  /** A worker about to run: its failure count is shown at 0 until one fails, for the same reason. */
  registerWorker(worker: string): void {
    const key = `worker="${label(worker)}",outcome="failed"`;
    if (!this.workerRuns.has(key)) this.workerRuns.set(key, 0);
  }

  /** Stops the event-loop monitor, whose timer would otherwise sample for as long as the process lives. */
  close(): void {
    this.loopDelay.disable();
  }

  /**
   * One answered request; `route` is undefined when no route matched. `seconds` is undefined
   * for a request refused before it was read (client-errors.ts): no time to tell from it.
   */
  observeRequest(method: string, route: string | undefined, status: number, seconds?: number): void {
    const key = route ?? 'unmatched';
    let byMethod = this.routes.get(key);
    if (!byMethod) this.routes.set(key, (byMethod = new Map()));
    let series = byMethod.get(method);
    if (!series) byMethod.set(method, (series = { duration: new Histogram(), statuses: new Map() }));
    if (seconds !== undefined) series.duration.observe(seconds);
    series.statuses.set(status, (series.statuses.get(status) ?? 0) + 1);
  }

  /** A callback's or e-mail's attempt once its result is recorded, or its cancellation. */
  countDelivery(kind: DeliveryKind, outcome: DeliveryOutcome, seconds?: number): void {
    const key = `kind="${kind}",outcome="${outcome}"`;
    this.deliveries.set(key, (this.deliveries.get(key) ?? 0) + 1);
    if (seconds === undefined) return;
    let histogram = this.deliveryDurations.get(kind);
    if (!histogram) this.deliveryDurations.set(kind, (histogram = new Histogram()));
    histogram.observe(seconds);
  }

  /** A call to the acquirer once it answered (its outcome: approved, declined, failed…) or threw (`threw`). */
  countAcquirerRequest(operation: AcquirerOperation, outcome: string, seconds: number): void {
    const key = `operation="${operation}",outcome="${label(outcome)}"`;
    this.acquirerRequests.set(key, (this.acquirerRequests.get(key) ?? 0) + 1);
    let histogram = this.acquirerDurations.get(operation);
    if (!histogram) this.acquirerDurations.set(operation, (histogram = new Histogram()));
    histogram.observe(seconds);
  }

  /** A release settled for good. */
  countRelease(outcome: ReleaseOutcome): void {
    this.releases.set(outcome, (this.releases.get(outcome) ?? 0) + 1);
  }

  /** A background worker's run, when it ends: one that never ends shows as a last success that grows old. */
  countWorkerRun(worker: string, outcome: WorkerOutcome): void {
    const key = `worker="${label(worker)}",outcome="${outcome}"`;
    this.workerRuns.set(key, (this.workerRuns.get(key) ?? 0) + 1);
    if (outcome === 'succeeded') this.workerSucceededAt.set(worker, Date.now() / 1000);
  }

  /** The text a scrape gets; `gauges` are read at the scrape (the database's, say). */
  render(gauges: readonly Gauge[]): string {
    const lines: string[] = [];
    lines.push(...header('tzero_http_requests_total', 'counter', 'Requests answered, by route template, method and status code.'));
    for (const [route, byMethod] of this.routes) {
      for (const [method, series] of byMethod) {
        for (const [status, n] of series.statuses) lines.push(`tzero_http_requests_total{method="${label(method)}",route="${label(route)}",status="${status}"} ${n}`);
      }
    }
    lines.push(...header('tzero_http_request_duration_seconds', 'histogram', 'Time from a request read to its answer sent, by route template and method.'));
    for (const [route, byMethod] of this.routes) {
      for (const [method, series] of byMethod) if (series.duration.count > 0) lines.push(...series.duration.lines('tzero_http_request_duration_seconds', `method="${label(method)}",route="${label(route)}"`));
    }
    lines.push(...header('tzero_deliveries_total', 'counter', 'Callback and e-mail attempts recorded (succeeded, failed for good, or to be retried) and deliveries cancelled, by kind.'));
    for (const [labels, n] of this.deliveries) lines.push(`tzero_deliveries_total{${labels}} ${n}`);
    lines.push(...header('tzero_delivery_attempt_duration_seconds', 'histogram', 'Time a callback or e-mail attempt took, by kind.'));
    for (const [kind, histogram] of this.deliveryDurations) lines.push(...histogram.lines('tzero_delivery_attempt_duration_seconds', `kind="${kind}"`));
    lines.push(...header('tzero_acquirer_requests_total', 'counter', 'Calls to the acquirer by operation (authorise, capture, void, refund) and outcome: its answer, or threw when none came.'));
    for (const [labels, n] of this.acquirerRequests) lines.push(`tzero_acquirer_requests_total{${labels}} ${n}`);
    lines.push(...header('tzero_acquirer_request_duration_seconds', 'histogram', 'Time a call to the acquirer took, by operation.'));
    for (const [operation, histogram] of this.acquirerDurations) lines.push(...histogram.lines('tzero_acquirer_request_duration_seconds', `operation="${operation}"`));
    lines.push(...header('tzero_releases_total', 'counter', 'Releases of money the acquirer held for no payment, settled: succeeded, nothing_held, or failed (given up: an operator must release it).'));
    for (const [outcome, n] of this.releases) lines.push(`tzero_releases_total{outcome="${outcome}"} ${n}`);
    lines.push(...header('tzero_worker_runs_total', 'counter', 'Background worker runs (dispatcher, capture, expiry, compliance) ended, by outcome.'));
    for (const [labels, n] of this.workerRuns) lines.push(`tzero_worker_runs_total{${labels}} ${n}`);
    lines.push(...header('tzero_worker_last_success_timestamp_seconds', 'gauge', 'When each background worker last finished a run without error (Unix time); a stuck or failing worker stops moving it.'));
    for (const [worker, at] of this.workerSucceededAt) lines.push(`tzero_worker_last_success_timestamp_seconds{worker="${label(worker)}"} ${at}`);

    const memory = process.memoryUsage();
    const own: Gauge[] = [
      { name: 'process_start_time_seconds', help: 'When this process started (Unix time).', value: Math.floor(this.startedAt / 1000) },
      { name: 'process_resident_memory_bytes', help: 'Resident set size.', value: memory.rss },
      { name: 'nodejs_heap_used_bytes', help: 'V8 heap in use.', value: memory.heapUsed },
      // Since the previous scrape: a loop held up by a long task shows here first.
      { name: 'nodejs_eventloop_delay_p99_seconds', help: '99th percentile of event-loop delay since the previous scrape.', value: this.loopDelay.count ? this.loopDelay.percentile(99) / 1e9 : 0 },
      { name: 'nodejs_eventloop_delay_max_seconds', help: 'Longest event-loop delay since the previous scrape.', value: this.loopDelay.count ? this.loopDelay.max / 1e9 : 0 },
    ];
    this.loopDelay.reset();
    for (const g of [...gauges, ...own]) lines.push(...header(g.name, 'gauge', g.help), `${g.name} ${g.value}`);
    return lines.join('\n') + '\n';
  }
}

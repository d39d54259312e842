import type { Logger } from 'pino';
import { isDatabaseUnavailable } from '../adapters/storage/unavailable.js';
import type { Metrics } from '../app/metrics.js';
import { scrubText } from '../logger.js';

/** While runs keep failing the same way, the error is logged again this often at most. */
const REPEATED_FAILURE_LOG_MS = 60_000;

/** Runs failing for a reason other than the database, as the log last told it. */
interface Failing {
  message: string;
  since: number;
  loggedAt: number;
  runs: number;
}

/**
 * A background task that runs, sleeps `intervalMs`, and runs again until stopped. A
 * run that found work is repeated at once, so a backlog drains without waiting.
 */
export class Loop {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;
  /** Runs have failed because the database could not serve since this time (null: they have not). */
  private unavailableSince: number | null = null;
  private failing: Failing | null = null;

  constructor(
    private readonly name: string,
    private readonly intervalMs: number,
    private readonly task: () => Promise<number>,
    private readonly log: Logger,
    private readonly metrics: Metrics,
    /** Real time, not the injected clock: it spaces log lines of runs that real timers schedule (a test passes its own). */
    private readonly now: () => number = Date.now,
  ) {}

  start(): this {
    this.metrics.registerWorker(this.name);
    this.schedule(0);
    return this;
  }

  /** Run now (tests and "something just happened" nudges). */
  async tick(): Promise<number> {
    return this.task();
  }

  private schedule(delay: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.task()
        .then((done) => {
          this.metrics.countWorkerRun(this.name, 'succeeded');
          if (this.unavailableSince !== null) {
            this.log.info({ worker: this.name, unavailable_ms: this.now() - this.unavailableSince }, 'worker runs again: the database is back');
            this.unavailableSince = null;
          }
          if (this.failing !== null) {
            this.log.info({ worker: this.name, failed_runs: this.failing.runs, failing_ms: this.now() - this.failing.since }, 'worker runs again after failing');
            this.failing = null;
          }
          this.schedule(done > 0 ? 0 : this.intervalMs);
        })
        .catch((err: unknown) => {
          const unavailable = isDatabaseUnavailable(err);
          this.metrics.countWorkerRun(this.name, unavailable ? 'database_unavailable' : 'failed');
          // An outage is said once, and its end: not an error with a stack every interval.
          if (!unavailable) this.failed(err);
          else if (this.unavailableSince === null) {
            this.unavailableSince = this.now();
            this.log.warn({ err, worker: this.name }, `worker cannot reach the database; trying again every ${this.intervalMs} ms`);
          }
          this.schedule(this.intervalMs);
        });
    }, delay);
    this.timer.unref();
  }

  /**
   * A run that fails the same way every interval (a bug, a bad row) is told with its stack
   * once, then reminded of once a minute: at a 50 ms poll it would be twenty stacks a second.
   */
  private failed(err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    const now = this.now();
    const runs = (this.failing?.runs ?? 0) + 1;
    // Another error is news, told at once; the streak (since, runs) goes on until a run succeeds.
    if (this.failing === null || this.failing.message !== message) {
      this.failing = { message, since: this.failing?.since ?? now, loggedAt: now, runs };
      this.log.error({ err, worker: this.name }, 'worker run failed');
      return;
    }
    this.failing.runs = runs;
    if (now - this.failing.loggedAt < REPEATED_FAILURE_LOG_MS) return;
    this.failing.loggedAt = now;
    // Not through the err serializer, which scrubs what could quote a card number: scrubbed here.
    this.log.error({ worker: this.name, error: scrubText(message), failed_runs: this.failing.runs, failing_ms: now - this.failing.since }, 'worker run still failing');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => {});
  }
}

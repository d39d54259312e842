import type { Logger } from 'pino';
import { isDatabaseUnavailable } from '../adapters/storage/unavailable.js';
import type { Metrics } from '../app/metrics.js';

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

  constructor(
    private readonly name: string,
    private readonly intervalMs: number,
    private readonly task: () => Promise<number>,
    private readonly log: Logger,
    private readonly metrics: Metrics,
  ) {}

  start(): this {
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
            this.log.info({ worker: this.name, unavailable_ms: Date.now() - this.unavailableSince }, 'worker runs again: the database is back');
            this.unavailableSince = null;
          }
          this.schedule(done > 0 ? 0 : this.intervalMs);
        })
        .catch((err: unknown) => {
          const unavailable = isDatabaseUnavailable(err);
          this.metrics.countWorkerRun(this.name, unavailable ? 'database_unavailable' : 'failed');
          // An outage is said once, and its end: not an error with a stack every interval.
          if (!unavailable) this.log.error({ err, worker: this.name }, 'worker run failed');
          else if (this.unavailableSince === null) {
            this.unavailableSince = Date.now();
            this.log.warn({ err, worker: this.name }, `worker cannot reach the database; trying again every ${this.intervalMs} ms`);
          }
          this.schedule(this.intervalMs);
        });
    }, delay);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => {});
  }
}

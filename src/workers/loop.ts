import type { Logger } from 'pino';

/**
 * A background task that runs, sleeps `intervalMs`, and runs again until stopped. A
 * run that found work is repeated at once, so a backlog drains without waiting.
 */
export class Loop {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopped = false;

  constructor(
    private readonly name: string,
    private readonly intervalMs: number,
    private readonly task: () => Promise<number>,
    private readonly log: Logger,
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
        .then((done) => this.schedule(done > 0 ? 0 : this.intervalMs))
        .catch((err: unknown) => {
          this.log.error({ err, worker: this.name }, 'worker run failed');
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

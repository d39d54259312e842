import type { Database } from '../adapters/storage/database.js';

/**
 * How long after an event was written undispatched a request's end still rings: far longer
 * than a commit takes, so the request that wrote it always rings.
 */
const EXPECT_WINDOW_MS = 5_000;

/**
 * An in-process "new events were committed" bell. Ringing it is a hint, never the only
 * path: the dispatcher also polls, so an event written by another process, a CLI
 * command or a worker that does not ring is still delivered, just a poll later.
 */
export class OutboxSignal {
  private static readonly byDatabase = new WeakMap<Database, OutboxSignal>();

  /** The one bell of a database in this process: events are written with a context, the bell is rung by the HTTP layer. */
  static of(database: Database): OutboxSignal {
    let signal = OutboxSignal.byDatabase.get(database);
    if (!signal) OutboxSignal.byDatabase.set(database, (signal = new OutboxSignal()));
    return signal;
  }

  private readonly listeners = new Set<() => void>();
  private expectedAt = Number.NEGATIVE_INFINITY;

  notify(): void {
    for (const listener of this.listeners) listener();
  }

  /** An event that needs the fan-out is being written (src/app/events.ts). */
  expect(): void {
    this.expectedAt = performance.now();
  }

  /**
   * Rings after a request that may have committed events, unless no event that needs the
   * fan-out has been written for a while: events nobody can take are written already
   * dispatched (decision 0014), and a pass for them would find nothing. A request cannot
   * tell whether it wrote one itself, so any recent one rings.
   */
  notifyIfExpected(): void {
    if (performance.now() - this.expectedAt < EXPECT_WINDOW_MS) this.notify();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

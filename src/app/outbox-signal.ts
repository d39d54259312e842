/**
 * An in-process "new events were committed" bell. Ringing it is a hint, never the only
 * path: the dispatcher also polls, so an event written by another process, a CLI
 * command or a worker that does not ring is still delivered, just a poll later.
 */
export class OutboxSignal {
  private readonly listeners = new Set<() => void>();

  notify(): void {
    for (const listener of this.listeners) listener();
  }

  subscribe(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

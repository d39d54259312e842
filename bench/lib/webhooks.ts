import { createServer, type Server } from 'node:http';
import { Samples } from './load.js';
import { jsonHeaders } from './flows.js';

/**
 * A local callback receiver: answers 200 at once, counts each event once (deliveries are
 * at least once) and records the lag from the event's `created_at` (the moment of the
 * state change) to its arrival. Both clocks are this machine's.
 */
export class Receiver {
  private server: Server | null = null;
  private seen = new Set<string>();
  lags = new Samples();
  first = 0;
  last = 0;
  duplicates = 0;
  /** Only events created at or after this time count towards lags (a window's own events). */
  since = 0;

  get received(): number {
    return this.seen.size;
  }

  reset(since: number): void {
    this.lags = new Samples();
    this.first = 0;
    this.last = 0;
    this.since = since;
  }

  async start(): Promise<string> {
    this.server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        res.writeHead(200).end();
        const now = Date.now();
        let event: { id?: string; created_at?: string };
        try {
          event = JSON.parse(body) as typeof event;
        } catch {
          return;
        }
        const id = (req.headers['webhook-id'] as string | undefined) ?? event.id ?? '';
        if (this.seen.has(id)) {
          this.duplicates++;
          return;
        }
        this.seen.add(id);
        const created = Date.parse(event.created_at ?? '');
        if (created >= this.since) {
          if (!this.first) this.first = now;
          this.last = now;
          this.lags.add(now - created);
        }
      });
    });
    this.server.keepAliveTimeout = 60_000;
    await new Promise<void>((ok) => this.server!.listen(0, '127.0.0.1', ok));
    const { port } = this.server.address() as { port: number };
    return `http://127.0.0.1:${port}/hooks`;
  }

  /** Resolves when `count` events have arrived, or when none arrived for `idleMs`. */
  async waitFor(count: number, idleMs: number, deadlineMs: number): Promise<void> {
    const deadline = Date.now() + deadlineMs;
    let lastCount = -1;
    let lastChange = Date.now();
    while (this.received < count && Date.now() < deadline) {
      if (this.received !== lastCount) {
        lastCount = this.received;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > idleMs) {
        return;
      }
      await new Promise((ok) => setTimeout(ok, 100));
    }
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((ok) => (this.server ? this.server.close(() => ok()) : ok()));
  }
}

export async function registerEndpoint(url: string, key: string, receiverUrl: string): Promise<{ ok: true } | { ok: false; reason: string }> {
  const res = await fetch(`${url}/webhook-endpoints`, { method: 'POST', headers: jsonHeaders(key), body: JSON.stringify({ url: receiverUrl, events: ['*'] }) });
  const text = await res.text();
  if (res.status === 201 || res.status === 200) return { ok: true };
  return { ok: false, reason: `POST /webhook-endpoints → ${res.status} ${text.slice(0, 200)}` };
}

import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of a database server that a test can break the way networks and
 * servers break, without touching the server itself (others use it):
 * - `cut()`: every connection is reset and new ones are dropped at once (a server
 *   restarting, or refusing connections);
 * - `pause()`: connections stay open but nothing flows, and new ones are accepted and
 *   never answered (a server or route that is unreachable without a word);
 * - `resume()`: traffic flows again, and paused connections carry on where they stopped.
 */
export interface TcpProxy {
  /** `targetUrl` with this proxy's host and port. */
  url(targetUrl: string): string;
  cut(): void;
  pause(): void;
  resume(): void;
  close(): Promise<void>;
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  let state: 'open' | 'paused' | 'cut' = 'open';
  const pairs = new Set<[Socket, Socket]>();
  /** Connections accepted while paused: they reach the server only when resumed. */
  const held = new Set<Socket>();

  const pipe = (client: Socket) => {
    const upstream = connect(target.port, target.host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream);
    upstream.pipe(client);
  };

  const server: Server = createServer((client) => {
    if (state === 'cut') return void client.resetAndDestroy();
    if (state === 'paused') {
      held.add(client);
      client.pause();
      client.on('error', () => {}).on('close', () => held.delete(client));
      return;
    }
    pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;

  return {
    url(targetUrl) {
      const u = new URL(targetUrl);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    cut() {
      state = 'cut';
      for (const [a, b] of pairs) {
        a.resetAndDestroy();
        b.destroy();
      }
      pairs.clear();
      for (const c of held) c.resetAndDestroy();
      held.clear();
    },
    pause() {
      state = 'paused';
      for (const [a, b] of pairs) {
        a.unpipe(b);
        b.unpipe(a);
        a.pause();
        b.pause();
      }
    },
    resume() {
      state = 'open';
      for (const [a, b] of pairs) {
        a.pipe(b);
        b.pipe(a);
      }
      for (const c of held) {
        held.delete(c);
        pipe(c);
        c.resume();
      }
    },
    async close() {
      for (const [a, b] of pairs) {
        a.destroy();
        b.destroy();
      }
      for (const c of held) c.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

import { Worker } from 'node:worker_threads';

/**
 * A worker thread running the module `name` (without extension) beside `base`, the
 * calling module's `import.meta.url`. Worker threads do not inherit the tsx loader the
 * gateway runs under (`npm start`, tests), so a TypeScript thread registers it before
 * loading its module.
 */
export function startThread(base: string, name: string, workerData: unknown): Worker {
  const fromTypeScript = base.endsWith('.ts');
  const url = new URL(`./${name}${fromTypeScript ? '.ts' : '.js'}`, base);
  if (!fromTypeScript) return new Worker(url, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(url.href)}); });`;
  return new Worker(boot, { eval: true, workerData });
}

/** A reply from a request/reply thread: the request's number and, on success, what it answers. */
export type ThreadReply<Value, Failure> = { id: number } & ({ value: Value } | { error: Failure });

/**
 * The main thread's side of a worker thread that answers numbered requests
 * (sqlite-writer.ts, mail/mailer.ts). Each request's promise settles with its reply. An
 * idle thread does not keep the process alive; one with requests in flight does. If the
 * thread stops, the requests it held fail (whatever it was doing may or may not have
 * happened, as with a crash) and the next request starts a new thread. Requests are kept
 * per thread: a stopped thread's last events (`error`, then `exit` milliseconds later)
 * fail only what that thread held, never what its successor has been sent meanwhile.
 */
export class ThreadClient<Value, Failure> {
  private worker: Worker | null = null;
  /** Requests in flight on the current thread (each thread's own map). */
  private pending = new Map<number, Waiter<Value>>();
  private nextId = 1;

  constructor(
    private readonly thread: {
      /** The calling module's `import.meta.url` and the thread module's name beside it (startThread). */
      base: string;
      name: string;
      data: unknown;
      /** What the thread is called in the error its stop gives to the requests it held. */
      label: string;
      /** The error a failure reply rejects its request with. */
      failure: (failure: Failure) => Error;
      /** Called when a new thread starts, before its first request. */
      onStart?: () => void;
    },
  ) {}

  /**
   * Posts the message `build` makes for the request's number; settles with the thread's
   * reply. `unsent` runs when the message could not be posted at all (a value that cannot
   * be copied), before the promise rejects: the thread never saw it.
   */
  request(build: (id: number) => unknown, unsent?: () => void): Promise<Value> {
    const worker = this.worker ?? this.start();
    const pending = this.pending;
    const id = this.nextId++;
    try {
      worker.postMessage(build(id));
    } catch (error) {
      // Nothing was sent: nothing to wait for.
      unsent?.();
      return Promise.reject(error);
    }
    // Replies arrive on a later turn of the event loop, so registering now is in time.
    return new Promise((resolve, reject) => {
      if (pending.size === 0) worker.ref();
      pending.set(id, { resolve, reject });
    });
  }

  /**
   * Tells the thread to close once it has finished what it holds. With `hold`, the process
   * is kept alive until the thread has exited, and the promise resolves then.
   */
  async close(hold: boolean): Promise<void> {
    const worker = this.worker;
    if (!worker) return;
    this.worker = null;
    this.pending = new Map();
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    if (hold) worker.ref();
    worker.postMessage('close');
    if (hold) await exited;
  }

  private start(): Worker {
    const worker = startThread(this.thread.base, this.thread.name, this.thread.data);
    const pending = (this.pending = new Map());
    this.thread.onStart?.();
    worker.unref();
    worker.on('message', (reply: ThreadReply<Value, Failure>) => {
      const waiter = pending.get(reply.id);
      if (!waiter) return;
      pending.delete(reply.id);
      if (pending.size === 0) worker.unref();
      if ('error' in reply) waiter.reject(this.thread.failure(reply.error));
      else waiter.resolve(reply.value);
    });
    const fail = (error: Error) => {
      if (this.worker === worker) this.worker = null;
      for (const waiter of pending.values()) waiter.reject(error);
      pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the ${this.thread.label} stopped (exit code ${code})`)));
    this.worker = worker;
    return worker;
  }
}

type Waiter<Value> = { resolve: (v: Value) => void; reject: (e: Error) => void };

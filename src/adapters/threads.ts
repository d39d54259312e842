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
 * happened, as with a crash) and the next request starts a new thread.
 */
export class ThreadClient<Value, Failure> {
  private worker: Worker | null = null;
  private readonly pending = new Map<number, { resolve: (v: Value) => void; reject: (e: Error) => void }>();
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

  /** Posts the message `build` makes for the request's number; settles with the thread's reply. */
  request(build: (id: number) => unknown): Promise<Value> {
    const worker = this.worker ?? this.start();
    const id = this.nextId++;
    try {
      worker.postMessage(build(id));
    } catch (error) {
      // Nothing was sent (a value that cannot be copied): nothing to wait for.
      return Promise.reject(error);
    }
    // Replies arrive on a later turn of the event loop, so registering now is in time.
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) worker.ref();
      this.pending.set(id, { resolve, reject });
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
    const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
    if (hold) worker.ref();
    worker.postMessage('close');
    if (hold) await exited;
  }

  private start(): Worker {
    const worker = startThread(this.thread.base, this.thread.name, this.thread.data);
    this.thread.onStart?.();
    worker.unref();
    worker.on('message', (reply: ThreadReply<Value, Failure>) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if ('error' in reply) waiter.reject(this.thread.failure(reply.error));
      else waiter.resolve(reply.value);
    });
    const fail = (error: Error) => {
      if (this.worker === worker) this.worker = null;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the ${this.thread.label} stopped (exit code ${code})`)));
    this.worker = worker;
    return worker;
  }
}

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

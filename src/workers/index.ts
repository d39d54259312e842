import type { Services } from '../app/services.js';
import { Loop } from './loop.js';
import { sweepExpired } from './expiry-sweeper.js';

export interface Workers {
  loops: Record<string, Loop>;
  stop(): Promise<void>;
}

export function startWorkers(services: Services): Workers {
  const log = services.ctx.log;
  const loops: Record<string, Loop> = {
    expiry: new Loop('expiry', 5_000, () => sweepExpired(services), log).start(),
  };
  return {
    loops,
    async stop() {
      await Promise.all(Object.values(loops).map((l) => l.stop()));
    },
  };
}

import type { Services } from '../app/services.js';
import { Loop } from './loop.js';
import { sweepExpired } from './expiry-sweeper.js';
import { dispatcherLoop } from './dispatcher.js';
import { runCaptureScheduler } from './capture-scheduler.js';
import { runComplianceChecks } from './compliance-reminders.js';

export interface Workers {
  loops: Record<string, Loop>;
  stop(): Promise<void>;
}

export function startWorkers(services: Services): Workers {
  const { log, metrics } = services.ctx;
  const loops: Record<string, Loop> = {
    expiry: new Loop('expiry', 5_000, () => sweepExpired(services), log, metrics).start(),
    dispatcher: dispatcherLoop(services).start(),
    capture: new Loop('capture', 5_000, () => runCaptureScheduler(services), log, metrics).start(),
    compliance: new Loop('compliance', 10 * 60_000, () => runComplianceChecks(services), log, metrics).start(),
  };
  return {
    loops,
    async stop() {
      await Promise.all(Object.values(loops).map((l) => l.stop()));
    },
  };
}

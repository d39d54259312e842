import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { createContext, type GatewayOptions } from '../server.js';
import { buildServices, type Services } from '../app/services.js';

/** Operator commands use the same use cases as the API, against the configured database. */
export async function withServices<T>(config: Readonly<Config>, log: Logger, fn: (services: Services) => Promise<T>, opts: GatewayOptions = {}): Promise<T> {
  const ctx = await createContext(config, log, opts);
  try {
    return await fn(buildServices(ctx));
  } finally {
    ctx.metrics.close();
    await ctx.database.close();
  }
}

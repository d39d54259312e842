import { secureRandomBytes } from '../adapters/random.js';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { formatId, type IdKind } from '../domain/ids.js';
import type { Database } from '../adapters/storage/database.js';
import type { Vault } from '../adapters/vault/envelope.js';
import type { Acquirer } from '../ports/acquirer.js';
import type { Clock } from '../ports/clock.js';
import type { Metrics } from './metrics.js';

/** What every use case may touch; built once at boot (or per test) and passed down. */
export interface AppContext {
  config: Readonly<Config>;
  database: Database;
  vault: Vault;
  acquirer: Acquirer;
  clock: Clock;
  log: Logger;
  /** This process's counters for GET /operator/metrics. */
  metrics: Metrics;
  newId(kind: IdKind): string;
}

/**
 * Ids that sort in the order this process made them: within one millisecond (or if the clock
 * steps back) the random part grows by a random step instead of being drawn afresh, so the
 * events of one payment, written in the same millisecond, list and page in their order.
 */
export function idFactory(clock: Clock): (kind: IdKind) => string {
  let lastMs = -1;
  const random = Buffer.alloc(10);
  return (kind) => {
    const now = clock.now();
    if (now > lastMs || !stepUp(random)) {
      lastMs = Math.max(now, lastMs + 1);
      secureRandomBytes(10).copy(random);
    }
    return formatId(kind, lastMs, random);
  };
}

/** Adds a random 1..2^32 to the 80-bit big-endian number; false when it would overflow. */
function stepUp(bytes: Buffer): boolean {
  let carry = secureRandomBytes(4).readUInt32BE(0) + 1;
  const next = Buffer.from(bytes);
  for (let i = next.length - 1; i >= 0 && carry > 0; i--) {
    const sum = next[i]! + (carry % 256);
    next[i] = sum % 256;
    carry = Math.floor(carry / 256) + Math.floor(sum / 256);
  }
  if (carry > 0) return false;
  next.copy(bytes);
  return true;
}

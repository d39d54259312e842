import { secureRandomBytes } from '../adapters/random.js';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { formatId, type IdKind } from '../domain/ids.js';
import type { Database } from '../adapters/storage/database.js';
import type { Vault } from '../adapters/vault/envelope.js';
import type { Acquirer } from '../ports/acquirer.js';
import type { Clock } from '../ports/clock.js';

/** What every use case may touch; built once at boot (or per test) and passed down. */
export interface AppContext {
  config: Readonly<Config>;
  database: Database;
  vault: Vault;
  acquirer: Acquirer;
  clock: Clock;
  log: Logger;
  newId(kind: IdKind): string;
}

export function idFactory(clock: Clock): (kind: IdKind) => string {
  return (kind) => formatId(kind, clock.now(), secureRandomBytes(10));
}

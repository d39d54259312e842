import { chmodSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { type AcquirerName, type Config, ConfigError } from './config.js';
import { removeStaleTemporaries } from './file-made-once.js';
import { bootFailure, openDatabase, postgresSearchPath, postgresTarget } from './adapters/storage/database.js';
import { Vault } from './adapters/vault/envelope.js';
import { checkSmtp } from './adapters/mail/mailer.js';
import { checkKeks } from './app/kek-check.js';
import { SandboxAcquirer } from './adapters/acquirers/sandbox/sandbox-acquirer.js';
import { type AppContext, idFactory } from './app/context.js';
import { buildServices, type Services } from './app/services.js';
import { SANDBOX_RETURN_PATH } from './app/merchants.js';
import { DomainError } from './domain/errors.js';
import { buildApp } from './http/app.js';
import { Metrics } from './app/metrics.js';
import { meteredAcquirer } from './app/metered-acquirer.js';
import { startWorkers, type Workers } from './workers/index.js';
import { type Clock, systemClock } from './ports/clock.js';
import type { Acquirer } from './ports/acquirer.js';

/** The connector for each ACQUIRER value (config.ts). */
const CONNECTORS: Record<AcquirerName, () => Acquirer> = { sandbox: () => new SandboxAcquirer() };

/**
 * A PostgreSQL query unanswered this long is given up and its connection dropped (database.ts):
 * far above any query the gateway runs on a healthy server, well below the many minutes TCP
 * takes to notice a peer that is gone.
 */
const QUERY_DEADLINE_MS = 15_000;

export interface Gateway {
  app: FastifyInstance;
  /** The operator API's own app when OPERATOR_PORT is set (it is then not on `app`). */
  operatorApp: FastifyInstance | null;
  services: Services;
  workers: Workers | null;
  close(): Promise<void>;
}

export interface GatewayOptions {
  clock?: Clock;
  acquirer?: Acquirer;
  /**
   * Whether this process registers its active key (src/app/kek-check.ts): every gateway
   * does; an operator command only if it seals, so trying a new VAULT_KEK on a read-only
   * command does not make gateways still on the old one refuse to restart.
   */
  registerKek?: boolean;
}

export async function createContext(config: Readonly<Config>, log: Logger, opts: GatewayOptions = {}): Promise<AppContext> {
  const clock = opts.clock ?? systemClock;
  const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, poolSize: config.databasePoolSize, groupCommitWindowMs: config.groupCommitWindowMs, writerThread: true, cardKek: config.keks.active, log, queryDeadlineMs: QUERY_DEADLINE_MS });
  const vault = new Vault(config.keks, config.hmacKey);
  try {
    await checkKeks(database.db, config.keks, vault, config.hmacKey, clock.now(), opts.registerKek ?? true);
  } catch (error) {
    // Its writer thread or pool would keep a process that cannot start alive.
    await database.close();
    throw bootFailure(config, error);
  }
  const metrics = new Metrics();
  return {
    config,
    database,
    vault,
    acquirer: meteredAcquirer(opts.acquirer ?? CONNECTORS[config.acquirer](), metrics),
    clock,
    log,
    metrics,
    newId: idFactory(clock),
  };
}

/** Everything but listening: tests call this and use inject() or listen on port 0. */
export async function createGateway(config: Readonly<Config>, log: Logger, opts: GatewayOptions = {}): Promise<Gateway> {
  const ctx = await createContext(config, log, opts);
  const services = buildServices(ctx);
  const app = await buildApp(services, log);
  const operatorApp = config.operatorListen ? await buildApp(services, log, 'operator') : null;
  const workers = config.workersEnabled ? startWorkers(services) : null;
  if (workers && config.smtpUrl) void checkSmtp(config.smtpUrl, log);
  return {
    app,
    operatorApp,
    services,
    workers,
    async close() {
      // Requests first: no new payment starts, the ones under way finish and are answered,
      // and their commits stop waking the workers, which then finish what they hold.
      await Promise.all([app.close(), operatorApp?.close()]);
      await workers?.stop();
      ctx.metrics.close();
      await ctx.database.close();
    },
  };
}

export interface SandboxCredentials {
  merchant_id: string;
  channel: string;
  secret_key: string;
  return_secret: string;
}

export const SANDBOX_CURRENCIES = ['USD', 'EUR', 'GBP', 'JPY', 'CHF', 'CAD', 'AUD', 'SEK', 'NOK', 'DKK', 'PLN', 'KWD'];

/**
 * Where a sandbox's credentials are kept: one file per database, so a PostgreSQL sandbox
 * started with the same DATA_DIR as the SQLite one never overwrites the SQLite key (stored
 * only as a hash, it could not be shown again). Gateways in schemas of their own in one
 * database (a search_path in DATABASE_URL) have one each too; the default path adds nothing
 * to the name, so installs made before keep theirs.
 */
export function sandboxCredentialsFile(config: Pick<Config, 'dataDir' | 'databaseUrl'>): string {
  if (!config.databaseUrl) return join(config.dataDir, 'sandbox-credentials.json');
  return postgresCredentialsFile(config.dataDir, config.databaseUrl, postgresSearchPath(config.databaseUrl));
}

function postgresCredentialsFile(dataDir: string, databaseUrl: string, searchPath: string | null): string {
  const database = (postgresTarget(databaseUrl) + (searchPath === null ? '' : `.${searchPath}`)).replace(/[^A-Za-z0-9_.-]/g, '_');
  return join(dataDir, `sandbox-credentials.postgres-${database}.json`);
}

/**
 * Before schemas had files of their own, a sandbox in one kept its credentials under its
 * database's name alone. Found there, and of this schema's merchant, they are copied to its
 * own file (not moved: nothing says no other schema's gateway reads that one).
 */
async function carriedOverCredentials(services: Services, file: string): Promise<SandboxCredentials | null> {
  const { dataDir, databaseUrl } = services.ctx.config;
  if (!databaseUrl || postgresSearchPath(databaseUrl) === null) return null;
  const credentials = await keptCredentials(services, postgresCredentialsFile(dataDir, databaseUrl, null)).catch((error: unknown) => {
    // Another gateway's file, damaged: not this one's to stop for.
    if (error instanceof ConfigError) return null;
    throw error;
  });
  if (credentials) writeCredentials(file, credentials);
  return credentials;
}

const CREDENTIAL_FIELDS = ['merchant_id', 'channel', 'secret_key', 'return_secret'] as const;

/** The file's credentials; one edited or cut short by hand stops the boot naming it rather than with a parser's stack trace. */
function readCredentials(file: string): SandboxCredentials {
  let kept: unknown;
  try {
    kept = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw damagedCredentials(file, error instanceof SyntaxError ? 'it is not JSON' : `it cannot be read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  const wrong = typeof kept === 'object' && kept !== null && !Array.isArray(kept) ? CREDENTIAL_FIELDS.filter((f) => typeof (kept as Record<string, unknown>)[f] !== 'string') : CREDENTIAL_FIELDS;
  if (wrong.length > 0) throw damagedCredentials(file, `it needs ${CREDENTIAL_FIELDS.map((f) => `"${f}"`).join(', ')} as strings; ${wrong.map((f) => `"${f}"`).join(', ')} ${wrong.length === 1 ? 'is' : 'are'} not`);
  return kept as SandboxCredentials;
}

function damagedCredentials(file: string, what: string): ConfigError {
  // The key it held is stored only as a hash: without the file the boot says how to make another.
  return new ConfigError(`${file} is damaged (${what}); restore it, or delete it and create a key with: npm run cli -- key create --merchant mer_…`);
}

/** The credentials kept in `file`, if they are of this database's merchant (a database dropped and made again has others). */
async function keptCredentials(services: Services, file: string): Promise<SandboxCredentials | null> {
  if (!existsSync(file)) return null;
  const credentials = readCredentials(file);
  const merchant = await services.ctx.database.db.selectFrom('merchants').select('id').where('id', '=', credentials.merchant_id).executeTakeFirst();
  return merchant ? credentials : null;
}

/** After `channel rotate-secret`: the sandbox's credentials file keeps the channel's secret current. Answers whether it held that channel. */
export async function keepSandboxReturnSecret(services: Services, channel: string, returnSecret: string): Promise<boolean> {
  const file = sandboxCredentialsFile(services.ctx.config);
  // The rotation is done: a damaged file must not keep its new secret from being shown. The next boot names the file.
  const credentials = await keptCredentials(services, file).catch((error: unknown) => {
    if (error instanceof ConfigError) return null;
    throw error;
  });
  if (credentials?.channel !== channel) return false;
  writeCredentials(file, { ...credentials, return_secret: returnSecret });
  return true;
}

/**
 * Whole or not at all: another gateway starting on the same DATA_DIR reads this file as
 * soon as it sees the database's merchant, possibly while it is being written.
 */
function writeCredentials(file: string, credentials: SandboxCredentials): void {
  const partial = `${file}.${process.pid}.tmp`;
  writeFileSync(partial, JSON.stringify(credentials, null, 2) + '\n', { mode: 0o600 });
  chmodSync(partial, 0o600);
  renameSync(partial, file);
}

/**
 * First boot of an empty sandbox: create a merchant, a channel and a key so a newcomer
 * can post a payment at once. The key is written (0600) next to the database because
 * it is stored there only as a hash and could not be shown again.
 */
export async function ensureSandboxCredentials(services: Services): Promise<{ created: boolean; credentials: SandboxCredentials | null; file: string }> {
  const { config, database } = services.ctx;
  const file = sandboxCredentialsFile(config);
  // A process killed between writing the copy and renaming it left the key in it.
  removeStaleTemporaries(file);
  const anyMerchant = await database.db.selectFrom('merchants').select('id').limit(1).executeTakeFirst();
  if (anyMerchant) return { created: false, credentials: existsSync(file) ? await keptCredentials(services, file) : await carriedOverCredentials(services, file), file };
  const merchant = await services.merchants.createMerchant('Sandbox merchant');
  let return_secret: string;
  try {
    ({ return_secret } = await services.merchants.createChannel(merchant.id, {
      reference: 'sandbox',
      name: 'Sandbox Shop',
      mode: 'sandbox',
      currencies: SANDBOX_CURRENCIES,
      returnUrls: [SANDBOX_RETURN_PATH],
      notifyEmails: ['merchant@sandbox.test'],
    }));
  } catch (error) {
    // Another node booting on the same empty database won the race: use its sandbox.
    if (!(error instanceof DomainError && error.code === 'channel_reference_taken')) throw error;
    await database.db.deleteFrom('merchants').where('id', '=', merchant.id).execute();
    return { created: false, credentials: await keptCredentials(services, file), file };
  }
  const key = await services.merchants.createSecretKey(merchant.id, 'sandbox', 'sandbox');
  const credentials: SandboxCredentials = { merchant_id: merchant.id, channel: 'sandbox', secret_key: key.secret_key, return_secret };
  writeCredentials(file, credentials);
  return { created: true, credentials, file };
}

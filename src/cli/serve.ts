import type { FastifyInstance } from 'fastify';
import { ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { createGateway, ensureSandboxCredentials, type Gateway } from '../server.js';
import { holdDataDir } from '../adapters/storage/data-dir-lock.js';
import { bootFailure } from '../adapters/storage/database.js';

export async function serve(): Promise<void> {
  const config = loadConfig();
  const log = createLogger(config.logLevel);
  const hold = config.databaseUrl ? null : holdDataDir(config.dataDir);
  const gateway = await createGateway(config, log);
  let settingsNotices: string[];
  try {
    settingsNotices = await bootReads(gateway);
  } catch (error) {
    await gateway.close().catch(() => {});
    throw bootFailure(config, error);
  }
  const address = await listen(gateway, gateway.app, { host: config.host, port: config.port }, ['HOST', 'PORT']);
  const publicly = config.publicUrl === address ? '' : ` (public URL ${config.publicUrl})`;
  process.stdout.write(`  tZero Pay (${config.mode}, ${gateway.services.ctx.database.dialect}) listening on ${address}${publicly}  — API reference: ${config.publicUrl}/docs\n\n`);
  if (gateway.operatorApp && config.operatorListen) {
    const operatorAddress = await listen(gateway, gateway.operatorApp, config.operatorListen, ['OPERATOR_HOST', 'OPERATOR_PORT']);
    process.stdout.write(`  operator API (/operator/…) listening on ${operatorAddress}, not on ${address}\n\n`);
  }
  for (const notice of config.notices) log.warn(notice);
  for (const notice of settingsNotices) log.warn(notice);
  if (config.mode === 'live' && config.acquirer === 'sandbox') {
    log.warn({ acquirer: config.acquirer }, 'live mode with the sandbox acquirer: payments are simulated and no money moves');
    process.stdout.write('  WARNING: live mode with ACQUIRER=sandbox: payments are simulated, no money moves.\n\n');
  }
  const shutdown = async (signal: string) => {
    log.info({ signal }, 'shutting down');
    await gateway.close();
    hold?.release();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

/**
 * The sandbox's merchant (made at the first boot) and the settings to warn about, before
 * listening, as the boot's other reads are: one that fails stops the boot here.
 */
async function bootReads(gateway: Gateway): Promise<string[]> {
  if (gateway.services.ctx.config.mode === 'sandbox') {
    const { created, credentials, file } = await ensureSandboxCredentials(gateway.services);
    if (credentials && created) {
      process.stdout.write(
        `\n  tZero Pay sandbox created credentials (${file}):\n` +
          `    merchant_id:  ${credentials.merchant_id}\n    channel:      ${credentials.channel}\n    secret_key:   ${credentials.secret_key}\n` +
          `    return_secret: ${credentials.return_secret}\n\n`,
      );
    } else if (credentials) {
      // Shown once, when made: output that process managers keep as logs gets no secrets on every boot.
      process.stdout.write(`\n  tZero Pay sandbox reusing credentials: merchant ${credentials.merchant_id}, channel ${credentials.channel}; the keys are in ${file}\n\n`);
    } else {
      process.stdout.write(`\n  tZero Pay sandbox: this database has merchants but ${file} holds no credentials of theirs; create a key with: npm run cli -- key create --merchant mer_…\n\n`);
    }
  }
  return gateway.services.merchants.settingsOutOfRule();
}

/**
 * A port taken by another process, or a HOST that is no address of this machine, is a
 * setting to change: said in one line naming the variables, once the gateway has handed
 * back what its workers may have claimed already.
 */
async function listen(gateway: Gateway, app: FastifyInstance, at: { host: string; port: number }, [hostVar, portVar]: [string, string]): Promise<string> {
  try {
    return await app.listen(at);
  } catch (error) {
    await gateway.close();
    throw new ConfigError(`${portVar} ${at.port} on ${hostVar} ${at.host} cannot be listened on: ${(error as Error).message}`);
  }
}

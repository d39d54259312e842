import { parseArgs } from 'node:util';
import { type Config, ConfigError, loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { DomainError } from '../domain/errors.js';
import { DatabaseUnavailableError, databaseLocation, migrate, openDatabase } from '../adapters/storage/database.js';
import { serve } from './serve.js';
import { withServices } from './with-services.js';
import { rotateKek } from './rotate-kek.js';
import { retireKekIds } from '../app/kek-check.js';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { cliActor, readAuditTrail, writeAudit } from '../app/audit.js';
import { idFactory } from '../app/context.js';
import { systemClock } from '../ports/clock.js';
import { keepSandboxReturnSecret, sandboxCredentialsFile } from '../server.js';
import { DataDirInUseError, holdDataDir } from '../adapters/storage/data-dir-lock.js';
import { paymentSupportText } from './payment-text.js';
import { printable, shown } from './terminal-text.js';
import { NoDatabaseFileError, backupSqliteFile } from '../adapters/storage/sqlite-backup.js';
import { UnrestorableBackupError, restoreSqliteFile } from '../adapters/storage/sqlite-restore.js';
import { migrationProvider } from '../adapters/storage/migrations/index.js';

const USAGE = `tZero Pay gateway

Usage: npm run cli -- <command> [options]   (or: node --import tsx src/cli/main.ts <command>)

  serve                                   run the gateway (what npm start does)
  migrate                                 apply database migrations and exit
  merchant create --name NAME             create a merchant
  merchant list                           each merchant with its status (active or suspended, since when, why)
  merchant suspend MERCHANT_ID --reason TEXT
                                          stop it taking money, at once: new payments, stored-card charges,
                                          captures (scheduled ones wait) and its open payment pages are refused;
                                          reads, refunds, voids, callbacks and e-mails go on
  merchant resume MERCHANT_ID             lift the suspension
  channel create --merchant ID --reference REF --name NAME --currency USD[,EUR]
                 --return-url URL [--return-url URL] [--notify-email ADDR ...]
                 [--mode sandbox|live] [--notify-event TYPE ...] [--customer-receipts]
                 [--support-email ADDR]  where customers write: named in receipts, their Reply-To
  channel update REF [--name ..] [--currency ..] [--return-url ..] [--notify-email ..]
                 [--mode ..] [--notify-event ..] [--customer-receipts true|false]
                 [--support-email ADDR]  (--support-email "" removes it)
  channel list [--merchant ID]
  channel secret REF                      show the channel's return-signing secret
  channel rotate-secret REF               replace it (in use at once, e.g. after a leak); shows the new one
  key create --merchant ID [--mode sandbox|live] [--label TEXT]
                                          create a secret key (shown once; sk_test_… or sk_live_…) that acts
                                          on that mode's channels and payments only; sandbox unless --mode live;
                                          label 1-200 characters
  key revoke KEY_ID                       revoke a secret key at once
  key list [--merchant ID]                each key with its mode: "both (legacy)" for keys made before modes
  vault rotate                            re-wrap every data key under the active VAULT_KEK
  database scrub                          SQLite, gateway stopped: rewrite the file without the free
                                          space where versions before decision 0017 left erased cards
  database backup FILE                    SQLite, gateway running or not: a consistent copy to FILE (new, owner-only),
                                          without free space; the keys are not in it (PostgreSQL: pg_dump)
  database restore FILE                   SQLite, gateway stopped: check FILE (a tZero backup, undamaged) and put it in
                                          place of the database, the old one kept aside with its WAL
  payment show PAYMENT_ID                 a payment as its merchant sees it (card: BIN and last 4), its events and
                                          what became of each callback and e-mail; the look is audited
  audit list [--merchant ID]              the newest 100 audit rows: keys, channels, secrets, vault, compliance, payment looks,
                                          merchants' captures, voids, refunds and stored-card deletions
  compliance list                         PCI DSS submissions waiting for review
  compliance show MERCHANT_ID             status, documents and compliance audit rows
  compliance approve MERCHANT_ID [--documents DOC_ID,...]
                                          approve the submission (valid a year, at most a year after the SAQ or AOC);
                                          with --documents, only if exactly those documents wait for review
  compliance reject MERCHANT_ID --reason TEXT [--documents DOC_ID,...]
  compliance download DOC_ID --out FILE   write a submitted PDF to FILE

A value given twice to --currency, --return-url, --notify-email or --notify-event is refused.
A channel's --mode is fixed once it has taken a payment: create a new channel for live payments.
Every command prints text; add --json for JSON (a refusal too: {"error":{"status","code","message",...}} on stderr).`;

type OptionName = keyof typeof options;

/**
 * What each command takes: its one argument (what it names, for the messages) and its
 * options. Checked before the configuration is read or a database opened, so a typo makes
 * no data directory, key file or migration; and an argument or option the command would
 * ignore is refused rather than dropped (`key revoke key_a key_b` revoking key_a only).
 */
const COMMANDS: Record<string, { argument?: string; options?: OptionName[] }> = {
  serve: {},
  migrate: {},
  'merchant create': { options: ['name'] },
  'merchant list': {},
  'merchant suspend': { argument: 'the merchant id', options: ['reason'] },
  'merchant resume': { argument: 'the merchant id' },
  'channel create': { options: ['merchant', 'reference', 'name', 'currency', 'return-url', 'notify-email', 'mode', 'notify-event', 'customer-receipts', 'support-email'] },
  'channel update': { argument: 'the channel reference', options: ['name', 'currency', 'return-url', 'notify-email', 'mode', 'notify-event', 'customer-receipts', 'support-email'] },
  'channel list': { options: ['merchant'] },
  'channel secret': { argument: 'the channel reference' },
  'channel rotate-secret': { argument: 'the channel reference' },
  'key create': { options: ['merchant', 'mode', 'label'] },
  'key revoke': { argument: 'the key id (key_…)' },
  'key list': { options: ['merchant'] },
  'vault rotate': {},
  'database scrub': {},
  'database backup': { argument: 'the file to write the backup to' },
  'database restore': { argument: 'the backup file to restore' },
  'payment show': { argument: 'the payment id (pay_…)' },
  'audit list': { options: ['merchant'] },
  'compliance list': {},
  'compliance show': { argument: 'the merchant id' },
  'compliance approve': { argument: 'the merchant id', options: ['documents'] },
  'compliance reject': { argument: 'the merchant id', options: ['reason', 'documents'] },
  'compliance download': { argument: 'the document id (doc_…)', options: ['out'] },
};

const EVERY_COMMAND_OPTIONS: OptionName[] = ['json', 'help'];

/** The command the positionals name, and its argument ('' for a command without one); a UsageError for anything else. */
function commandLine(positionals: string[], values: Values): { name: string; target: string } {
  const words = positionals[0] === 'serve' || positionals[0] === 'migrate' ? 1 : 2;
  const name = positionals.slice(0, words).join(' ');
  const spec = COMMANDS[name];
  if (!spec) throw new UsageError(`unknown command "${positionals.join(' ')}"`);
  const [target, ...extra] = positionals.slice(words);
  if (!spec.argument && target !== undefined) throw new UsageError(`${name} takes no argument, got "${target}"`);
  if (spec.argument && target === undefined) throw new UsageError(`${name} needs ${spec.argument}`);
  if (extra.length) throw new UsageError(`${name} takes one argument (${spec.argument}), got also "${extra.join(' ')}"`);
  const unused = (Object.keys(values) as OptionName[]).find((o) => !EVERY_COMMAND_OPTIONS.includes(o) && !spec.options?.includes(o));
  if (unused) throw new UsageError(`${name} does not take --${unused}`);
  return { name, target: target ?? '' };
}

/** The commands that seal something under the active key, and so register it (src/app/kek-check.ts). */
const SEALING_COMMANDS = new Set(['channel create', 'channel rotate-secret', 'vault rotate']);

const options = {
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
  name: { type: 'string' },
  merchant: { type: 'string' },
  reference: { type: 'string' },
  currency: { type: 'string', multiple: true },
  'return-url': { type: 'string', multiple: true },
  'notify-email': { type: 'string', multiple: true },
  'notify-event': { type: 'string', multiple: true },
  'customer-receipts': { type: 'string' },
  'support-email': { type: 'string' },
  mode: { type: 'string' },
  label: { type: 'string' },
  reason: { type: 'string' },
  out: { type: 'string' },
  documents: { type: 'string', multiple: true },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof options; allowPositionals: true }>>['values'];

type ListOption = 'currency' | 'return-url' | 'notify-email' | 'notify-event' | 'documents';

/** An option's values, comma-separated or repeated; one given twice is a typo to report, not a value to keep twice. */
function list(values: Values, name: ListOption): string[] | undefined {
  const items = values[name]?.flatMap((x) => x.split(',')).map((x) => x.trim()).filter(Boolean);
  const seen = new Set<string>();
  for (const item of items ?? []) {
    // Addresses differing only in case reach one mailbox, which would get every e-mail twice.
    const key = name === 'notify-email' ? item.toLowerCase() : item;
    if (seen.has(key)) throw new UsageError(`--${name} lists "${item}" more than once`);
    seen.add(key);
  }
  return items;
}

/** As long as the API's free-text fields may be (a webhook endpoint's description). */
const MAX_LABEL = 200;

function label(v: string | undefined): string | undefined {
  if (v !== undefined && (v.trim() === '' || v.length > MAX_LABEL)) throw new UsageError(`--label must be 1-${MAX_LABEL} characters, got ${v.length}`);
  return v;
}

function required(values: Values, name: keyof Values): string {
  const v = values[name];
  if (typeof v !== 'string' || !v) throw new UsageError(`--${name} is required`);
  return v;
}

function mode(v: string | undefined): 'sandbox' | 'live' | undefined {
  if (v === undefined) return undefined;
  if (v !== 'sandbox' && v !== 'live') throw new UsageError('--mode must be sandbox or live');
  return v;
}

function flag(v: string | undefined): boolean | undefined {
  if (v === undefined) return undefined;
  if (v === 'true' || v === '') return true;
  if (v === 'false') return false;
  throw new UsageError('--customer-receipts takes true or false');
}

class UsageError extends Error {}

function print(json: boolean, value: unknown, text: string): void {
  process.stdout.write(printable(json ? JSON.stringify(value, null, 2) : text) + '\n');
}

function table(rows: Array<Record<string, unknown>>, columns: string[]): string {
  if (rows.length === 0) return '(none)';
  const cells = [columns, ...rows.map((r) => columns.map((c) => shown(Array.isArray(r[c]) ? (r[c] as unknown[]).join(',') : String(r[c] ?? ''))))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) => row.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

async function run(argv: string[]): Promise<void> {
  // `--customer-receipts` alone means true.
  const args = argv.map((a, i) => (a === '--customer-receipts' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--')) ? '--customer-receipts=true' : a));
  const { values, positionals } = parseArgs({ args, options, allowPositionals: true, strict: true });
  const json = values.json ?? false;
  if (values.help || positionals.length === 0) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const { name: command, target } = commandLine(positionals, values);
  if (command === 'serve') return serve();
  const config = loadConfig();
  if (command === 'database scrub') {
    // It rewrites the file: a gateway writing meanwhile would have its writes wait or fail.
    const hold = config.databaseUrl ? null : holdDataDir(config.dataDir, 'database scrub rewrites its file: stop the gateway first, then run it again');
    const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
    try {
      const before = await database.sizeBytes();
      const emptied = await database.scrubFreeSpace();
      if (emptied === null) return print(json, { dialect: database.dialect, scrubbed: false }, 'nothing to do on PostgreSQL: dead rows and WAL segments are beyond the gateway (README "Card data": rotate the KEK)');
      const after = await database.sizeBytes();
      // Who rewrote the file holding cardholder data, and when (PCI DSS 10.2.2): no gateway runs to write it.
      await writeAudit({ clock: systemClock, newId: idFactory(systemClock) }, database.db, {
        actor: cliActor(),
        action: 'database.scrub',
        merchantId: null,
        target: null,
        outcome: emptied ? 'success' : 'failed',
        code: emptied ? null : 'database_in_use',
        detail: { bytes_before: before, bytes_after: after },
      });
      if (!emptied) throw new DomainError(409, 'database_in_use', `the file was rewritten but another connection kept its WAL from being emptied: stop the gateway (and anything reading ${databaseLocation(config)}) and run this again`);
      return print(json, { dialect: database.dialect, scrubbed: true, bytes_before: before, bytes_after: after }, `rewrote ${databaseLocation(config)} without its free space (${before} → ${after} bytes)`);
    } finally {
      await database.close();
      hold?.release();
    }
  }
  if (command === 'database backup') return backup(config, resolve(target), json);
  if (command === 'database restore') return restore(config, resolve(target), json);
  if (command === 'migrate') {
    const database = await openDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir, migrate: false });
    const applied = await migrate(database.db)
      .catch((error: unknown) => Promise.reject(new DatabaseUnavailableError(config, error)))
      .finally(() => database.close());
    const where = `${database.dialect} ${databaseLocation(config)}`;
    const done = applied.length === 0 ? `${where} is up to date; no migration to apply` : `applied ${applied.length} migration${applied.length === 1 ? '' : 's'} (${applied.length === 1 ? applied[0] : `${applied[0]} … ${applied.at(-1)}`}) to ${where}; it is up to date`;
    print(json, { dialect: database.dialect, database: databaseLocation(config), applied }, done);
    return;
  }
  const sealing = { registerKek: SEALING_COMMANDS.has(command) };
  await withServices(config, createLogger('warn'), async (services) => {
    const m = services.merchants.actingAs(cliActor());
    switch (command) {
      case 'merchant create': {
        const merchant = await m.createMerchant(required(values, 'name'));
        return print(json, merchant, `created merchant ${merchant.id} (${shown(merchant.name)})`);
      }
      case 'merchant list': {
        const rows = await m.listMerchants();
        return print(json, rows, table(rows, ['id', 'name', 'status', 'created_at', 'suspended_at', 'suspended_reason']));
      }
      case 'merchant suspend': {
        await m.suspendMerchant(target, required(values, 'reason'));
        return print(json, { id: target, status: 'suspended' }, `suspended ${target}: its new payments, captures and open payment pages are refused from now on (403 merchant_suspended); reads, refunds and voids still work`);
      }
      case 'merchant resume': {
        await m.resumeMerchant(target);
        return print(json, { id: target, status: 'active' }, `resumed ${target}: it takes payments again, and its waiting scheduled captures are made`);
      }
      case 'channel create': {
        const { channel, return_secret } = await m.createChannel(required(values, 'merchant'), {
          reference: required(values, 'reference'),
          name: required(values, 'name'),
          mode: mode(values.mode) ?? 'sandbox',
          currencies: list(values, 'currency') ?? [],
          returnUrls: list(values, 'return-url') ?? [],
          notifyEmails: list(values, 'notify-email') ?? [],
          ...(values['notify-event'] ? { notifyEvents: list(values, 'notify-event')! } : {}),
          ...(flag(values['customer-receipts']) !== undefined ? { customerReceipts: flag(values['customer-receipts'])! } : {}),
          ...(values['support-email'] ? { supportEmail: values['support-email'] } : {}),
        });
        return print(
          json,
          { ...channel, return_secret },
          `created channel "${channel.reference}" (${channel.id}) for ${channel.merchant_id}\n` +
            `return URLs: ${channel.return_urls.join(', ')}\nreturn-signing secret: ${return_secret}\n` +
            `(give it to the merchant to verify return redirects; \`channel secret ${channel.reference}\` shows it again)`,
        );
      }
      case 'channel update': {
        const channel = await m.updateChannel(target, {
          ...(values.name ? { name: values.name } : {}),
          ...(mode(values.mode) ? { mode: mode(values.mode)! } : {}),
          ...(values.currency ? { currencies: list(values, 'currency')! } : {}),
          ...(values['return-url'] ? { returnUrls: list(values, 'return-url')! } : {}),
          ...(values['notify-email'] ? { notifyEmails: list(values, 'notify-email')! } : {}),
          ...(values['notify-event'] ? { notifyEvents: list(values, 'notify-event')! } : {}),
          ...(flag(values['customer-receipts']) !== undefined ? { customerReceipts: flag(values['customer-receipts'])! } : {}),
          ...(values['support-email'] !== undefined ? { supportEmail: values['support-email'] || null } : {}),
        });
        return print(json, channel, `updated channel "${channel.reference}"\n${table([channel as unknown as Record<string, unknown>], ['reference', 'name', 'mode', 'currencies', 'return_urls', 'notify_emails', 'support_email'])}`);
      }
      case 'channel list': {
        const rows = await m.listChannels(values.merchant);
        return print(json, rows, table(rows as unknown as Array<Record<string, unknown>>, ['reference', 'id', 'merchant_id', 'name', 'mode', 'currencies', 'return_urls', 'notify_emails', 'support_email']));
      }
      case 'channel secret': {
        const secret = await m.revealReturnSecret(target);
        return print(json, { channel: target, return_secret: secret }, secret);
      }
      case 'channel rotate-secret': {
        const secret = await m.rotateReturnSecret(target);
        const kept = await keepSandboxReturnSecret(services, target, secret);
        return print(
          json,
          { channel: target, return_secret: secret },
          `${secret}\nin use now: returns are signed with it from this moment. Let the merchant's check accept the old secret too for 10 minutes after it deploys this one (returns signed before the rotation).${kept ? `\n${sandboxCredentialsFile(services.ctx.config)} holds it too.` : ''}`,
        );
      }
      case 'key create': {
        const key = await m.createSecretKey(required(values, 'merchant'), label(values.label), mode(values.mode) ?? 'sandbox');
        return print(json, key, `created ${key.id} (${key.mode}: acts on ${key.mode} channels and their payments only)\nsecret key: ${key.secret_key}\nThis is the only time the key is shown; it is stored as a hash.`);
      }
      case 'key revoke': {
        await m.revokeSecretKey(target);
        return print(json, { id: target, status: 'revoked' }, `revoked ${target}; requests with it now get 401`);
      }
      case 'key list': {
        const rows = await m.listSecretKeys(values.merchant);
        const legacy = rows.some((r) => r.status === 'active' && r.mode === 'both (legacy)');
        const hint = legacy ? `\nA "both (legacy)" key acts on sandbox and live alike: replace it with key create --mode sandbox or --mode live, then key revoke it (decision 0028).` : '';
        return print(json, rows, table(rows, ['id', 'merchant_id', 'mode', 'hint', 'label', 'status', 'created_at', 'revoked_at']) + hint);
      }
      case 'vault rotate': {
        const n = (await rotateKek(services)) + (await services.compliance.rewrapDocuments());
        await retireKekIds(services.ctx.database.db, services.ctx.vault.activeKekId);
        await writeAudit(services.ctx, services.ctx.database.db, { actor: cliActor(), action: 'vault.rotate', merchantId: null, target: services.ctx.vault.activeKekId, outcome: 'success', detail: { rewrapped: n } });
        return print(json, { rewrapped: n, kek_id: services.ctx.vault.activeKekId }, `re-wrapped ${n} data keys under ${services.ctx.vault.activeKekId}`);
      }
      case 'payment show': {
        const view = await services.support.show(cliActor(), target);
        return print(json, view, paymentSupportText(view));
      }
      case 'audit list': {
        const rows = await readAuditTrail(services.ctx, cliActor(), values.merchant, 100);
        return print(json, rows, table(rows, ['at', 'actor', 'source', 'action', 'merchant_id', 'target', 'outcome', 'code']));
      }
      case 'compliance list': {
        const rows = await services.compliance.listPending();
        const flat = rows.map((r) => ({ ...r, documents: r.documents.map((d) => `${d.type}:${d.id}`) }));
        return print(json, rows, table(flat, ['merchant_id', 'merchant_name', 'submitted_at', 'status', 'annual_transactions', 'documents']));
      }
      case 'compliance show': {
        const v = await services.compliance.show(cliActor(), target);
        const summary = `${v.merchant_id}: ${v.status}; card data on live channels ${v.card_data_on_live_channels}; expires ${v.expires_at ?? '-'}; missing: ${v.missing.map((x) => x.item).join(', ') || 'nothing'}`;
        return print(json, v, `${summary}

${table(v.documents, ['id', 'type', 'document_date', 'status', 'uploaded_at', 'sha256'])}

${table(v.audit_log, ['at', 'actor', 'source', 'action', 'outcome', 'code'])}`);
      }
      case 'compliance approve': {
        const v = await services.compliance.approve(cliActor(), target, list(values, 'documents'));
        return print(json, v, `approved ${target} (${v.approved_basis}); valid until ${v.expires_at}`);
      }
      case 'compliance reject': {
        const v = await services.compliance.reject(cliActor(), target, required(values, 'reason'), list(values, 'documents'));
        return print(json, v, `rejected the submission of ${target}; the merchant sees the reason`);
      }
      case 'compliance download': {
        const out = required(values, 'out');
        const doc = await services.compliance.download(cliActor(), target, null);
        writeFileSync(out, doc.bytes, { mode: 0o600, flag: 'wx' });
        return print(json, { id: target, file: out, sha256: doc.sha256 }, `wrote ${out} (sha256 ${doc.sha256})`);
      }
      default:
        throw new Error(`${command} is in COMMANDS but has no case here`);
    }
  }, sealing);
}

/**
 * Runs beside the gateway, holding no lock of the data directory: a copy only reads. The
 * keys stay out of it, as they must stay out of the database (decision 0003).
 */
function backup(config: Readonly<Config>, file: string, json: boolean): void {
  if (config.databaseUrl) {
    throw new DomainError(400, 'backup_needs_sqlite', `database backup copies the SQLite file; this gateway uses PostgreSQL (${databaseLocation(config)}): back it up with pg_dump, or base backups with WAL archiving (README "Running on PostgreSQL")`);
  }
  const source = databaseLocation(config);
  let bytes: number;
  try {
    ({ bytes } = backupSqliteFile(source, file));
  } catch (error) {
    if (error instanceof NoDatabaseFileError) throw new DomainError(404, 'database_not_found', error.message);
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new DomainError(409, 'backup_file_exists', `${file} already exists: a backup never replaces a file; name a new one`);
    throw new DomainError(422, 'backup_failed', `could not back up ${source} to ${file} (nothing was left there): ${(error as Error).message}`);
  }
  const keys = config.mode === 'sandbox' ? `VAULT_KEK, VAULT_OLD_KEKS and HMAC_KEY, or ${join(config.dataDir, 'sandbox-keys.json')} where they are not set` : 'VAULT_KEK, VAULT_OLD_KEKS and HMAC_KEY';
  print(
    json,
    { database: source, file, bytes },
    `wrote ${file} (${bytes} bytes): ${source} as it was at one moment, without its free space.\n` +
      `The keys are not in it: keep ${keys} apart from it, in your secret store; without them its card data cannot be opened and a gateway refuses to start on it. Restore: README "Backing up SQLite".`,
  );
}

/**
 * Replaces the SQLite database with a backup, holding DATA_DIR as `serve` does: a gateway
 * running on the file would go on writing to the replaced one, and one starting meanwhile
 * could find the database half put back. The checks are the backup's; the keys are checked
 * by the next boot, which refuses any the backup's data was not sealed under.
 */
async function restore(config: Readonly<Config>, file: string, json: boolean): Promise<void> {
  if (config.databaseUrl) {
    throw new DomainError(400, 'restore_needs_sqlite', `database restore puts back a SQLite file; this gateway uses PostgreSQL (${databaseLocation(config)}): restore it with pg_restore or from your base backups (README "Running on PostgreSQL")`);
  }
  const hold = holdDataDir(config.dataDir, 'database restore replaces its file: stop the gateway first, then run it again');
  const database = databaseLocation(config);
  let kept: string | null;
  try {
    ({ kept } = restoreSqliteFile(file, database, Object.keys(await migrationProvider.getMigrations()), new Date(systemClock.now())));
  } catch (error) {
    if (error instanceof UnrestorableBackupError) throw new DomainError(error.code === 'backup_not_found' ? 404 : 422, error.code, `${error.message}; ${database} was left as it was`);
    throw new DomainError(422, 'restore_failed', `could not restore ${file} to ${database}: ${(error as Error).message}; run it again once that is fixed (a restore cut short leaves the old database or the backup in place, never a mix)`);
  } finally {
    hold.release();
  }
  print(
    json,
    { database, file, kept },
    `restored ${file} to ${database}` +
      (kept ? `; what was there is kept aside as ${kept} (the database it replaced, or a WAL left without one, with any -wal and -shm: remove them once the restore has proved good, they hold sealed card data)` : '') +
      `.\nStart the gateway with the keys the backup was made under. Payments made after the backup's moment are not in it, and callbacks and e-mails not yet recorded as sent at that moment go out again.`,
  );
}

run(process.argv.slice(2)).catch((error: unknown) => {
  if (error instanceof ConfigError) {
    // The command was right: what is wrong is the environment, which the usage text does not cover.
    const hint = error instanceof DataDirInUseError ? '' : '(settings are environment variables: see "Configuration" in README.md)\n';
    process.stderr.write(`error: ${error.message}\n${hint}`);
    process.exit(2);
  }
  if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
    process.stderr.write(`error: ${(error as Error).message}\n\n${USAGE}\n`);
    process.exit(2);
  }
  if (error instanceof DatabaseUnavailableError) {
    process.stderr.write(`error: ${error.message}\n`);
    process.exit(1);
  }
  if (error instanceof DomainError) {
    // Scripts asked for JSON tell refusals apart by code, and act on their details (a changed
    // submission's pending_documents, each field of a ValidationFailed), as API clients do.
    const refusal = { status: error.status, code: error.code, message: error.message, ...(error.param === undefined ? {} : { param: error.param }), ...error.extra };
    process.stderr.write((process.argv.includes('--json') ? printable(JSON.stringify({ error: refusal })) : `error: ${shown(error.message)} [${error.code}]`) + '\n');
    process.exit(1);
  }
  process.stderr.write(`error: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});

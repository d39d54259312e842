import { accessSync, constants, existsSync, mkdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { makeOnce, readMadeFile, removeAbandonedEmpty, removeStaleTemporaries } from './file-made-once.js';

/**
 * The only reader of process.env. Everything the gateway can be told from outside is
 * listed here, validated once at boot and frozen; the README's configuration table
 * mirrors this file.
 */
export type GatewayMode = 'sandbox' | 'live';

export interface Config {
  mode: GatewayMode;
  host: string;
  port: number;
  /** Base URL customers' browsers reach us at; used to build `redirect_url`. */
  publicUrl: string;
  dataDir: string;
  /** PostgreSQL connection string; when absent the embedded SQLite file is used. */
  databaseUrl: string | undefined;
  /** PostgreSQL: connections of the process's main pool (it opens three more: LISTEN and two for insert batches). */
  databasePoolSize: number;
  /** Active key-encrypting key and older ones still accepted for unwrapping. */
  keks: { active: Kek; all: Map<string, Buffer> };
  /** Keys card fingerprints, idempotency request hashes and hosted-page tokens (through HKDF sub-keys): as secret as the KEK. */
  hmacKey: Buffer;
  hostedPageTtlMs: number;
  authorisationValidityMs: number;
  idempotencyTtlMs: number;
  bodyLimitBytes: number;
  logLevel: string;
  smtpUrl: string | undefined;
  mailFrom: string;
  webhookTimeoutMs: number;
  /** Sandbox only: allow callbacks to loopback/private addresses for local development. */
  webhookAllowPrivate: boolean;
  /** Retry schedule for callbacks and e-mail: full-jitter exponential backoff inside a window. */
  webhookRetryBaseMs: number;
  webhookRetryMaxDelayMs: number;
  webhookRetryWindowMs: number;
  /** Callbacks and e-mails in flight at once per process. */
  dispatchConcurrency: number;
  /** How often the dispatcher looks for work when nothing woke it. */
  dispatchPollMs: number;
  /** Milliseconds a group commit waits for more writes; 0 = commit what arrived in this tick. */
  groupCommitWindowMs: number;
  workersEnabled: boolean;
  /** Who may use the operator API: OPERATOR_TOKEN (shared, name null) and OPERATOR_TOKENS (one a person). Empty: no operator API. */
  operatorTokens: readonly OperatorToken[];
  /** Where the operator API listens instead of beside the payment API (OPERATOR_PORT); undefined: beside it. */
  operatorListen: { host: string; port: number } | undefined;
  /** Proxies whose X-Forwarded-For names the client (addresses, CIDR ranges, proxy-addr's keywords); false: none. */
  trustProxy: string[] | false;
  /** Requests a second (and at once) each merchant's secret keys may make to this process; undefined: no limit. */
  merchantRateLimit: MerchantRateLimit | undefined;
  /** Who authorises: the connector payments are sent to (this build has the sandbox simulator only). */
  acquirer: AcquirerName;
  /** Settings that work but deserve the operator's attention, logged at boot. */
  notices: readonly string[];
}

/** A token bucket's settings: requests a second on average, and at once after a quiet spell. */
export interface MerchantRateLimit {
  perSecond: number;
  burst: number;
}

export interface OperatorToken {
  /** The operator the token belongs to, recorded in the audit log; null for the shared OPERATOR_TOKEN. */
  name: string | null;
  token: string;
}

/** Acquirer connectors in this build; a real one implements src/ports/acquirer.ts. */
export const ACQUIRERS = ['sandbox'] as const;
export type AcquirerName = (typeof ACQUIRERS)[number];

export interface Kek {
  id: string;
  key: Buffer;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

type Env = Record<string, string | undefined>;

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+$/.test(raw)) throw new ConfigError(`${name} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(`${name} must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (raw === 'true' || raw === '1') return true;
  if (raw === 'false' || raw === '0') return false;
  throw new ConfigError(`${name} must be true or false, got "${raw}"`);
}

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

function logLevel(raw: string | undefined): string {
  if (raw === undefined || raw === '') return 'info';
  if (!LOG_LEVELS.includes(raw)) throw new ConfigError(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}, got "${raw}"`);
  return raw;
}

/**
 * An SMTP server's URL, checked at boot rather than at the first e-mail. The value is never
 * echoed: it usually carries the server's password.
 */
function smtpUrl(raw: string | undefined): string | undefined {
  if (!raw) return undefined;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('SMTP_URL must be a URL such as smtp://user:password@mail.example.com:587 (or smtps://… for TLS from the start)');
  }
  if (url.protocol !== 'smtp:' && url.protocol !== 'smtps:') throw new ConfigError(`SMTP_URL must start with smtp:// or smtps://, got "${url.protocol}//"`);
  if (!url.hostname) throw new ConfigError('SMTP_URL names no host');
  return raw;
}

/** A sender for the From header: an address, alone or after a display name; one line, so no header can be smuggled in. */
const MAIL_FROM = /^(?:[^\r\n<>]*<[^\s<>@]+@[^\s<>@]+>|[^\s<>@]+@[^\s<>@]+)$/;

function mailFrom(raw: string | undefined): string {
  if (!raw) return 'tZero Pay <no-reply@tzero-pay.test>';
  if (!MAIL_FROM.test(raw)) throw new ConfigError(`MAIL_FROM must be an e-mail address, alone or as "Name <address>", got "${raw.slice(0, 100)}"`);
  return raw;
}

/**
 * Made at boot (owner-only) if missing, and proven writable here: the SQLite file, the
 * sandbox's keys and mail land in it, and a failure later would be a driver's stack trace.
 */
function dataDirectory(raw: string | undefined): string {
  const dir = resolve(raw || './data');
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    accessSync(dir, constants.W_OK | constants.X_OK);
  } catch (error) {
    throw new ConfigError(`DATA_DIR must be a directory the gateway can create and write to; ${dir} cannot be used: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  return dir;
}

/** Letters, digits, dots and hyphens, or an IP address: the default PUBLIC_URL is made from HOST, and `pay/ments` would make a wrong one. */
function listenHost(name: string, raw: string | undefined): string {
  if (!raw) return '127.0.0.1';
  if (isIP(raw) === 0 && !/^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(raw)) throw new ConfigError(`${name} must be a host name or IP address to listen on, got "${raw.slice(0, 100)}"`);
  return raw;
}

/** `id:base64key`; the key must be exactly 32 bytes (AES-256). */
function parseKek(name: string, raw: string): Kek {
  const m = /^([A-Za-z0-9_-]{1,32}):([A-Za-z0-9+/=]+)$/.exec(raw.trim());
  if (!m) throw new ConfigError(`${name} must look like "<key-id>:<base64 of 32 bytes>"`);
  const key = Buffer.from(m[2]!, 'base64');
  if (key.length !== 32) throw new ConfigError(`${name}: key "${m[1]}" must decode to 32 bytes, got ${key.length}`);
  return { id: m[1]!, key };
}

/** The value of the JSON that `read` gives, or null when it cannot be read or parsed. */
function jsonOrNull(read: () => string): unknown {
  try {
    return JSON.parse(read()) as unknown;
  } catch {
    return null;
  }
}

interface SandboxKeys {
  kek: string;
  hmac_key: string;
}

/**
 * In sandbox mode a newcomer must not have to invent keys: generate them once into a
 * 0600 file beside (never inside) the database, so the KEK still lives apart from the
 * ciphertext it protects.
 */
function sandboxKeys(dataDir: string): SandboxKeys & { file: string } {
  const file = join(dataDir, 'sandbox-keys.json');
  removeStaleTemporaries(file);
  removeAbandonedEmpty(file);
  if (!existsSync(file)) {
    const keys: SandboxKeys = {
      kek: `sandbox1:${randomBytes(32).toString('base64')}`,
      hmac_key: randomBytes(32).toString('base64'),
    };
    // Processes starting together on a fresh DATA_DIR: one makes the file, and the others
    // use its keys (file-made-once.ts).
    if (makeOnce(file, JSON.stringify(keys, null, 2) + '\n')) return { ...keys, file };
  }
  return { ...keptSandboxKeys(file), file };
}

function keptSandboxKeys(file: string): SandboxKeys {
  const kept = jsonOrNull(() => readMadeFile(file)) as Partial<Record<keyof SandboxKeys, unknown>> | null;
  if (typeof kept?.kek !== 'string' || typeof kept.hmac_key !== 'string') {
    throw new ConfigError(`${file} is unreadable or damaged (it needs "kek" and "hmac_key"); restore it (card data sealed under its keys cannot be read without it) or set VAULT_KEK and HMAC_KEY`);
  }
  return { kek: kept.kek, hmac_key: kept.hmac_key };
}

export function loadConfig(env: Env = process.env): Readonly<Config> {
  const mode = (env.GATEWAY_MODE ?? 'sandbox') as GatewayMode;
  if (mode !== 'sandbox' && mode !== 'live') throw new ConfigError(`GATEWAY_MODE must be sandbox or live, got "${mode}"`);
  const host = listenHost('HOST', env.HOST);
  const port = int(env, 'PORT', 8080, 0, 65535);
  const tokens = operatorTokens(env, mode);
  const dataDir = dataDirectory(env.DATA_DIR);

  let kekRaw = env.VAULT_KEK;
  let hmacRaw = env.HMAC_KEY;
  // Where each key came from, so an error names what the operator has to fix.
  let kekSource = 'VAULT_KEK';
  let hmacSource = 'HMAC_KEY';
  if (mode === 'live') {
    const missing = ['VAULT_KEK', 'HMAC_KEY', 'DATABASE_URL', 'PUBLIC_URL'].filter((n) => !env[n]);
    if (missing.length) throw new ConfigError(`live mode needs ${missing.join(', ')}; refusing to start`);
  } else if (!kekRaw || !hmacRaw) {
    const generated = sandboxKeys(dataDir);
    if (!kekRaw) [kekRaw, kekSource] = [generated.kek, `"kek" in ${generated.file}`];
    if (!hmacRaw) [hmacRaw, hmacSource] = [generated.hmac_key, `"hmac_key" in ${generated.file}`];
  }
  const active = parseKek(kekSource, kekRaw!);
  const all = new Map<string, Buffer>([[active.id, active.key]]);
  for (const old of (env.VAULT_OLD_KEKS ?? '').split(',').filter(Boolean)) {
    const k = parseKek('VAULT_OLD_KEKS', old);
    // One id, two keys: whichever won, data sealed under the other would never open again.
    if (all.has(k.id)) throw new ConfigError(`VAULT_OLD_KEKS repeats the key id "${k.id}" (of VAULT_KEK or an earlier old key); every key needs an id of its own`);
    all.set(k.id, k.key);
  }
  const hmacKey = Buffer.from(hmacRaw!.trim(), 'base64');
  if (hmacKey.length < 32) throw new ConfigError(`${hmacSource} must be base64 of at least 32 bytes (e.g. openssl rand -base64 32)`);
  const notices: string[] = [];
  // Hex digits, base64url and missing padding are read as the base64 they spell, as they
  // always were: refusing such a key now would make its deployment change it, which ends
  // open page links, every fingerprint and idempotency comparison. The operator is told.
  if (/^[0-9a-f]+$/i.test(hmacRaw!.trim()) || hmacKey.toString('base64') !== hmacRaw!.trim()) {
    notices.push(
      `${hmacSource} is not written as canonical base64 (hex digits, base64url or missing padding); it is read as the base64 it spells. Keep it as it is (changing it ends open payment page links, changes every card fingerprint and idempotency comparison); make new keys with openssl rand -base64 32`,
    );
  }

  // The port the system picks is known only once listening, after every link is made from this.
  if (port === 0 && !env.PUBLIC_URL) {
    throw new ConfigError('PORT 0 (any free port) needs PUBLIC_URL: the default PUBLIC_URL, http://HOST:PORT, would name port 0 and every payment page link would lead nowhere');
  }
  const publicUrl = (env.PUBLIC_URL || `http://${host.includes(':') ? `[${host}]` : host}:${port}`).replace(/\/+$/, '');
  const publicScheme = URL.canParse(publicUrl) ? new URL(publicUrl).protocol : undefined;
  if (publicScheme !== 'https:' && publicScheme !== 'http:') {
    throw new ConfigError(`PUBLIC_URL must be an absolute http:// or https:// URL, got "${publicUrl.slice(0, 200)}"`);
  }
  // A payment page's URL is its only credential, and its CSRF cookie is Secure only on HTTPS.
  if (mode === 'live' && publicScheme !== 'https:') {
    throw new ConfigError('PUBLIC_URL must be an https:// URL in live mode: the payment page links it makes are credentials');
  }
  const databaseUrl = env.DATABASE_URL || undefined;
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new ConfigError('DATABASE_URL must be a postgres:// or postgresql:// URL');
  }
  const webhookAllowPrivate = bool(env, 'WEBHOOK_ALLOW_PRIVATE', mode === 'sandbox');
  if (mode === 'live' && webhookAllowPrivate) throw new ConfigError('WEBHOOK_ALLOW_PRIVATE cannot be enabled in live mode');

  const minute = 60_000;
  const webhookRetryBaseMs = int(env, 'WEBHOOK_RETRY_BASE_SECONDS', 30, 1, 3600) * 1000;
  const webhookRetryMaxDelayMs = int(env, 'WEBHOOK_RETRY_MAX_DELAY_SECONDS', 21_600, 1, 86_400) * 1000;
  if (webhookRetryBaseMs > webhookRetryMaxDelayMs) {
    throw new ConfigError('WEBHOOK_RETRY_BASE_SECONDS must not exceed WEBHOOK_RETRY_MAX_DELAY_SECONDS (the first wait is capped by the longest one)');
  }
  return Object.freeze({
    mode,
    host,
    port,
    publicUrl,
    dataDir,
    databaseUrl,
    databasePoolSize: databasePoolSize(env, databaseUrl),
    keks: { active, all },
    hmacKey,
    hostedPageTtlMs: int(env, 'HOSTED_PAGE_TTL_SECONDS', 900, 30, 86_400) * 1000,
    authorisationValidityMs: int(env, 'AUTHORISATION_VALIDITY_DAYS', 7, 1, 30) * 24 * 60 * minute,
    idempotencyTtlMs: int(env, 'IDEMPOTENCY_TTL_HOURS', 24, 24, 720) * 60 * minute,
    bodyLimitBytes: int(env, 'BODY_LIMIT_BYTES', 131_072, 1024, 10_485_760),
    logLevel: logLevel(env.LOG_LEVEL),
    smtpUrl: smtpUrl(env.SMTP_URL),
    mailFrom: mailFrom(env.MAIL_FROM),
    webhookTimeoutMs: int(env, 'WEBHOOK_TIMEOUT_MS', 10_000, 100, 60_000),
    webhookAllowPrivate,
    webhookRetryBaseMs,
    webhookRetryMaxDelayMs,
    webhookRetryWindowMs: int(env, 'WEBHOOK_RETRY_WINDOW_HOURS', 72, 1, 168) * 60 * minute,
    dispatchConcurrency: int(env, 'DISPATCH_CONCURRENCY', 256, 1, 1024),
    dispatchPollMs: int(env, 'DISPATCH_POLL_MS', 1000, 10, 60_000),
    groupCommitWindowMs: int(env, 'GROUP_COMMIT_WINDOW_MS', 0, 0, 50),
    workersEnabled: bool(env, 'WORKERS', true),
    operatorTokens: tokens,
    operatorListen: operatorListen(env, port, tokens),
    trustProxy: trustProxy(env.TRUST_PROXY),
    merchantRateLimit: merchantRateLimit(env),
    acquirer: acquirer(env.ACQUIRER, mode),
    notices,
  });
}

/** Set without DATABASE_URL, it would size nothing: the operator meant a PostgreSQL gateway and is running on SQLite. */
function databasePoolSize(env: Env, databaseUrl: string | undefined): number {
  if (env.DATABASE_POOL_SIZE && !databaseUrl) throw new ConfigError('DATABASE_POOL_SIZE needs DATABASE_URL: it sizes the PostgreSQL pool, and without DATABASE_URL the gateway runs on SQLite');
  return int(env, 'DATABASE_POOL_SIZE', 20, 1, 1000);
}

/** RATE_LIMIT_PER_SECOND 0 (the default) is no limit; a burst alone would limit nothing. */
function merchantRateLimit(env: Env): MerchantRateLimit | undefined {
  const perSecond = int(env, 'RATE_LIMIT_PER_SECOND', 0, 0, 1_000_000);
  if (perSecond === 0) {
    if (env.RATE_LIMIT_BURST) throw new ConfigError('RATE_LIMIT_BURST needs RATE_LIMIT_PER_SECOND (the rate the burst refills at)');
    return undefined;
  }
  return { perSecond, burst: int(env, 'RATE_LIMIT_BURST', perSecond, 1, 1_000_000) };
}

/**
 * Live mode names its acquirer: the only connector here is the sandbox simulator, which
 * approves test cards and moves no money, and no live gateway may end up on it by default.
 */
function acquirer(raw: string | undefined, mode: Config['mode']): AcquirerName {
  if (!raw) {
    if (mode === 'live') throw new ConfigError(`live mode needs ACQUIRER (one of: ${ACQUIRERS.join(', ')}); "sandbox" is a simulator that moves no money`);
    return 'sandbox';
  }
  if (!(ACQUIRERS as readonly string[]).includes(raw)) throw new ConfigError(`ACQUIRER must be one of: ${ACQUIRERS.join(', ')} (got "${raw.slice(0, 40)}")`);
  return raw as AcquirerName;
}

const PROXY_KEYWORDS = new Set(['loopback', 'linklocal', 'uniquelocal']);

/**
 * The proxies in front of the gateway, by address: the client address audits and the access
 * log record is taken from X-Forwarded-For only when it arrives from one of them. Trusting
 * every sender would let any client write that address, so `true` and `*` are refused.
 */
function trustProxy(raw: string | undefined): string[] | false {
  if (raw === undefined || raw.trim() === '') return false;
  const entries = raw.split(',').map((entry) => entry.trim());
  for (const entry of entries) {
    const [address = '', prefix, extra] = entry.split('/');
    const family = isIP(address);
    // A range of every address (/0), or of every IPv4 address as a dual-stack socket sees it
    // (::ffff:0:0/96), is `true` by another name.
    const validPrefix = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) >= 1 && Number(prefix) <= (family === 6 ? 128 : 32));
    const mapped = family === 6 && /^::ffff:/i.test(address) && prefix !== undefined;
    if (!PROXY_KEYWORDS.has(entry) && (family === 0 || !validPrefix || mapped || extra !== undefined)) {
      throw new ConfigError(`TRUST_PROXY lists the addresses of the proxies in front of the gateway, comma-separated: IP addresses, CIDR ranges (10.0.0.0/8) or loopback, linklocal, uniquelocal; got "${entry.slice(0, 60)}"`);
    }
  }
  return entries;
}

const MIN_LIVE_OPERATOR_TOKEN = 32;

const OPERATOR_NAME = /^[A-Za-z0-9._@-]{1,64}$/;

/**
 * The operator API's bearer tokens: the shared OPERATOR_TOKEN and OPERATOR_TOKENS'
 * `name=token` pairs, one a person, so the audit log says who acted (PCI DSS 8.2.1, 10.2.1)
 * rather than what a header claimed. In live mode each is long enough that guessing it is
 * hopeless. Messages name the entry, never its token.
 */
function operatorTokens(env: Env, mode: Config['mode']): OperatorToken[] {
  const tokens: OperatorToken[] = [];
  const long = (token: string, what: string) => {
    if (mode === 'live' && token.length < MIN_LIVE_OPERATOR_TOKEN) {
      throw new ConfigError(`${what} must be at least ${MIN_LIVE_OPERATOR_TOKEN} characters in live mode (e.g. openssl rand -hex 32)`);
    }
  };
  if (env.OPERATOR_TOKEN) {
    long(env.OPERATOR_TOKEN, 'OPERATOR_TOKEN');
    tokens.push({ name: null, token: env.OPERATOR_TOKEN });
  }
  for (const [i, entry] of (env.OPERATOR_TOKENS ?? '').split(',').entries()) {
    if (entry.trim() === '') continue;
    const at = entry.indexOf('=');
    const name = entry.slice(0, Math.max(at, 0)).trim();
    const token = entry.slice(at + 1).trim();
    const which = `OPERATOR_TOKENS entry ${i + 1}`;
    if (at < 0 || !OPERATOR_NAME.test(name)) throw new ConfigError(`${which} must be name=token, the name 1-64 of A-Z a-z 0-9 . _ @ - (e.g. alice=$(openssl rand -hex 32))`);
    // The name is not quoted either: an entry written token=name holds the token there.
    if (token === '' || /\s/.test(token)) throw new ConfigError(`${which} needs a token without spaces after "="`);
    long(token, `${which}'s token`);
    if (tokens.some((t) => t.name === name)) throw new ConfigError(`${which} repeats an earlier entry's name; every operator gets one token`);
    if (tokens.some((t) => t.token === token)) throw new ConfigError(`${which}'s token is also another operator's or OPERATOR_TOKEN: the audit log could not tell them apart`);
    tokens.push({ name, token });
  }
  return tokens;
}

/** OPERATOR_PORT moves the operator API to a listener of its own, on loopback unless OPERATOR_HOST says otherwise. */
function operatorListen(env: Env, publicPort: number, tokens: readonly OperatorToken[]): Config['operatorListen'] {
  if (!env.OPERATOR_PORT) {
    if (env.OPERATOR_HOST) throw new ConfigError('OPERATOR_HOST needs OPERATOR_PORT: without it the operator API listens beside the payment API');
    return undefined;
  }
  // The tokens as read, not the variables: OPERATOR_TOKENS=' , ' names nobody.
  if (tokens.length === 0) throw new ConfigError('OPERATOR_PORT needs OPERATOR_TOKEN or OPERATOR_TOKENS: without a token there is no operator API to serve');
  const port = int(env, 'OPERATOR_PORT', 0, 0, 65535);
  if (port !== 0 && port === publicPort) throw new ConfigError(`OPERATOR_PORT must differ from PORT (${publicPort}): the operator API gets a listener of its own`);
  return { host: listenHost('OPERATOR_HOST', env.OPERATOR_HOST), port };
}

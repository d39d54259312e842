import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { refuseCardNumbers, urlAsRead } from '../domain/card-number-in-text.js';
import { DomainError } from '../domain/errors.js';
import { quotedId } from '../domain/ids.js';
import { currencyHint, isCurrency } from '../domain/money.js';
import { isEmail } from '../domain/address.js';
import { type KeyMode, KEY_MODES, formatSecretKey, isWellFormedSecretKey, secretKeyHint } from '../domain/secret-key.js';
import { isEventType } from '../domain/event-types.js';
import type { ChannelsTable, MerchantsTable, Schema } from '../adapters/storage/schema.js';
import { compiledOnce } from '../adapters/storage/compiled.js';
import type { AppContext } from './context.js';
import { LookupCache } from './lookup-cache.js';
import { type Actor, GATEWAY_ACTOR, writeAudit } from './audit.js';
import type { Kysely } from 'kysely';
import { isUniqueViolation } from './idempotency.js';

function referenceTaken(reference: string): DomainError {
  return new DomainError(409, 'channel_reference_taken', `channel reference "${reference}" is already assigned`, '/reference');
}

export interface ChannelInput {
  reference: string;
  name: string;
  mode: 'sandbox' | 'live';
  currencies: string[];
  returnUrls: string[];
  notifyEmails: string[];
  notifyEvents?: string[];
  customerReceipts?: boolean;
  /** Customers' address for questions about a payment; null removes it. */
  supportEmail?: string | null;
}

export interface ChannelView {
  id: string;
  object: 'channel';
  merchant_id: string;
  reference: string;
  name: string;
  mode: 'sandbox' | 'live';
  currencies: string[];
  return_urls: string[];
  notify_emails: string[];
  notify_events: string[];
  customer_receipts: boolean;
  support_email: string | null;
  created_at: string;
  updated_at: string;
}

/**
 * Whatever ends a payment, and whatever leaves money not taken or not returned as asked: a
 * merchant told "authorised" and never "could not be captured" would ship unpaid goods.
 */
export const DEFAULT_NOTIFY_EVENTS = [
  'payment.authorised',
  'payment.captured',
  'payment.partially_captured',
  'payment.capture_failed',
  'payment.void_failed',
  'payment.declined',
  'payment.failed',
  'payment.expired',
  'payment.cancelled',
  'refund.failed',
];

/** The gateway's own sandbox page; kept relative so it follows PUBLIC_URL. */
export const SANDBOX_RETURN_PATH = '/sandbox/return';

const REFERENCE = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;

export function hashSecretKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function channelView(row: ChannelsTable): ChannelView {
  return {
    id: row.id,
    object: 'channel',
    merchant_id: row.merchant_id,
    reference: row.reference,
    name: row.name,
    mode: row.mode,
    currencies: JSON.parse(row.currencies) as string[],
    return_urls: JSON.parse(row.return_urls) as string[],
    notify_emails: JSON.parse(row.notify_emails) as string[],
    notify_events: JSON.parse(row.notify_events) as string[],
    customer_receipts: row.customer_receipts === 1,
    support_email: row.support_email ?? null,
    created_at: new Date(row.created_at).toISOString(),
    updated_at: new Date(row.updated_at).toISOString(),
  };
}

function checkChannelInput(input: Partial<ChannelInput>, mode: 'sandbox' | 'live'): void {
  const bad = (field: string, message: string): never => {
    throw new DomainError(400, 'invalid_channel', message, `/${field}`);
  };
  // Names and return URLs are kept in clear and shown to customers (the payment page, e-mails,
  // the return redirect): checked before any message below quotes them back.
  refuseCardNumbers({ reference: input.reference, name: input.name, return_urls: input.returnUrls?.map(urlAsRead), notify_emails: input.notifyEmails, support_email: input.supportEmail });
  if (input.reference !== undefined && !REFERENCE.test(input.reference)) {
    bad('reference', 'reference must be 1-64 characters of letters, digits, "_", ".", ":" or "-", starting with a letter or digit');
  }
  if (input.name !== undefined && (input.name.trim() === '' || input.name.length > 100)) bad('name', 'name must be 1-100 characters');
  if (input.currencies !== undefined) {
    if (input.currencies.length === 0) bad('currencies', 'a channel needs at least one currency');
    for (const c of input.currencies) if (!isCurrency(c)) bad('currencies', `"${c}" is not an active ISO 4217 currency code in upper case.${currencyHint(c)}`);
  }
  if (input.returnUrls !== undefined) {
    if (input.returnUrls.length === 0) bad('return_urls', 'a channel needs at least one return URL');
    for (const u of input.returnUrls) checkReturnUrl(u, mode);
  }
  if (input.notifyEmails !== undefined) for (const e of input.notifyEmails) if (!isEmail(e)) bad('notify_emails', `"${e}" is not an e-mail address`);
  if (input.supportEmail != null && !isEmail(input.supportEmail)) bad('support_email', `"${input.supportEmail}" is not one e-mail address`);
  if (input.notifyEvents !== undefined) {
    for (const e of input.notifyEvents) if (e !== '*' && !isEventType(e)) bad('notify_events', `"${e}" is not an event type`);
  }
}

function checkReturnUrl(u: string, mode: 'sandbox' | 'live'): void {
  if (mode === 'sandbox' && u === SANDBOX_RETURN_PATH) return;
  let url: URL;
  try {
    url = new URL(u);
  } catch {
    throw new DomainError(400, 'invalid_channel', `return URL "${u}" is not an absolute URL`, '/return_urls');
  }
  const allowed = mode === 'live' ? ['https:'] : ['https:', 'http:'];
  if (!allowed.includes(url.protocol)) {
    throw new DomainError(400, 'invalid_channel', `return URL "${u}" must use ${allowed.join(' or ')} in ${mode} mode`, '/return_urls');
  }
  if (url.username || url.password) throw new DomainError(400, 'invalid_channel', `return URL "${u}" must not contain credentials`, '/return_urls');
}

/** Every API request runs this lookup (when the key is not cached), so its SQL is compiled once. */
const keyByHash = compiledOnce((db, hash: string) =>
  db
    .selectFrom('secret_keys')
    // Its merchant's standing in the same read: a suspension changes merchants, which empties the cache as a revocation does.
    .innerJoin('merchants', 'merchants.id', 'secret_keys.merchant_id')
    .select(['secret_keys.id', 'secret_keys.merchant_id', 'secret_keys.key_hash', 'secret_keys.revoked_at', 'secret_keys.mode', 'merchants.suspended_at'])
    .where('secret_keys.key_hash', '=', hash),
);

/** Longest reason `merchant suspend` keeps: a sentence or two for the next operator, not a case file. */
const MAX_SUSPEND_REASON = 500;

/** A merchant as the operator sees it (CLI and operator API): its status, and why when suspended. */
function merchantView(r: MerchantsTable) {
  return {
    id: r.id,
    name: r.name,
    status: r.suspended_at === null ? ('active' as const) : ('suspended' as const),
    created_at: new Date(r.created_at).toISOString(),
    suspended_at: r.suspended_at === null ? null : new Date(r.suspended_at).toISOString(),
    suspended_reason: r.suspended_reason,
  };
}

function newReturnSecret(): string {
  return 'rsk_' + randomBytes(24).toString('hex');
}

export class Merchants {
  /** Every API request looks up its key; keys and channels written here leave it at once. */
  private readonly lookups: LookupCache;

  constructor(
    private readonly ctx: AppContext,
    private readonly actor: Actor = GATEWAY_ACTOR,
  ) {
    this.lookups = LookupCache.of(ctx);
  }

  /** The same use cases, their changes audited as `actor`'s (the CLI's operating-system user). */
  actingAs(actor: Actor): Merchants {
    return new Merchants(this.ctx, actor);
  }

  /**
   * Changes to merchants, channels and credentials are audited in their own transaction
   * (PCI DSS 10.2.1.2 and 10.2.1.5: administrators' actions, credentials made and revoked).
   */
  private audit(ex: Kysely<Schema>, action: string, merchantId: string, target: string, detail: Record<string, unknown> | null = null): Promise<void> {
    return writeAudit(this.ctx, ex, { actor: this.actor, action, merchantId, target, outcome: 'success', detail });
  }

  async createMerchant(name: string): Promise<{ id: string; name: string; created_at: string }> {
    if (!name.trim() || name.length > 200) throw new DomainError(400, 'invalid_merchant', 'merchant name must be 1-200 characters', '/name');
    refuseCardNumbers({ name });
    const row = { id: this.ctx.newId('merchant'), name: name.trim(), created_at: this.ctx.clock.now() };
    await this.ctx.database.write(async (trx) => {
      await trx.insertInto('merchants').values(row).execute();
      await this.audit(trx, 'merchant.create', row.id, row.id, { name: row.name });
    });
    return { ...row, created_at: new Date(row.created_at).toISOString() };
  }

  async listMerchants() {
    const rows = await this.ctx.database.db.selectFrom('merchants').selectAll().orderBy('id').execute();
    return rows.map(merchantView);
  }

  async showMerchant(id: string) {
    return merchantView(await this.requireMerchant(id));
  }

  /**
   * Stops the merchant taking money, at once in every gateway (decision 0027): new
   * authorisations, stored-card charges, captures and its customers' open pages are
   * refused, scheduled captures wait, while reads, refunds, voids and callbacks go on.
   */
  async suspendMerchant(id: string, reason: string): Promise<void> {
    if (!reason.trim() || reason.length > MAX_SUSPEND_REASON) throw new DomainError(400, 'invalid_reason', `the reason must be 1-${MAX_SUSPEND_REASON} characters, got ${reason.length}`, '/reason');
    refuseCardNumbers({ reason });
    await this.requireMerchant(id);
    const suspended = await this.ctx.database.write(async (trx) => {
      const row = await trx.updateTable('merchants').set({ suspended_at: this.ctx.clock.now(), suspended_reason: reason.trim() }).where('id', '=', id).where('suspended_at', 'is', null).returning('id').executeTakeFirst();
      if (row) await this.audit(trx, 'merchant.suspend', id, id, { reason: reason.trim() });
      return row !== undefined;
    });
    if (!suspended) throw new DomainError(409, 'merchant_already_suspended', `merchant ${id} is already suspended: resume it first to give a new reason`);
    this.lookups.drop();
  }

  async resumeMerchant(id: string): Promise<void> {
    await this.requireMerchant(id);
    const resumed = await this.ctx.database.write(async (trx) => {
      const row = await trx.updateTable('merchants').set({ suspended_at: null, suspended_reason: null }).where('id', '=', id).where('suspended_at', 'is not', null).returning('suspended_reason').executeTakeFirst();
      // The reason leaves the merchant's row; the audit keeps which suspension this ended.
      if (row) await this.audit(trx, 'merchant.resume', id, id, { suspended_reason: row.suspended_reason });
      return row !== undefined;
    });
    if (!resumed) throw new DomainError(409, 'merchant_not_suspended', `merchant ${id} is not suspended`);
    this.lookups.drop();
  }

  async requireMerchant(id: string) {
    const row = await this.ctx.database.db.selectFrom('merchants').selectAll().where('id', '=', id).executeTakeFirst();
    if (!row) throw new DomainError(404, 'merchant_not_found', `no merchant ${quotedId(id, 'merchant')}`, '/params/merchantId');
    return row;
  }

  /** Returns the channel and its return-signing secret, which is shown here and by `revealReturnSecret` only. */
  async createChannel(merchantId: string, input: ChannelInput): Promise<{ channel: ChannelView; return_secret: string }> {
    await this.requireMerchant(merchantId);
    checkChannelInput(input, input.mode);
    const taken = await this.ctx.database.db.selectFrom('channels').select('id').where('reference', '=', input.reference).executeTakeFirst();
    if (taken) throw referenceTaken(input.reference);
    const now = this.ctx.clock.now();
    const id = this.ctx.newId('channel');
    const secret = newReturnSecret();
    const row: ChannelsTable = {
      id,
      merchant_id: merchantId,
      reference: input.reference,
      name: input.name,
      mode: input.mode,
      currencies: JSON.stringify(input.currencies),
      return_urls: JSON.stringify(input.returnUrls),
      notify_emails: JSON.stringify(input.notifyEmails),
      notify_events: JSON.stringify(input.notifyEvents ?? DEFAULT_NOTIFY_EVENTS),
      customer_receipts: input.customerReceipts ? 1 : 0,
      support_email: input.supportEmail ?? null,
      return_secret_ct: this.ctx.vault.sealString(id, secret),
      created_at: now,
      updated_at: now,
    };
    try {
      await this.ctx.database.write(async (trx) => {
        await trx.insertInto('channels').values(row).execute();
        await this.audit(trx, 'channel.create', merchantId, id, { reference: row.reference, mode: row.mode });
      });
    } catch (error) {
      // Created by another process since the check above (two gateways' first boot on one empty database).
      if (isUniqueViolation(error)) throw referenceTaken(input.reference);
      throw error;
    }
    this.lookups.drop();
    return { channel: channelView(row), return_secret: secret };
  }

  async updateChannel(reference: string, changes: Partial<Omit<ChannelInput, 'reference'>>): Promise<ChannelView> {
    const row = await this.requireChannelByReference(reference);
    const mode = changes.mode ?? row.mode;
    const modeFixed = () =>
      new DomainError(
        409,
        'channel_mode_fixed',
        `the mode of channel "${reference}" cannot change from ${row.mode}: it has taken payments, which would then count as the other mode (PCI DSS volume, stored cards); create a new channel for ${mode} payments instead`,
        '/mode',
      );
    const hasPayments = (ex: Kysely<Schema>) =>
      // By merchant first: payments have no index on channel_id, one on (merchant_id, id).
      ex.selectFrom('payments').select('payments.id').where('payments.merchant_id', '=', row.merchant_id).where('payments.channel_id', '=', row.id);
    // Said before the settings' own checks: a sandbox channel's relative return URL is no
    // reason to give when no mode change could be made at all.
    if (mode !== row.mode && (await hasPayments(this.ctx.database.db).executeTakeFirst())) throw modeFixed();
    checkChannelInput(changes, mode);
    if (changes.mode && changes.returnUrls === undefined) checkChannelInput({ returnUrls: JSON.parse(row.return_urls) as string[] }, mode);
    const patch: Partial<ChannelsTable> = { updated_at: this.ctx.clock.now() };
    if (changes.name !== undefined) patch.name = changes.name;
    if (changes.mode !== undefined) patch.mode = changes.mode;
    if (changes.currencies !== undefined) patch.currencies = JSON.stringify(changes.currencies);
    if (changes.returnUrls !== undefined) patch.return_urls = JSON.stringify(changes.returnUrls);
    if (changes.notifyEmails !== undefined) patch.notify_emails = JSON.stringify(changes.notifyEmails);
    if (changes.notifyEvents !== undefined) patch.notify_events = JSON.stringify(changes.notifyEvents);
    if (changes.customerReceipts !== undefined) patch.customer_receipts = changes.customerReceipts ? 1 : 0;
    if (changes.supportEmail !== undefined) patch.support_email = changes.supportEmail;
    const updated = await this.ctx.database.write(async (trx) => {
      let update = trx.updateTable('channels').set(patch).where('id', '=', row.id);
      // Payments take their meaning from their channel's mode (PCI DSS volume counts live ones
      // only; a card stored on a sandbox channel is never charged live), so the mode is fixed
      // once there is one. The update checks it itself; an authorisation already in flight
      // (it read the mode before) can still land just after: a window of milliseconds.
      if (changes.mode !== undefined) {
        update = update.where((eb) =>
          eb.or([
            eb('mode', '=', mode),
            eb.not(eb.exists(hasPayments(trx))),
          ]),
        );
      }
      const n = Number((await update.executeTakeFirst()).numUpdatedRows);
      if (n > 0) await this.audit(trx, 'channel.update', row.merchant_id, row.id, { reference, changed: Object.keys(changes).map((k) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`)).sort(), ...(changes.mode ? { mode: changes.mode } : {}) });
      return n;
    });
    // Channels are never deleted: only the mode condition leaves the row unchanged.
    if (updated === 0) throw modeFixed();
    this.lookups.drop();
    return channelView({ ...row, ...patch });
  }

  async requireChannelByReference(reference: string): Promise<ChannelsTable> {
    const row = await this.ctx.database.db.selectFrom('channels').selectAll().where('reference', '=', reference).executeTakeFirst();
    if (!row) throw new DomainError(404, 'channel_not_found', `no channel with reference "${reference}"`, '/channel');
    return row;
  }

  async listChannels(merchantId?: string): Promise<ChannelView[]> {
    let q = this.ctx.database.db.selectFrom('channels').selectAll().orderBy('id');
    if (merchantId) q = q.where('merchant_id', '=', merchantId);
    return (await q.execute()).map(channelView);
  }

  /**
   * What channels and keys saved under earlier versions hold that channel or key create refuses now,
   * with what it means and the command that mends it, for the boot to tell the operator: such a
   * setting keeps working or is skipped where it is used, and nothing else would say so.
   */
  async settingsOutOfRule(): Promise<string[]> {
    const notices: string[] = [];
    for (const channel of await this.listChannels()) {
      const emails = channel.notify_emails.filter((e) => !isEmail(e));
      if (emails.length) {
        notices.push(`channel "${channel.reference}": notify-email ${emails.map((e) => JSON.stringify(e)).join(', ')} is not one e-mail address, so its e-mails are cancelled unsent; replace the list with channel update ${channel.reference} --notify-email …`);
      }
      const withdrawn = channel.currencies.filter((c) => !isCurrency(c));
      if (withdrawn.length) {
        notices.push(`channel "${channel.reference}": currency ${withdrawn.join(', ')} is withdrawn from ISO 4217, so new payments in it are refused (400 invalid_currency; its earlier payments are still captured and refunded); replace the list with channel update ${channel.reference} --currency …`);
      }
    }
    const legacy = await this.ctx.database.db.selectFrom('secret_keys').select(['id', 'merchant_id']).where('mode', 'is', null).where('revoked_at', 'is', null).orderBy('id').execute();
    for (const key of legacy) {
      notices.push(`secret key ${key.id} of merchant ${key.merchant_id} was made before key modes and acts on sandbox and live channels alike: replace it with key create --merchant ${key.merchant_id} --mode sandbox (or --mode live), then key revoke ${key.id} (decision 0028)`);
    }
    return notices;
  }

  /**
   * A new return-signing secret, in use at once (every process's cached channel is dropped):
   * for a secret that leaked. Returns signed just before still carry the old one.
   */
  async rotateReturnSecret(reference: string): Promise<string> {
    const row = await this.requireChannelByReference(reference);
    const secret = newReturnSecret();
    const sealed = this.ctx.vault.sealString(row.id, secret);
    await this.ctx.database.write(async (trx) => {
      await trx.updateTable('channels').set({ return_secret_ct: sealed, updated_at: this.ctx.clock.now() }).where('id', '=', row.id).execute();
      await this.audit(trx, 'channel.return_secret.rotate', row.merchant_id, row.id, { reference });
    });
    this.lookups.drop();
    return secret;
  }

  async revealReturnSecret(reference: string): Promise<string> {
    const row = await this.requireChannelByReference(reference);
    const secret = this.ctx.vault.openString(row.id, row.return_secret_ct);
    // Reading a credential is recorded too: who has seen the secret, should it leak.
    await this.ctx.database.write((trx) => this.audit(trx, 'channel.return_secret.reveal', row.merchant_id, row.id, { reference }));
    return secret;
  }

  /**
   * The plaintext key exists only in this return value; the database keeps its hash. A key is
   * made for sandbox unless live is asked for (decision 0028): one forgotten in a test set-up
   * then cannot move real money.
   */
  async createSecretKey(merchantId: string, label?: string, mode: KeyMode = 'sandbox'): Promise<{ id: string; secret_key: string; mode: KeyMode; last4: string; created_at: string }> {
    if (!KEY_MODES.includes(mode)) throw new DomainError(400, 'invalid_key_mode', `mode must be ${KEY_MODES.join(' or ')}, got ${JSON.stringify(mode)}`, '/mode');
    refuseCardNumbers({ label });
    await this.requireMerchant(merchantId);
    const key = formatSecretKey(randomBytes(16), mode);
    const row = {
      id: this.ctx.newId('secretKey'),
      merchant_id: merchantId,
      key_hash: hashSecretKey(key),
      last4: key.slice(-4),
      label: label ?? null,
      created_at: this.ctx.clock.now(),
      revoked_at: null,
      mode,
    };
    await this.ctx.database.write(async (trx) => {
      await trx.insertInto('secret_keys').values(row).execute();
      await this.audit(trx, 'secret_key.create', merchantId, row.id, row.label === null ? { mode } : { label: row.label, mode });
    });
    this.lookups.drop();
    return { id: row.id, secret_key: key, mode, last4: row.last4, created_at: new Date(row.created_at).toISOString() };
  }

  async revokeSecretKey(keyId: string): Promise<void> {
    const revoked = await this.ctx.database.write(async (trx) => {
      const row = await trx.updateTable('secret_keys').set({ revoked_at: this.ctx.clock.now() }).where('id', '=', keyId).where('revoked_at', 'is', null).returning('merchant_id').executeTakeFirst();
      if (row) await this.audit(trx, 'secret_key.revoke', row.merchant_id, keyId);
      return row !== undefined;
    });
    if (!revoked) {
      const exists = await this.ctx.database.db.selectFrom('secret_keys').select('id').where('id', '=', keyId).executeTakeFirst();
      throw exists
        ? new DomainError(409, 'key_already_revoked', `secret key ${keyId} is already revoked`)
        : new DomainError(404, 'key_not_found', `no secret key ${quotedId(keyId, 'secretKey')}`);
    }
    this.lookups.drop();
  }

  async listSecretKeys(merchantId?: string) {
    let q = this.ctx.database.db.selectFrom('secret_keys').select(['id', 'merchant_id', 'last4', 'label', 'mode', 'created_at', 'revoked_at']).orderBy('id');
    if (merchantId) q = q.where('merchant_id', '=', merchantId);
    return (await q.execute()).map((r) => ({
      id: r.id,
      merchant_id: r.merchant_id,
      hint: secretKeyHint(r.mode, r.last4),
      // A key made before modes acts on both (decision 0028): said so, for the operator to replace it.
      mode: r.mode ?? ('both (legacy)' as const),
      label: r.label,
      status: r.revoked_at === null ? 'active' : 'revoked',
      created_at: new Date(r.created_at).toISOString(),
      revoked_at: r.revoked_at === null ? null : new Date(r.revoked_at).toISOString(),
    }));
  }

  /**
   * Resolve a presented key to its merchant, or null. The lookup is by SHA-256 of a
   * 128-bit random key (no brute force to slow down), in memory or in the database
   * (src/app/lookup-cache.ts), and the stored hash is compared again in constant time
   * so no timing difference depends on how much of it matched.
   */
  async authenticate(presented: string | undefined): Promise<{ merchantId: string; keyId: string; suspended: boolean; mode: KeyMode | null } | null> {
    if (!presented || !isWellFormedSecretKey(presented)) return null;
    const hash = hashSecretKey(presented);
    const key = await this.lookups.secretKey(hash, keyByHash);
    if (!key || !timingSafeEqual(key.hash, Buffer.from(hash, 'hex'))) return null;
    return { merchantId: key.merchantId, keyId: key.keyId, suspended: key.suspended, mode: key.mode };
  }
}

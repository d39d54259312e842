import { type SelectQueryBuilder, sql } from 'kysely';
import type { Idempotency, Recorder, StoredResponse } from './idempotency.js';
import { refuseCardNumbers, urlAsRead } from '../domain/card-number-in-text.js';
import { DomainError } from '../domain/errors.js';
import { quotedId } from '../domain/ids.js';
import { isComplianceEvent } from '../domain/compliance.js';
import { EVENT_TYPES, isEventType } from '../domain/event-types.js';
import type { Schema, WebhookEndpointsTable } from '../adapters/storage/schema.js';
import type { Trx } from '../adapters/storage/database.js';
import { generateSecret } from '../adapters/webhooks/signer.js';
import { checkUrl, type OutboundPolicy, resolveChecked, type Resolver, systemResolver, TargetRefused } from '../adapters/webhooks/ssrf-guard.js';
import { type Actor, writeAudit } from './audit.js';
import { checkChannelMode, type KeyScope } from './key-scope.js';
import type { KeyMode } from '../domain/secret-key.js';
import type { AppContext } from './context.js';
import { iso } from './payment-resource.js';
import { channelReference } from './payment-transitions.js';
import { LookupCache } from './lookup-cache.js';

export interface EndpointInput {
  url: string;
  events: string[];
  /** Channel reference; only that channel's events are sent. */
  channel?: string | null;
  description?: string | null;
}

export interface EndpointPatch extends Partial<EndpointInput> {
  status?: 'enabled' | 'disabled';
}

export interface EndpointView {
  id: string;
  object: 'webhook_endpoint';
  url: string;
  events: string[];
  channel: string | null;
  /** The mode of the events it takes: true live, false sandbox, null both (registered by a key made before modes). */
  livemode: boolean | null;
  description: string | null;
  status: 'enabled' | 'disabled';
  disabled_reason: string | null;
  /** Until then the previous secret also signs (rotation overlap). */
  previous_secret_expires_at: string | null;
  created_at: string;
  updated_at: string;
  /** Only in the answers to create and rotate-secret. */
  secret?: string;
}

export const MAX_ENDPOINTS_PER_MERCHANT = 16;
export const DEFAULT_OVERLAP_HOURS = 24;
export const MAX_OVERLAP_HOURS = 168;
const MAX_URL_LENGTH = 2048;
const DNS_CHECK_TIMEOUT_MS = 5000;

export function outboundPolicy(ctx: AppContext): OutboundPolicy {
  return { allowPrivate: ctx.config.webhookAllowPrivate, requireHttps: ctx.config.mode === 'live' };
}

function normaliseEvents(events: string[]): string[] {
  if (events.length === 0) throw new DomainError(400, 'invalid_events', 'events must name at least one event type, or ["*"] for all', '/events');
  for (const [i, e] of events.entries()) {
    if (e !== '*' && !isEventType(e)) {
      throw new DomainError(400, 'invalid_events', `"${e}" is not an event type; use one of ${EVENT_TYPES.join(', ')} or "*"`, `/events/${i}`);
    }
  }
  return events.includes('*') ? ['*'] : [...new Set(events)].sort();
}

/** What makes a request safe to retry (src/app/idempotency.ts); none for callers that never retry. */
export interface Retry {
  idempotencyKey: string | undefined;
  rawBody: string;
}

const NO_RETRY: Retry = { idempotencyKey: undefined, rawBody: '' };

/**
 * Merchants' callback endpoints. A URL is checked when it is registered (and again on
 * every delivery, since DNS answers change); its signing secret is stored sealed and
 * shown only in the answers to create and rotate-secret.
 */
export class WebhookEndpoints {
  private readonly secrets = new Map<string, string>();

  constructor(
    private readonly ctx: AppContext,
    private readonly idempotency: Idempotency,
    private readonly resolver: Resolver = systemResolver,
  ) {}

  /**
   * The endpoint takes the events of the key's mode only (decision 0032); one registered by a
   * key made before modes takes both. Under Idempotency-Key, a retried create answers with the
   * endpoint (and secret) the first one made.
   */
  async create(actor: Actor, merchantId: string, scope: KeyScope, input: EndpointInput, retry: Retry = NO_RETRY): Promise<StoredResponse> {
    return this.idempotency.run(merchantId, retry.idempotencyKey, 'POST /webhook-endpoints', retry.rawBody, async (record) => {
      const view = await this.register(actor, merchantId, scope, input, record);
      return { status: 201, body: JSON.stringify(view) };
    }, scope);
  }

  private async register(actor: Actor, merchantId: string, scope: KeyScope, input: EndpointInput, record: Recorder): Promise<EndpointView> {
    refuseCardNumbers({ url: urlAsRead(input.url), description: input.description, channel: input.channel, events: input.events });
    const url = await this.checkTarget(input.url);
    const events = normaliseEvents(input.events);
    // Only null (or no channel) means every channel: "" names a channel, one that does not exist, as on update.
    const channelId = input.channel === undefined || input.channel === null ? null : await this.channelId(merchantId, input.channel, scope, scope);
    const now = this.ctx.clock.now();
    const id = this.ctx.newId('webhookEndpoint');
    const secret = generateSecret();
    const row: WebhookEndpointsTable = {
      id,
      merchant_id: merchantId,
      url,
      description: input.description ?? null,
      events: JSON.stringify(events),
      channel_id: channelId,
      mode: scope,
      status: 'enabled',
      disabled_reason: null,
      secret_ct: this.ctx.vault.sealString(id, secret),
      previous_secret_ct: null,
      previous_secret_expires_at: null,
      created_at: now,
      updated_at: now,
      deleted_at: null,
    };
    const { database } = this.ctx;
    const view = { ...(await this.view(row)), secret };
    const full = await database.write(async (trx) => {
      // Counted in the transaction that inserts, after the merchant's row is locked where the
      // database can (SQLite runs one write at a time), so creates arriving together cannot
      // all see room for one more. NO KEY: payments' foreign keys to the merchant still pass.
      if (database.caps.rowLocks) await trx.selectFrom('merchants').select('id').where('id', '=', merchantId).forNoKeyUpdate().execute();
      const active = await trx
        .selectFrom('webhook_endpoints')
        .select(['mode', (eb) => eb.fn.countAll<number>().as('n')])
        .where('merchant_id', '=', merchantId)
        .where('deleted_at', 'is', null)
        .groupBy('mode')
        .execute();
      if (active.reduce((sum, r) => sum + Number(r.n), 0) >= MAX_ENDPOINTS_PER_MERCHANT) return active;
      await trx.insertInto('webhook_endpoints').values(row).execute();
      await this.audit(trx, actor, 'webhook_endpoint.create', row, { url: urlOrigin(url), events, channel: input.channel ?? null, mode: scope ?? 'both' });
      await record(trx, 201, JSON.stringify(view));
      return null;
    });
    if (full !== null) throw tooManyEndpoints(full);
    // The outbox decides from the cached endpoints whether an event needs fanning out:
    // this process sees the endpoint before the merchant does (others on the trigger's notification).
    LookupCache.of(this.ctx).drop();
    return view;
  }

  async list(merchantId: string, scope: KeyScope): Promise<EndpointView[]> {
    const query = this.ctx.database.db.selectFrom('webhook_endpoints').selectAll().where('merchant_id', '=', merchantId).where('deleted_at', 'is', null);
    const rows = await endpointsIn(query, scope).orderBy('id').execute();
    return Promise.all(rows.map((r) => this.view(r)));
  }

  async get(merchantId: string, id: string, scope: KeyScope): Promise<EndpointView> {
    return this.view(await this.require(merchantId, id, scope));
  }

  async update(actor: Actor, merchantId: string, id: string, scope: KeyScope, patch: EndpointPatch): Promise<EndpointView> {
    refuseCardNumbers({ url: urlAsRead(patch.url), description: patch.description, channel: patch.channel, events: patch.events });
    const row = await this.require(merchantId, id, scope);
    const changes: Partial<WebhookEndpointsTable> = { updated_at: this.ctx.clock.now() };
    if (patch.url !== undefined) changes.url = await this.checkTarget(patch.url);
    if (patch.events !== undefined) changes.events = JSON.stringify(normaliseEvents(patch.events));
    if (patch.channel !== undefined) changes.channel_id = patch.channel === null ? null : await this.channelId(merchantId, patch.channel, row.mode, scope);
    if (patch.description !== undefined) changes.description = patch.description;
    if (patch.status !== undefined && patch.status !== row.status) {
      changes.status = patch.status;
      changes.disabled_reason = patch.status === 'disabled' ? 'disabled by the merchant' : null;
    }
    await this.ctx.database.write(async (trx) => {
      await trx.updateTable('webhook_endpoints').set(changes).where('id', '=', row.id).execute();
      await this.audit(trx, actor, 'webhook_endpoint.update', row, {
        changed: Object.keys(patch).sort(),
        ...(changes.url !== undefined && { url: urlOrigin(changes.url) }),
        ...(changes.status !== undefined && { status: changes.status }),
      });
    });
    LookupCache.of(this.ctx).drop();
    return this.view({ ...row, ...changes });
  }

  /** Pending deliveries to a deleted endpoint are cancelled; its history stays visible on the events. */
  async delete(actor: Actor, merchantId: string, id: string, scope: KeyScope): Promise<{ id: string; object: 'webhook_endpoint'; deleted: true }> {
    const row = await this.require(merchantId, id, scope);
    const now = this.ctx.clock.now();
    await this.ctx.database.transaction(async (trx) => {
      await trx.updateTable('webhook_endpoints').set({ deleted_at: now, updated_at: now, status: 'disabled', disabled_reason: 'deleted' }).where('id', '=', row.id).execute();
      await cancelPendingDeliveries(trx, row.id, now, 'the endpoint was deleted');
      await this.audit(trx, actor, 'webhook_endpoint.delete', row, { url: urlOrigin(row.url) });
    });
    LookupCache.of(this.ctx).drop();
    return { id: row.id, object: 'webhook_endpoint', deleted: true };
  }

  /**
   * A new secret signs from now on; the old one keeps signing too (a second `v1,`
   * signature) until the overlap ends, so receivers can switch without losing a message.
   * That end is a promise: while it stands, another rotation with an overlap is refused
   * (it would drop the old secret at once), and one with overlap_hours 0 ends it on purpose.
   * Under Idempotency-Key, a retried rotation answers with the secret the first one made.
   */
  async rotateSecret(actor: Actor, merchantId: string, id: string, scope: KeyScope, overlapHours = DEFAULT_OVERLAP_HOURS, retry: Retry = NO_RETRY): Promise<StoredResponse> {
    if (!Number.isInteger(overlapHours) || overlapHours < 0 || overlapHours > MAX_OVERLAP_HOURS) {
      // The route's schema refuses it first, as out_of_range: the same code for the same rule.
      throw new DomainError(400, 'out_of_range', `overlap_hours must be a whole number from 0 to ${MAX_OVERLAP_HOURS}`, '/overlap_hours');
    }
    return this.idempotency.run(merchantId, retry.idempotencyKey, `POST /webhook-endpoints/${id}/rotate-secret`, retry.rawBody, async (record) => {
      const row = await this.require(merchantId, id, scope);
      const now = this.ctx.clock.now();
      const secret = generateSecret();
      const changes: Partial<WebhookEndpointsTable> = {
        secret_ct: this.ctx.vault.sealString(row.id, secret),
        previous_secret_ct: overlapHours > 0 ? row.secret_ct : null,
        previous_secret_expires_at: overlapHours > 0 ? now + overlapHours * 3_600_000 : null,
        updated_at: now,
      };
      const body = JSON.stringify({ ...(await this.view({ ...row, ...changes })), secret });
      const rotated = await this.ctx.database.write(async (trx) => {
        // Checked by the UPDATE itself, so two rotations at once cannot both pass.
        let update = trx.updateTable('webhook_endpoints').set(changes).where('id', '=', row.id).where('secret_ct', '=', row.secret_ct);
        if (overlapHours > 0) update = update.where((eb) => eb.or([eb('previous_secret_expires_at', 'is', null), eb('previous_secret_expires_at', '<=', now)]));
        const result = await update.executeTakeFirst();
        if (Number(result.numUpdatedRows) === 0) return false;
        await this.audit(trx, actor, 'webhook_endpoint.secret.rotate', row, { overlap_hours: overlapHours });
        await record(trx, 200, body);
        return true;
      });
      if (!rotated) throw await this.rotationInProgress(merchantId, id, scope);
      return { status: 200, body };
    }, scope);
  }

  /**
   * Where a merchant's callbacks go, and who can sign them, is theirs to change with any of
   * their keys: the audit log says which key did it, from where (PCI DSS 10.2.1.2). A URL is
   * recorded as its origin only, since merchants put tokens in paths and queries.
   */
  private audit(trx: Trx, actor: Actor, action: string, row: WebhookEndpointsTable, detail: Record<string, unknown>): Promise<void> {
    return writeAudit(this.ctx, trx, { actor, action, merchantId: row.merchant_id, target: row.id, outcome: 'success', detail });
  }

  private async rotationInProgress(merchantId: string, id: string, scope: KeyScope): Promise<DomainError> {
    const current = await this.require(merchantId, id, scope);
    if (current.previous_secret_expires_at === null || current.previous_secret_expires_at <= this.ctx.clock.now()) {
      return new DomainError(409, 'concurrent_modification', 'another request rotated this secret at the same moment; read the endpoint and rotate again if you still need to');
    }
    const until = iso(current.previous_secret_expires_at);
    return new DomainError(
      409,
      'rotation_in_progress',
      `the secret before the current one is still accepted until ${until}: rotating again now would drop it at once. Rotate after then (Retry-After), or send overlap_hours 0 to end the overlap now`,
      '/overlap_hours',
      undefined,
      // The refusal ends by itself when the overlap does.
      Math.max(1, Math.ceil((current.previous_secret_expires_at - this.ctx.clock.now()) / 1000)),
    );
  }

  /** The secrets that sign a message sent now: the current one, and the previous during its overlap. */
  signingSecrets(row: Pick<WebhookEndpointsTable, 'id' | 'secret_ct' | 'previous_secret_ct' | 'previous_secret_expires_at'>, now: number): string[] {
    const out = [this.open(row.id, row.secret_ct)];
    if (row.previous_secret_ct && row.previous_secret_expires_at !== null && row.previous_secret_expires_at > now) out.push(this.open(row.id, row.previous_secret_ct));
    return out;
  }

  private open(id: string, sealed: string): string {
    let secret = this.secrets.get(sealed);
    if (secret === undefined) {
      if (this.secrets.size >= 10_000) this.secrets.clear();
      secret = this.ctx.vault.openString(id, sealed);
      this.secrets.set(sealed, secret);
    }
    return secret;
  }

  private async require(merchantId: string, id: string, scope: KeyScope): Promise<WebhookEndpointsTable> {
    const query = this.ctx.database.db.selectFrom('webhook_endpoints').selectAll().where('id', '=', id).where('merchant_id', '=', merchantId).where('deleted_at', 'is', null);
    const row = await endpointsIn(query, scope).executeTakeFirst();
    // Another merchant's endpoint, or one the key's mode may not reach, is reported exactly like a missing one.
    if (!row) throw webhookEndpointNotFound(id, scope, '/params/id');
    return row;
  }

  /**
   * A filter on a channel of the other mode than the endpoint's (`mode`) would take nothing: refused,
   * as authorise refuses such a channel. So is one of the other mode than the key's (`scope`), also on
   * an endpoint from before modes, which takes both: a key acts on its mode's channels only (decision 0028).
   */
  private async channelId(merchantId: string, reference: string, mode: KeyMode | null, scope: KeyScope): Promise<string> {
    const row = await this.ctx.database.db.selectFrom('channels').select(['id', 'mode', 'reference']).where('reference', '=', reference).where('merchant_id', '=', merchantId).executeTakeFirst();
    if (!row) throw new DomainError(404, 'channel_not_found', `no channel "${reference}" exists for this secret key's merchant`, '/channel');
    if (mode === null) {
      checkChannelMode(scope, row);
    } else if (mode !== row.mode) {
      const key = row.mode === 'live' ? 'a live key (sk_live_…)' : 'a sandbox key (sk_test_…)';
      throw new DomainError(403, 'key_mode_mismatch', `channel "${reference}" is a ${row.mode} channel and this endpoint takes ${mode} events only: register one with ${key} for its events`, '/channel');
    }
    return row.id;
  }

  private async checkTarget(raw: string): Promise<string> {
    if (raw.length > MAX_URL_LENGTH) throw new DomainError(400, 'too_long', `url must be at most ${MAX_URL_LENGTH} characters`, '/url');
    // The URL parser would strip or drop these and store another URL than the one sent.
    if (/[\s\x00-\x1f\x7f]/.test(raw)) throw new DomainError(400, 'invalid_url', 'url must not contain spaces or control characters (tabs, line breaks); percent-encode them', '/url');
    const policy = outboundPolicy(this.ctx);
    try {
      const url = checkUrl(raw, policy);
      const stored = url.toString();
      // What is stored is percent-encoded: one "é" sent is six characters kept.
      if (stored.length > MAX_URL_LENGTH) throw new DomainError(400, 'too_long', `url must be at most ${MAX_URL_LENGTH} characters once normalised (characters outside ASCII count percent-encoded, "é" as "%C3%A9")`, '/url');
      if (!policy.allowPrivate) await withTimeout(resolveChecked(url.hostname, policy, this.resolver), DNS_CHECK_TIMEOUT_MS, url.hostname);
      return stored;
    } catch (error) {
      if (error instanceof TargetRefused) throw new DomainError(400, error.code, `url: ${error.message}`, '/url');
      throw error;
    }
  }

  private async view(row: WebhookEndpointsTable): Promise<EndpointView> {
    return {
      id: row.id,
      object: 'webhook_endpoint',
      url: row.url,
      events: JSON.parse(row.events) as string[],
      channel: row.channel_id ? await channelReference(this.ctx.database.db, row.channel_id) : null,
      livemode: row.mode === null ? null : row.mode === 'live',
      description: row.description,
      status: row.status,
      disabled_reason: row.disabled_reason,
      previous_secret_expires_at: row.previous_secret_expires_at !== null && row.previous_secret_expires_at > this.ctx.clock.now() ? iso(row.previous_secret_expires_at) : null,
      created_at: iso(row.created_at)!,
      updated_at: iso(row.updated_at)!,
    };
  }
}

/** scheme://host[:port] of a callback URL: what may be shown or recorded where its path and query, which can carry a merchant's token, may not. */
export function urlOrigin(url: string): string {
  return new URL(url).origin;
}

export async function cancelPendingDeliveries(trx: Trx, endpointId: string, now: number, reason: string): Promise<void> {
  await trx
    .updateTable('deliveries')
    .set({ status: 'cancelled', last_error: reason, completed_at: now, updated_at: now, locked_until: null, lease_token: null })
    .where('endpoint_id', '=', endpointId)
    // A literal, or SQLite cannot use the partial index deliveries_endpoint_pending and scans every delivery.
    .where('status', '=', sql.lit('pending'))
    .execute();
}

function withTimeout<T>(promise: Promise<T>, ms: number, host: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TargetRefused('url_host_unresolvable', `the host ${host} did not resolve within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * The endpoints a key may read and change (decision 0032): its mode's; a key made before modes,
 * every one. An endpoint registered by such a key takes live events too, so a live key reaches
 * it (to replace and delete it once the merchant's keys have modes), and a sandbox key does not:
 * a leaked test key must not read or redirect where live callbacks go.
 */
export function endpointsIn<Q extends SelectQueryBuilder<Schema, 'webhook_endpoints', object>>(query: Q, scope: KeyScope): Q {
  if (scope === null) return query;
  if (scope === 'sandbox') return query.where('webhook_endpoints.mode', '=', 'sandbox') as Q;
  return query.where((eb) => eb.or([eb('webhook_endpoints.mode', '=', 'live'), eb('webhook_endpoints.mode', 'is', null)])) as Q;
}

/**
 * The limit counts both modes (decision 0032), but a key reaches one mode's endpoints: the refusal
 * says what fills it and which key reaches them, or a live key blocked by sandbox endpoints would
 * see two endpoints and no way to make room (decision 0038).
 */
function tooManyEndpoints(active: ReadonlyArray<{ mode: KeyMode | null; n: number | string }>): DomainError {
  const count = (mode: KeyMode | null) => Number(active.find((r) => r.mode === mode)?.n ?? 0);
  return new DomainError(
    409,
    'too_many_endpoints',
    `a merchant can have at most ${MAX_ENDPOINTS_PER_MERCHANT} webhook endpoints, sandbox and live together, and has ${count('sandbox')} sandbox (sandbox key, sk_test_…), ` +
      `${count('live')} live and ${count(null)} taking both (live key, sk_live_…); delete one with a key that reaches it first (a key made before modes reaches them all)`,
  );
}

/** The same rule as `endpointsIn`, for an endpoint already read (its deliveries, on an event). */
export function keyReaches(scope: KeyScope, endpointMode: KeyMode | null): boolean {
  return scope === null || endpointMode === scope || (scope === 'live' && endpointMode === null);
}

/** The 404 for an endpoint the key may not reach: missing, another merchant's, or of the other mode alike. */
export function webhookEndpointNotFound(id: string, scope: KeyScope, param: string): DomainError {
  const among = scope === null ? "this secret key's merchant" : `this ${scope} secret key's merchant (a ${scope} key sees ${scope} endpoints only)`;
  return new DomainError(404, 'webhook_endpoint_not_found', `no webhook endpoint ${quotedId(id, 'webhookEndpoint')} for ${among}`, param);
}

export interface Subscription {
  types: readonly string[];
  channelId: string | null;
  /** The one mode whose events it takes; null for both. */
  mode: KeyMode | null;
  /** Whether the channel filter names a live channel (compliance events reach every live channel's endpoints). */
  channelLive: boolean;
}

/** `channel_mode` is the mode of the channel the endpoint is filtered to (null without a filter). */
export function subscriptionOf(row: Pick<WebhookEndpointsTable, 'events' | 'channel_id' | 'mode'> & { channel_mode: string | null }): Subscription {
  return { types: JSON.parse(row.events) as string[], channelId: row.channel_id, mode: row.mode, channelLive: row.channel_mode === 'live' };
}

/**
 * Whether an endpoint takes an event of a channel in `mode`: its mode, its type list and its
 * optional channel filter. Compliance events are the merchant's, not one channel's or one
 * mode's: they ride one live channel while the merchant has one, an endpoint filtered to any
 * live channel takes them, and so does one of either mode (a merchant still integrating with
 * its sandbox key is the one who must act on them).
 */
export function subscribes(sub: Subscription, event: { type: string; channel_id: string }, mode: KeyMode): boolean {
  const compliance = isComplianceEvent(event.type);
  if (sub.mode !== null && sub.mode !== mode && !compliance) return false;
  if (sub.channelId !== null && sub.channelId !== event.channel_id && !(sub.channelLive && compliance)) return false;
  return sub.types.includes('*') || sub.types.includes(event.type);
}

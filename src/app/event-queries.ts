import { DomainError, type FieldError, ValidationFailed } from '../domain/errors.js';
import { hasPrefix, quotedId } from '../domain/ids.js';
import { EVENT_TYPES, isEventType } from '../domain/event-types.js';
import { COMPLIANCE_EVENT_TYPES, isComplianceEvent } from '../domain/compliance.js';
import type { DeliveriesTable, DeliveryAttemptsTable } from '../adapters/storage/schema.js';
import { type Actor, writeAudit } from './audit.js';
import type { AppContext } from './context.js';
import { type KeyScope, channelsIn } from './key-scope.js';
import { pendingDelivery } from './delivery-rows.js';
import { EVENT_READ_COLUMNS, eventBody } from './events.js';
import type { OutboxSignal } from './outbox-signal.js';
import { iso } from './payment-resource.js';
import { LookupCache } from './lookup-cache.js';
import { endpointsIn, keyReaches, subscribes, subscriptionOf, webhookEndpointNotFound } from './webhook-endpoints.js';

export interface EventListQuery {
  limit?: number;
  starting_after?: string;
  ending_before?: string;
  /** One type or a comma-separated list. */
  type?: string;
  payment?: string;
}

export interface AttemptView {
  attempt: number;
  at: string;
  status_code: number | null;
  duration_ms: number;
  succeeded: boolean;
  error: string | null;
  response_body: string | null;
}

export interface DeliveryView {
  id: string;
  object: 'delivery';
  kind: 'webhook' | 'email';
  endpoint_id: string | null;
  url: string | null;
  recipient: string | null;
  status: DeliveriesTable['status'];
  attempt_count: number;
  next_attempt_at: string | null;
  last_status_code: number | null;
  last_error: string | null;
  created_at: string;
  completed_at: string | null;
  attempts: AttemptView[];
}

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

/**
 * The merchant's view of the outbox: events as they were sent (the stored bytes), what
 * happened to each delivery, and a way to send one again. Another merchant's event is
 * reported exactly like a missing one.
 */
export class EventQueries {
  constructor(
    private readonly ctx: AppContext,
    private readonly outbox: OutboxSignal,
  ) {}

  /** Newest first. Returns JSON text: the event bodies are embedded byte for byte. */
  /** A key with a mode lists the events of that mode's channels only (decision 0028). */
  async list(merchantId: string, q: EventListQuery, scope: KeyScope = null): Promise<string> {
    // Every parameter at fault is named at once, in errors[], as GET /payments names them.
    const errors: FieldError[] = [];
    const limit = q.limit ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      // The route's schema refuses it first, as out_of_range, as GET /payments does: one code for one rule.
      errors.push({ pointer: '/querystring/limit', code: 'out_of_range', message: `limit must be a whole number from 1 to ${MAX_PAGE_SIZE}` });
    }
    for (const name of ['starting_after', 'ending_before'] as const) {
      const v = q[name];
      if (v !== undefined && !hasPrefix(v, 'event')) errors.push({ pointer: `/querystring/${name}`, code: 'invalid_cursor', message: `${name} must be an event id (evt_…) from a previous page` });
    }
    if (q.starting_after !== undefined && q.ending_before !== undefined) {
      errors.push({ pointer: '/querystring/ending_before', code: 'invalid_cursor', message: 'give starting_after or ending_before, not both' });
    }
    const types = q.type?.split(',').map((t) => t.trim()).filter(Boolean);
    // A type filter naming no type (type=, type=,) was taken for none and listed every event.
    if (types?.length === 0) errors.push({ pointer: '/querystring/type', code: 'invalid_event_type', message: `type names no event type; use one or more of ${EVENT_TYPES.join(', ')}, separated by commas` });
    const unknown = (types ?? []).find((t) => !isEventType(t));
    if (unknown !== undefined) errors.push({ pointer: '/querystring/type', code: 'invalid_event_type', message: `"${unknown}" is not an event type; use one of ${EVENT_TYPES.join(', ')}` });
    if (errors.length) throw new ValidationFailed(errors);
    let query = this.inScope(this.withPayment().where('events.merchant_id', '=', merchantId), scope);
    if (types !== undefined) query = query.where('events.type', 'in', types);
    // payment= names no payment, so it finds no events (it listed all of them).
    if (q.payment !== undefined) query = query.where('events.payment_id', '=', q.payment);
    const backwards = q.ending_before !== undefined;
    if (q.starting_after) query = query.where('events.id', '<', q.starting_after);
    if (q.ending_before) query = query.where('events.id', '>', q.ending_before);
    const rows = await query.orderBy('events.id', backwards ? 'asc' : 'desc').limit(limit + 1).execute();
    const hasMore = rows.length > limit;
    const page = rows.slice(0, limit);
    if (backwards) page.reverse();
    // As GET /payments gives it. A page read backwards always has older events after it (at
    // least the one ending_before named); its has_more speaks of newer ones.
    const next = (hasMore || backwards) && page.length > 0 ? JSON.stringify(page[page.length - 1]!.id) : 'null';
    return `{"object":"list","data":[${page.map(eventBody).join(',')}],"has_more":${hasMore},"next_starting_after":${next}}`;
  }

  async get(merchantId: string, id: string, scope: KeyScope = null): Promise<Record<string, unknown>> {
    const row = await this.requireEvent(merchantId, id, scope);
    return { ...(JSON.parse(eventBody(row)) as Record<string, unknown>), deliveries: await this.deliveries(id, scope, row.channel_mode) };
  }

  /** Events with what `eventBody` needs to give slim bodies back whole. */
  private withPayment() {
    return this.ctx.database.db
      .selectFrom('events')
      .leftJoin('payments', 'payments.id', 'events.payment_id')
      .leftJoin('channels', 'channels.id', 'events.channel_id')
      .select([...EVENT_READ_COLUMNS, 'events.channel_id']);
  }

  /**
   * Sends the event again to the given endpoint, or to every enabled endpoint that
   * subscribes to it now, of the modes the key reaches (decision 0032). An endpoint of the
   * other mode than the event's is refused even when named: a sandbox receiver never gets a
   * live event. Each delivery starts a fresh retry schedule; its earlier
   * attempts stay in the log. Audited with the key that asked, in the same transaction: a
   * leaked key replaying a merchant's events to its endpoints must show (PCI DSS 10.2.1.2).
   */
  async redeliver(actor: Actor, merchantId: string, id: string, endpointId?: string, scope: KeyScope = null): Promise<{ object: 'redelivery'; event: string; deliveries: DeliveryView[] }> {
    const event = await this.requireEvent(merchantId, id, scope);
    const db = this.ctx.database.db;
    const query = db
      .selectFrom('webhook_endpoints')
      .leftJoin('channels', 'channels.id', 'webhook_endpoints.channel_id')
      .select(['webhook_endpoints.id', 'webhook_endpoints.events', 'webhook_endpoints.channel_id', 'webhook_endpoints.mode', 'webhook_endpoints.status', 'channels.mode as channel_mode'])
      .where('webhook_endpoints.merchant_id', '=', merchantId)
      .where('webhook_endpoints.deleted_at', 'is', null)
      .$if(endpointId !== undefined, (qb) => qb.where('webhook_endpoints.id', '=', endpointId!));
    let endpoints = await endpointsIn(query, scope).execute();
    const mode = (await LookupCache.of(this.ctx).channelById(event.channel_id)).mode;
    if (endpointId !== undefined) {
      const target = endpoints[0];
      if (!target) throw webhookEndpointNotFound(endpointId, scope, '/endpoint_id');
      if (target.status !== 'enabled') throw new DomainError(409, 'webhook_endpoint_disabled', `webhook endpoint ${endpointId} is disabled; enable it with PATCH /webhook-endpoints/${endpointId} first`, '/endpoint_id');
      if (target.mode !== null && target.mode !== mode && !isComplianceEvent(event.type)) {
        throw new DomainError(409, 'webhook_endpoint_mode_mismatch', `webhook endpoint ${endpointId} takes ${target.mode} events only and ${event.id} is a ${mode} event; name an endpoint registered with a ${mode} key`, '/endpoint_id');
      }
    } else {
      endpoints = endpoints.filter((e) => e.status === 'enabled' && subscribes(subscriptionOf(e), event, mode));
      if (endpoints.length === 0) throw new DomainError(409, 'no_subscribed_endpoint', `no enabled webhook endpoint that takes ${mode} events subscribes to ${event.type}; pass endpoint_id or register one`);
    }
    const now = this.ctx.clock.now();
    const retryUntil = now + this.ctx.config.webhookRetryWindowMs;
    await this.ctx.database.transaction(async (trx) => {
      for (const endpoint of endpoints) {
        // A delivery still leased by a worker keeps its lease: the reset takes effect
        // when that attempt ends, so the same delivery is never sent twice at once.
        const reset = await trx
          .updateTable('deliveries')
          .set({ status: 'pending', failures: 0, next_attempt_at: now, retry_until: retryUntil, completed_at: null, updated_at: now })
          .where('event_id', '=', event.id)
          .where('target', '=', endpoint.id)
          .executeTakeFirst();
        if (Number(reset.numUpdatedRows) > 0) continue;
        await trx
          .insertInto('deliveries')
          .values(pendingDelivery({ id: this.ctx.newId('delivery'), event_id: event.id, merchant_id: merchantId, kind: 'webhook', target: endpoint.id, endpoint_id: endpoint.id }, now, retryUntil))
          .execute();
      }
      await writeAudit(this.ctx, trx, {
        actor,
        action: 'event.redeliver',
        merchantId,
        target: event.id,
        outcome: 'success',
        detail: { type: event.type, payment: event.payment_id, endpoints: endpoints.map((e) => e.id) },
      });
    });
    this.outbox.notify();
    const wanted = new Set(endpoints.map((e) => e.id));
    return { object: 'redelivery', event: event.id, deliveries: (await this.deliveries(event.id, scope, event.channel_mode)).filter((d) => d.endpoint_id !== null && wanted.has(d.endpoint_id)) };
  }

  /**
   * Another merchant's event, and one of the other mode than the key's, is reported exactly like a
   * missing one. Compliance events are the merchant's, not a mode's: endpoints of both modes receive
   * them (decision 0032), so any key reads and redelivers them (decision 0038).
   */
  private async requireEvent(merchantId: string, id: string, scope: KeyScope) {
    const row = await this.inScope(this.withPayment().where('events.id', '=', id).where('events.merchant_id', '=', merchantId), scope).executeTakeFirst();
    const among = scope === null ? "this secret key's merchant" : `this ${scope} secret key's merchant (a ${scope} key sees ${scope} events and compliance events only)`;
    if (!row) throw new DomainError(404, 'event_not_found', `no event ${quotedId(id, 'event')} for ${among}`, '/params/id');
    return row;
  }

  private inScope<Q extends ReturnType<EventQueries['withPayment']>>(query: Q, scope: KeyScope): Q {
    if (scope === null) return query;
    return query.where((eb) => eb.or([eb('events.channel_id', 'in', channelsIn(this.ctx.database.db, scope)), eb('events.type', 'in', [...COMPLIANCE_EVENT_TYPES])])) as Q;
  }

  /**
   * A key sees the deliveries to the endpoints it reaches only: a compliance event read with a
   * sandbox key, or a sandbox event delivered to an endpoint that takes both, must not name where
   * live callbacks go. E-mails of an event of the other mode (a compliance notice riding a live
   * channel) went to that mode's addresses, so they are left out too.
   */
  private async deliveries(eventId: string, scope: KeyScope, eventMode: string | null): Promise<DeliveryView[]> {
    const db = this.ctx.database.db;
    const all = await db
      .selectFrom('deliveries')
      .leftJoin('webhook_endpoints', 'webhook_endpoints.id', 'deliveries.endpoint_id')
      .selectAll('deliveries')
      .select(['webhook_endpoints.url', 'webhook_endpoints.mode as endpoint_mode'])
      .where('deliveries.event_id', '=', eventId)
      .orderBy('deliveries.id')
      .execute();
    const rows = scope === null ? all : all.filter((d) => (d.endpoint_id === null ? eventMode === scope : keyReaches(scope, d.endpoint_mode)));
    // By the deliveries' ids, which lead delivery_attempts' primary key: the table has no index on event_id.
    const attempts = rows.length
      ? await db
          .selectFrom('delivery_attempts')
          .selectAll()
          .where('delivery_id', 'in', rows.map((d) => d.id))
          .orderBy('delivery_id')
          .orderBy('attempt')
          .execute()
      : [];
    const byDelivery = new Map<string, DeliveryAttemptsTable[]>();
    for (const a of attempts) byDelivery.set(a.delivery_id, [...(byDelivery.get(a.delivery_id) ?? []), a]);
    return rows.map((d) => ({
      id: d.id,
      object: 'delivery' as const,
      kind: d.kind,
      endpoint_id: d.endpoint_id,
      url: d.url ?? null,
      recipient: d.recipient,
      status: d.status,
      attempt_count: d.attempts,
      next_attempt_at: d.status === 'pending' ? iso(d.next_attempt_at) : null,
      last_status_code: d.last_status_code,
      last_error: d.last_error,
      created_at: iso(d.created_at)!,
      completed_at: iso(d.completed_at),
      attempts: (byDelivery.get(d.id) ?? []).map((a) => ({
        attempt: a.attempt,
        at: iso(a.started_at)!,
        status_code: a.status_code,
        duration_ms: a.duration_ms,
        succeeded: a.succeeded === 1,
        error: a.error,
        response_body: a.response_body,
      })),
    }));
  }
}

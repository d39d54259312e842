import { type FieldError, ValidationFailed } from '../domain/errors.js';
import { hasPrefix } from '../domain/ids.js';
import { timeBound } from '../domain/time-bound.js';
import type { PaymentStatus } from '../domain/payment-state.js';
import type { AppContext } from './context.js';
import { type KeyScope, channelsIn } from './key-scope.js';
import { detailsOf, paymentChannel } from './payment-transitions.js';
import { iso, paymentResource, type PaymentResource } from './payment-resource.js';

export const DEFAULT_PAGE_SIZE = 20;
export const MAX_PAGE_SIZE = 100;

export interface PaymentListQuery {
  limit?: number | undefined;
  starting_after?: string | undefined;
  ending_before?: string | undefined;
  status?: PaymentStatus | undefined;
  channel?: string | undefined;
  reference?: string | undefined;
  customer_reference?: string | undefined;
  created_gte?: string | undefined;
  created_lte?: string | undefined;
}

export interface TimelineEntry {
  id: string;
  type: string;
  sequence: number;
  created_at: string;
}

export type PaymentListItem = PaymentResource & { timeline: TimelineEntry[] };

export interface PaymentPage {
  object: 'list';
  data: PaymentListItem[];
  has_more: boolean;
  /** Pass as `starting_after` to get the next page; null on the last one. */
  next_starting_after: string | null;
}

function parseTime(value: string | undefined, name: string, edge: 'start' | 'end', errors: FieldError[]): number | undefined {
  if (value === undefined) return undefined;
  const ms = timeBound(value, edge);
  if (ms === null) errors.push({ pointer: `/querystring/${name}`, code: 'invalid_format', message: `${name} must be an ISO 8601 date-time with its offset, such as 2025-01-31T00:00:00Z` });
  return ms ?? undefined;
}

/**
 * GET /payments. Newest first by id: ids begin with their creation time and never
 * change, so a cursor (`starting_after` = the last id seen) gives the same pages however
 * many payments arrive meanwhile: new ones only ever appear before the first page.
 * `ending_before` reads the page of newer ones just before an id, as GET /events does.
 */
export class PaymentList {
  constructor(private readonly ctx: AppContext) {}

  /** A key with a mode lists that mode's payments only (decision 0028). */
  async list(merchantId: string, q: PaymentListQuery, scope: KeyScope = null): Promise<PaymentPage> {
    const errors: FieldError[] = [];
    const limit = q.limit ?? DEFAULT_PAGE_SIZE;
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
      errors.push({ pointer: '/querystring/limit', code: 'out_of_range', message: `limit must be a whole number from 1 to ${MAX_PAGE_SIZE}` });
    }
    for (const name of ['starting_after', 'ending_before'] as const) {
      const cursor = q[name];
      if (cursor !== undefined && !hasPrefix(cursor, 'payment')) {
        errors.push({ pointer: `/querystring/${name}`, code: 'invalid_cursor', message: `${name} must be a payment id (pay_…) from a previous page` });
      }
    }
    if (q.starting_after !== undefined && q.ending_before !== undefined) {
      errors.push({ pointer: '/querystring/ending_before', code: 'invalid_cursor', message: 'give starting_after or ending_before, not both' });
    }
    const gte = parseTime(q.created_gte, 'created_gte', 'start', errors);
    const lte = parseTime(q.created_lte, 'created_lte', 'end', errors);
    // The times as written are compared, not the edges they cover: the same time twice is a range.
    const lteWritten = q.created_lte === undefined ? null : timeBound(q.created_lte, 'start');
    if (gte !== undefined && lteWritten !== null && gte > lteWritten) {
      errors.push({ pointer: '/querystring/created_gte', code: 'invalid_range', message: 'created_gte must not be later than created_lte' });
    }
    if (errors.length) throw new ValidationFailed(errors);

    const db = this.ctx.database.db;
    let query = db.selectFrom('payments').selectAll().where('merchant_id', '=', merchantId);
    if (scope !== null) query = query.where('channel_id', 'in', channelsIn(db, scope));
    if (q.channel !== undefined) {
      const channel = await db.selectFrom('channels').select('id').where('reference', '=', q.channel).where('merchant_id', '=', merchantId).executeTakeFirst();
      if (!channel) return { object: 'list', data: [], has_more: false, next_starting_after: null };
      query = query.where('channel_id', '=', channel.id);
    }
    if (q.status !== undefined) query = query.where('status', '=', q.status);
    if (q.reference !== undefined) query = query.where('reference', '=', q.reference);
    if (q.customer_reference !== undefined) query = query.where('customer_reference', '=', q.customer_reference);
    if (gte !== undefined) query = query.where('created_at', '>=', gte);
    if (lte !== undefined) query = query.where('created_at', '<=', lte);
    const backwards = q.ending_before !== undefined;
    if (q.starting_after !== undefined) query = query.where('id', '<', q.starting_after);
    if (q.ending_before !== undefined) query = query.where('id', '>', q.ending_before);
    // One row more than asked tells whether another page exists without counting.
    const rows = await query.orderBy('id', backwards ? 'asc' : 'desc').limit(limit + 1).execute();
    const page = rows.slice(0, limit);
    if (backwards) page.reverse();

    const timelines = new Map<string, TimelineEntry[]>(page.map((r) => [r.id, []]));
    if (page.length) {
      const events = await db
        .selectFrom('events')
        .select(['id', 'payment_id', 'type', 'sequence', 'created_at'])
        .where('payment_id', 'in', page.map((r) => r.id))
        .orderBy('payment_id')
        .orderBy('sequence')
        .orderBy('id')
        .execute();
      for (const e of events) timelines.get(e.payment_id!)?.push({ id: e.id, type: e.type, sequence: e.sequence, created_at: iso(e.created_at)! });
    }
    const data: PaymentListItem[] = [];
    for (const row of page) {
      data.push({ ...paymentResource(this.ctx.vault, row, await paymentChannel(db, row.channel_id), detailsOf(row)), timeline: timelines.get(row.id)! });
    }
    const hasMore = rows.length > limit;
    // As GET /events gives it: a page read backwards always has older payments after it (at
    // least the one ending_before named); its has_more speaks of newer ones.
    const next = (hasMore || backwards) && page.length > 0 ? page[page.length - 1]!.id : null;
    return { object: 'list', data, has_more: hasMore, next_starting_after: next };
  }
}

import type { ChannelsTable } from '../adapters/storage/schema.js';
import { isComplianceEvent } from '../domain/compliance.js';
import type { KeyMode } from '../domain/secret-key.js';
import type { AppContext } from './context.js';
import { LookupCache } from './lookup-cache.js';
import { OutboxSignal } from './outbox-signal.js';
import { type Subscription, subscribes } from './webhook-endpoints.js';

/** An enabled endpoint as the outbox needs it: what it takes, and since when. */
export interface EndpointInterest {
  readonly id: string;
  readonly created_at: number;
  readonly sub: Subscription;
}

/** A channel's e-mail rules (channels.notify_emails, notify_events, customer_receipts). */
export interface MailRules {
  readonly emails: readonly string[];
  readonly types: readonly string[];
  readonly receipts: boolean;
}

/** What an event is to the outbox: its type, its channel and when it happened. */
export interface EventFacts {
  readonly type: string;
  readonly channel_id: string;
  readonly created_at: number;
}

/** The only event types a customer receipt can be for (the dispatcher decides per payment). */
export const RECEIPT_TYPES: ReadonlySet<string> = new Set(['payment.authorised', 'payment.captured', 'payment.partially_captured', 'refund.succeeded']);

type MailColumns = Pick<ChannelsTable, 'notify_emails' | 'notify_events' | 'customer_receipts'>;

/** Parsed once per channel row: the lookup cache hands out the same row until the channel changes. */
const rulesByRow = new WeakMap<MailColumns, MailRules>();

export function mailRulesOf(channel: MailColumns): MailRules {
  let rules = rulesByRow.get(channel);
  if (!rules) {
    rules = { emails: JSON.parse(channel.notify_emails) as string[], types: JSON.parse(channel.notify_events) as string[], receipts: channel.customer_receipts === 1 };
    rulesByRow.set(channel, rules);
  }
  return rules;
}

/** An endpoint receives the events that happen after it is registered, of the mode, types (and channel) it subscribes to; `mode` is the event's channel's. */
export function endpointTakes(endpoint: EndpointInterest, event: EventFacts, mode: KeyMode): boolean {
  return endpoint.created_at <= event.created_at && subscribes(endpoint.sub, event, mode);
}

/** Whether the channel's merchant addresses are notified of an event (compliance events always are). */
export function notifiesMerchant(rules: MailRules, type: string): boolean {
  return isComplianceEvent(type) || rules.types.includes('*') || rules.types.includes(type);
}

/**
 * Whether an event of this channel and type could turn into any delivery: an endpoint
 * that takes it, a merchant notification, or a customer receipt. False only when none
 * can: such an event is written already dispatched (src/app/events.ts).
 */
export function couldBeDelivered(event: EventFacts, endpoints: readonly EndpointInterest[], channel: Readonly<ChannelsTable>): boolean {
  if (endpoints.some((e) => endpointTakes(e, event, channel.mode))) return true;
  const rules = mailRulesOf(channel);
  if (rules.emails.length > 0 && notifiesMerchant(rules, event.type)) return true;
  return rules.receipts && RECEIPT_TYPES.has(event.type);
}

/**
 * Whether an event written now must go through the outbox's fan-out. Answered from the
 * lookup cache without waiting: when the merchant's endpoints or the channel are not
 * cached (or the cache cannot be trusted right now) the answer is yes. Authorise loads
 * the merchant's endpoints before it writes (its channel is loaded by then too), and the
 * fan-out loads what its events need, so they are cached for the next ones; nothing is
 * loaded from here, where a short-lived process (the CLI) would leave the read behind
 * when it closes the database. The cache is emptied when an endpoint or a
 * channel changes: by this process at once, by another at its next lookup (SQLite's
 * config counter) or notification (PostgreSQL). So an endpoint registered while an event
 * is being written may miss that event (decision 0014); every event this process writes
 * after the registration has answered is seen, and another's after the notification.
 */
export function needsFanOut(ctx: AppContext, event: EventFacts & { merchant_id: string }): boolean {
  const cache = LookupCache.of(ctx);
  const endpoints = cache.cachedEndpoints(event.merchant_id);
  const channel = cache.cachedChannelById(event.channel_id);
  if (endpoints === undefined || channel === undefined) return true;
  return couldBeDelivered(event, endpoints, channel);
}

/**
 * The `dispatched` value an event is written with: 1 when nobody can take it, so the
 * fan-out never sees it; 0 otherwise, and the outbox's bell is told to expect it, so the
 * request that writes it wakes the dispatcher (src/app/outbox-signal.ts).
 */
export function dispatchedOnWrite(ctx: AppContext, event: EventFacts & { merchant_id: string }): 0 | 1 {
  if (!needsFanOut(ctx, event)) return 1;
  OutboxSignal.of(ctx.database).expect();
  return 0;
}

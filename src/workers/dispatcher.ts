import { randomUUID } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import type { Logger } from 'pino';
import type { Services } from '../app/services.js';
import type { Metrics } from '../app/metrics.js';
import { cancelPendingDeliveries, outboundPolicy, urlOrigin } from '../app/webhook-endpoints.js';
import { type MailRules, RECEIPT_TYPES, endpointTakes, mailRulesOf, notifiesMerchant } from '../app/event-interest.js';
import type { DeliveriesTable, Schema } from '../adapters/storage/schema.js';
import type { Trx } from '../adapters/storage/database.js';
import { compileInsert, compiledOnce, statementOf } from '../adapters/storage/compiled.js';
import { signedHeaders } from '../adapters/webhooks/signer.js';
import { WebhookSender } from '../adapters/webhooks/sender.js';
import { createMailer, type Mailer, PermanentMailError, smtpAttemptMaxMs } from '../adapters/mail/mailer.js';
import { type ComplianceMailInput, type PaymentMailInput, type RenderedMail, renderComplianceMail, renderPaymentMail } from '../adapters/mail/templates.js';
import { pendingDelivery } from '../app/delivery-rows.js';
import { EVENT_READ_COLUMNS, eventBody } from '../app/events.js';
import { isEmail } from '../domain/address.js';
import { isComplianceEvent } from '../domain/compliance.js';
import type { KeyMode } from '../domain/secret-key.js';
import { honourRetryAfter, nextAttemptAt, type RetryPolicy } from '../domain/retry-schedule.js';
import { type Clock, systemClock } from '../ports/clock.js';
import { isDatabaseUnavailable } from '../adapters/storage/unavailable.js';
import { Loop } from './loop.js';
import { LookupCache } from '../app/lookup-cache.js';

/**
 * The outbox dispatcher. Two steps, both safe to run in several processes at once:
 *
 * 1. Fan-out: undispatched events are read in batches and turned, in one commit, into
 *    one delivery per subscribed endpoint and one per e-mail recipient, and marked
 *    dispatched (on PostgreSQL one statement does both, for the events it is the one to
 *    mark; on SQLite one process owns the file). A crash before the commit leaves the
 *    events undispatched; the unique (event, target) index makes a repeated fan-out
 *    harmless.
 * 2. Delivery: due deliveries are leased (`locked_until`, a lease token) and sent
 *    concurrently up to DISPATCH_CONCURRENCY, each on its own, so a slow endpoint holds
 *    its slots and nothing else (see mayTake for how slots and leases are shared). A result
 *    is written only under the lease it was sent with; a crashed worker's lease simply
 *    runs out and the delivery is sent again (at-least-once: receivers de-duplicate by
 *    `webhook-id`).
 *
 * Leases are cheap to take: fresh deliveries are leased by the fan-out that creates
 * them, and slots freed by finished deliveries are refilled in the same commit that
 * records their results, so a busy dispatcher pays about one commit per batch.
 */
/**
 * Events fanned out per pass. A pass costs the same few round trips whatever its size,
 * and on PostgreSQL under API load each round trip waits its turn on the event loop, so
 * a backlog is caught up with big passes.
 */
export const FAN_OUT_BATCH = 2000;
/** Rows per multi-row statement (PostgreSQL allows 65,535 parameters; a delivery has 14). */
const INSERT_CHUNK = 1000;
/**
 * Deliveries leased per sending slot. Sends to a local receiver take a millisecond, but
 * the commit that records results and leases the next ones waits behind API traffic
 * (PostgreSQL round trips under load took 100–200 ms a transaction): with only twice
 * the slots leased, one busy endpoint drained at ~640 events/s and its lag grew by
 * seconds. Four deep keeps the slots busy across that commit.
 */
export const LEASE_DEPTH = 4;
/**
 * A lease covers a wait for a sending slot (LEASE_DEPTH - 1 attempts, behind hung
 * requests to the same endpoint; a longer wait extends it first, see holdLease) plus its
 * own attempt, plus this margin to record the result.
 */
const LEASE_MARGIN_MS = 5000;
/** Shortest time from the start of one dispatcher pass to the next while work keeps arriving. */
const PASS_FLOOR_MS = 10;
/** How long stop() waits for e-mails already handed to SMTP. */
const STOP_GRACE_MS = 2000;

interface Claimed {
  id: string;
  event_id: string;
  kind: DeliveriesTable['kind'];
  endpoint_id: string | null;
  merchant_id: string;
  /** The event's payment (null: a compliance or merchant notice), for the operator's log. */
  payment_id: string | null;
  recipient: string | null;
  template: DeliveriesTable['template'];
  attempts: number;
  failures: number;
  retry_until: number;
  locked_until: number | null;
  lease_token: string | null;
  event_type: string;
  body: string;
  url: string | null;
  endpoint_status: string | null;
  endpoint_deleted_at: number | null;
  secret_ct: string | null;
  previous_secret_ct: string | null;
  previous_secret_expires_at: number | null;
  channel_name: string | null;
  channel_mode: string | null;
  channel_support_email: string | null;
  merchant_name: string | null;
}

type Outcome =
  | { kind: 'cancel'; reason: string }
  | {
      kind: 'attempt';
      startedAt: number;
      durationMs: number;
      statusCode: number | null;
      error: string | null;
      responseBody: string | null;
      succeeded: boolean;
      /** No point retrying: the mail server refused this message or its recipient (PermanentMailError). */
      permanent: boolean;
      /** 410 Gone: the endpoint is disabled. */
      gone: boolean;
      /** No retry before this time: the receiver's Retry-After on a 429 or 503. */
      notBefore: number | null;
    };

/** A leased delivery as slot accounting sees it. */
interface Leased {
  id: string;
  endpoint_id: string | null;
  merchant_id: string;
}

/**
 * Sending slots or leases held, per target (an endpoint; null for the mail server, which
 * every e-mail goes through) and per group (a merchant's endpoints together; null for the
 * mail server again, whatever merchant an e-mail is for).
 */
class Holdings {
  total = 0;
  readonly targets = new Map<string | null, { group: string | null; n: number }>();
  readonly groups = new Map<string | null, number>();

  static groupOf(r: Leased): string | null {
    return r.endpoint_id === null ? null : r.merchant_id;
  }

  target(r: Leased): number {
    return this.targets.get(r.endpoint_id)?.n ?? 0;
  }

  group(r: Leased): number {
    return this.groups.get(Holdings.groupOf(r)) ?? 0;
  }

  change(r: Leased, by: 1 | -1): void {
    const group = Holdings.groupOf(r);
    this.total += by;
    const t = (this.targets.get(r.endpoint_id)?.n ?? 0) + by;
    if (t > 0) this.targets.set(r.endpoint_id, { group, n: t });
    else this.targets.delete(r.endpoint_id);
    const g = (this.groups.get(group) ?? 0) + by;
    if (g > 0) this.groups.set(group, g);
    else this.groups.delete(group);
  }

  copy(): Holdings {
    const c = new Holdings();
    c.total = this.total;
    for (const [k, v] of this.targets) c.targets.set(k, { ...v });
    for (const [k, v] of this.groups) c.groups.set(k, v);
    return c;
  }
}

/**
 * Whether a target holding `target` units, in a group holding `group`, may take one more
 * while `free` are left; units are sending slots (`depth` 1) or leases (`depth`
 * LEASE_DEPTH, so every number is counted in slots' worth of leases). `share` is a quarter
 * of DISPATCH_CONCURRENCY.
 *
 * - A target holds at most a share: one hanging endpoint, or a mail server that never
 *   answers, holds a quarter of the slots and leases.
 * - Beyond its first slot's worth, a target takes more only while its group holds less
 *   than a share: one merchant's hanging endpoints hold about a share between them, plus
 *   one slot's worth for each of its other endpoints (16 at most), so its healthy ones
 *   still find room.
 * - A group that holds anything takes more only while more than a share is free: the last
 *   quarter goes, one slot's worth each, to merchants (or the mail server) holding
 *   nothing. A merchant with one callback due finds a slot unless a share's number of
 *   other merchants (64 with the defaults) each got a stuck request into that quarter first.
 *
 * A lone endpoint with a backlog still gets its whole share (what the drain benchmark needs).
 */
function mayTake(share: number, depth: number, free: number, target: number, group: number): boolean {
  return free > 0 && target < depth * share && (target < depth || group < depth * share) && (group < depth || free > depth * share);
}

interface EventRow {
  id: string;
  merchant_id: string;
  channel_id: string;
  payment_id: string | null;
  type: string;
  created_at: number;
}

type PaymentInEvent = PaymentMailInput['payment'] & {
  object?: string;
  capture?: string;
  capture_delay?: string | null;
  customer?: { email?: unknown } | null;
  billing_details?: { email?: unknown } | null;
  payment_method?: { card?: { brand: string; last4: string } };
};

type EventObject = PaymentInEvent & { payment?: PaymentInEvent; failure_code?: string | null };

/** The payment an event is about, and the refund when it is a refund event; null for anything else. */
function aboutPayment(object: EventObject): { payment: PaymentInEvent; refund: PaymentMailInput['refund'] } | null {
  if (object.object === 'payment') return { payment: object, refund: null };
  if (object.object === 'refund' && object.payment?.object === 'payment') {
    return { payment: object.payment, refund: { amount: object.amount, currency: object.currency, failure_code: object.failure_code ?? null, failure_message: object.failure_message ?? null } };
  }
  return null;
}

/** A receipt is for money taken, held or given back: not for an authorisation captured at once, which gets one on capture. */
function receiptWorthy(type: string, payment: PaymentInEvent): boolean {
  if (!RECEIPT_TYPES.has(type)) return false;
  return type !== 'payment.authorised' || !(payment.capture === 'auto' && !payment.capture_delay);
}

/**
 * Checked when the payment was taken, by the rules of the version that took it: one an earlier
 * version took that is not one address now still gets its delivery, which sendMail cancels
 * saying why, so the merchant sees why its customer got no receipt.
 */
function customerEmail(payment: PaymentInEvent): string | null {
  const email = payment.customer?.email ?? payment.billing_details?.email;
  return typeof email === 'string' && email !== '' ? email : null;
}

/** Runs lease-taking transactions one at a time in this process, so slot counts stay exact. */
class Mutex {
  private tail: Promise<unknown> = Promise.resolve();

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn);
    this.tail = result.catch(() => {});
    return result;
  }
}

const markDispatched = compiledOnce((db, id: string) => db.updateTable('events').set({ dispatched: sql.lit(1) }).where('id', '=', id));

/**
 * PostgreSQL: marks the events dispatched and inserts the deliveries of those it marked,
 * atomically. The rows arrive as JSON in the table's own row type, so every column must be
 * in them (pendingDelivery fills them all): one that is missing is null, not its default.
 */
const claimFanOut = (eventIds: string[], deliveries: DeliveriesTable[]) => sql<{ id: string }>`
  with claimed as (
    update events set dispatched = 1 where id = any(${eventIds}::text[]) and dispatched = 0 returning id
  ), inserted as (
    insert into deliveries
    select d.* from jsonb_populate_recordset(null::deliveries, ${JSON.stringify(deliveries)}::jsonb) as d
    where d.event_id in (select id from claimed)
    on conflict (event_id, target) do nothing
  )
  select id from claimed`;

/** The next batch of undispatched events, in order (SQLite; PostgreSQL reads through migration 011's function). */
const undispatchedBatch = compiledOnce((db) =>
  db
    .selectFrom('events')
    .select(['id', 'merchant_id', 'channel_id', 'payment_id', 'type', 'created_at'])
    .where('dispatched', '=', sql.lit(0))
    .orderBy('id')
    .limit(sql.lit(FAN_OUT_BATCH)),
);

const anyDue = compiledOnce((db, dueBy: number, unlockedBy: number) =>
  db
    .selectFrom('deliveries')
    .select(sql.lit(1).as('due'))
    .where('status', '=', sql.lit('pending'))
    .where('next_attempt_at', '<=', dueBy)
    .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', unlockedBy)]))
    .limit(sql.lit(1)),
);

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

export class Dispatcher {
  /**
   * Deliveries leased by this process, from claim until the outcome is known: up to
   * LEASE_DEPTH times the concurrency, so finished requests are replaced from `ready`
   * at once while the next lease is being committed.
   */
  private readonly inFlight = new Map<string, AbortController>();
  /** The deliveries in `inFlight`, counted per target and group. */
  private readonly leased = new Holdings();
  /**
   * Leased, loaded and waiting for a sending slot, first come first served per endpoint
   * (e-mails under null), so a finished request finds the next one without scanning
   * the deliveries queued for endpoints at their share. Targets take turns: one that
   * started a request moves to the back.
   */
  private readonly ready = new Map<string | null, Claimed[]>();
  private readonly sending = new Holdings();
  /** A quarter of the sending slots: see mayTake. */
  private readonly share: number;
  private readonly running = new Set<Promise<void>>();
  private readonly starting = new Set<Promise<void>>();
  private readonly leases = new Mutex();
  private current: Promise<number> | null = null;
  private again = false;
  private stopped = false;
  private stopping: Promise<void> | null = null;
  private readonly sender: WebhookSender;
  private readonly mailer: Mailer;
  /** The longest one e-mail attempt can take under SMTP_URL's timeouts. */
  private readonly mailAttemptMaxMs: number;
  /**
   * `webhook-timestamp` is the moment the bytes leave, on the wall clock receivers
   * check it against; scheduling (due times, leases, the rotation overlap) uses the
   * context clock.
   */
  private readonly wallClock: Clock = systemClock;
  private readonly policy: RetryPolicy;
  private readonly writer: ResultWriter;
  private readonly unsubscribe: () => void;
  private readonly log: Logger;

  constructor(private readonly services: Services) {
    const { config } = services.ctx;
    this.log = services.ctx.log.child({ worker: 'dispatcher' });
    this.sender = new WebhookSender(outboundPolicy(services.ctx), config.webhookTimeoutMs, config.dispatchConcurrency);
    this.mailer = createMailer(config);
    this.mailAttemptMaxMs = smtpAttemptMaxMs(config.smtpUrl);
    this.share = Math.max(1, Math.ceil(config.dispatchConcurrency / 4));
    this.policy = { baseMs: config.webhookRetryBaseMs, maxDelayMs: config.webhookRetryMaxDelayMs, windowMs: config.webhookRetryWindowMs };
    this.writer = new ResultWriter(services, this.policy, this.log, {
      exclusive: (fn) => this.leases.run(fn),
      refill: (trx, token) => this.claimWithin(trx, token),
      reserve: (rows) => this.reserve(rows),
      start: (token, rows) => this.track(this.startLeased(token, rows)),
    });
    this.unsubscribe = services.outbox.subscribe(() => this.kick());
  }

  /** Wake up now; coalesces with a pass already running. */
  kick(): void {
    if (this.stopped) return;
    this.pass().catch((err: unknown) => {
      // The polling loop says when the database is out of reach, once (loop.ts).
      if (!isDatabaseUnavailable(err)) this.log.error({ err }, 'dispatcher pass failed');
    });
  }

  /** One round of fan-out and claiming; the polling loop's task. Returns the work found. */
  pass(): Promise<number> {
    if (this.current) {
      this.again = true;
      return this.current;
    }
    this.current = (async () => {
      let total = 0;
      try {
        do {
          this.again = false;
          const started = Date.now();
          total += await this.runOnce();
          // Under load every commit rings the outbox: passes back to back would cost the
          // event loop a fan-out and a claim per commit. A short floor between them lets
          // each pass take a bigger batch for a few milliseconds of added lag.
          const rest = PASS_FLOOR_MS - (Date.now() - started);
          if (this.again && !this.stopped && rest > 0) await new Promise((r) => setTimeout(r, rest));
        } while (this.again && !this.stopped);
      } finally {
        this.current = null;
      }
      return total;
    })();
    return this.current;
  }

  /** Stops once, however many callers ask (the loop and the gateway's close). */
  stop(): Promise<void> {
    this.stopping ??= this.shutDown();
    return this.stopping;
  }

  private async shutDown(): Promise<void> {
    this.stopped = true;
    this.unsubscribe();
    await this.current?.catch(() => {});
    // Leased but never started: handed back now, so another process (or this one's
    // successor) sends them at once instead of when their leases run out.
    await this.giveBackUnsent();
    // Requests under way get a grace to finish and have their outcome recorded (not sent
    // again); those still out after it are abandoned: their lease runs out and they are
    // sent again later, which at-least-once allows.
    await Promise.race([Promise.allSettled([...this.running]), new Promise((r) => setTimeout(r, STOP_GRACE_MS).unref())]);
    for (const c of this.inFlight.values()) c.abort();
    await this.writer.close();
    // A result commit under way when the stop began may have leased more with it (its refill).
    await this.giveBackUnsent();
    this.sender.close();
    this.mailer.close();
  }

  private async giveBackUnsent(): Promise<void> {
    await Promise.allSettled([...this.starting]);
    const unsent = [...this.ready.values()].flat();
    this.ready.clear();
    await this.giveBack(unsent).catch((err: unknown) => this.log.warn({ err, deliveries: unsent.length }, 'could not hand back unsent deliveries; they go again when their leases run out'));
  }

  private async giveBack(unsent: Claimed[]): Promise<void> {
    const byToken = new Map<string, string[]>();
    for (const d of unsent) if (d.lease_token !== null) byToken.set(d.lease_token, [...(byToken.get(d.lease_token) ?? []), d.id]);
    for (const [token, ids] of byToken) {
      for (const chunk of chunks(ids, 500)) {
        await this.services.ctx.database.write((trx) =>
          trx.updateTable('deliveries').set({ locked_until: null, lease_token: null }).where('id', 'in', chunk).where('lease_token', '=', token).where('status', '=', 'pending').execute(),
        );
      }
    }
  }

  private async runOnce(): Promise<number> {
    if (this.stopped) return 0;
    const token = randomUUID();
    const fanned = await this.leases.run(async () => {
      const r = await this.fanOut(token);
      this.reserve(r.leased);
      return r;
    });
    if (fanned.events === FAN_OUT_BATCH) this.again = true;
    if (fanned.leased.length) await this.startLeased(token, fanned.leased);
    const claimToken = randomUUID();
    const claimed = await this.leases.run(async () => {
      // Results waiting to be recorded mean a commit is coming that also leases due
      // deliveries for the freed slots; claiming here as well would put another
      // transaction between this pass and the next fan-out (under API load on
      // PostgreSQL each costs 100 ms or more), and fresh events would wait for it.
      if (this.free() <= 0 || this.writer.pending) return [];
      // A pass with nothing due finds that out with a plain read, not a transaction
      // (on SQLite one would hold up the writer thread's commits while it runs; on
      // PostgreSQL it costs two more round trips).
      const { database, clock } = this.services.ctx;
      const now = clock.now();
      if (!(await database.db.executeQuery(anyDue(database.db, now, now))).rows.length) return [];
      const rows = await database.transaction((trx) => this.claimWithin(trx, claimToken));
      this.reserve(rows);
      return rows;
    });
    if (claimed.length) await this.startLeased(claimToken, claimed);
    return fanned.events + claimed.length;
  }

  /** Deliveries this process may still lease. */
  private free(): number {
    return this.stopped ? 0 : LEASE_DEPTH * this.services.ctx.config.dispatchConcurrency - this.inFlight.size;
  }

  private attemptMaxMs(kind: DeliveriesTable['kind']): number {
    return kind === 'webhook' ? this.services.ctx.config.webhookTimeoutMs : this.mailAttemptMaxMs;
  }

  private leaseUntil(kind: DeliveriesTable['kind'], now: number): number {
    return now + LEASE_DEPTH * this.attemptMaxMs(kind) + LEASE_MARGIN_MS;
  }

  /** Counts leased deliveries as in flight, before the transaction that leased them lets go of the lock. */
  private reserve(rows: Leased[]): void {
    for (const r of rows) {
      this.inFlight.set(r.id, new AbortController());
      this.leased.change(r, 1);
    }
  }

  private release(r: Leased): void {
    if (this.inFlight.delete(r.id)) this.leased.change(r, -1);
  }

  /** The rows this process may lease now, in order, under mayTake's rules. */
  private fairShare<T extends Leased>(rows: T[], free: number): T[] {
    const load = this.leased.copy();
    const out: T[] = [];
    for (const r of rows) {
      if (out.length >= free) break;
      if (!mayTake(this.share, LEASE_DEPTH, free - out.length, load.target(r), load.group(r))) continue;
      load.change(r, 1);
      out.push(r);
    }
    return out;
  }

  /**
   * Turns a batch of undispatched events into deliveries and marks them dispatched, in
   * one commit. New deliveries are leased to this process in the same commit (as many
   * as there are free slots), so a fresh event costs one commit before its first
   * attempt, not two.
   */
  async fanOut(token: string): Promise<{ events: number; leased: Leased[] }> {
    const { database } = this.services.ctx;
    if (database.caps.rowLocks) {
      // PostgreSQL: the batch is planned from a plain read, then claimed and turned into
      // deliveries by one statement, so a fan-out costs three round trips and holds no
      // lock between them (under API load each round trip waits behind HTTP requests on
      // the event loop; a transaction of six took 100-250 ms). Another process that
      // planned the same events waits for this statement's row locks, then finds them
      // dispatched: only the events a statement marks get its deliveries.
      const plan = await this.planFanOut(database.db, token);
      if (plan.eventIds.length === 0) return plan.result;
      const { rows } = await claimFanOut(plan.eventIds, plan.deliveries).execute(database.db);
      const claimed = new Set(rows.map((r) => r.id));
      const eventOf = new Map(plan.deliveries.map((d) => [d.id, d.event_id]));
      return { events: plan.result.events, leased: plan.result.leased.filter((l) => claimed.has(eventOf.get(l.id)!)) };
    }
    // SQLite: one process owns the file and its passes run one at a time (the lease
    // mutex), so nothing can fan out these events between this read and the commit. The
    // writes then share the writer thread's commit with the payments being written,
    // instead of costing the event loop a commit and its fsync every pass.
    const plan = await this.planFanOut(database.db, token);
    if (plan.eventIds.length === 0) return plan.result;
    await database.apply([
      ...plan.deliveries.map((row) => compileInsert(database.db, { table: 'deliveries', row, onConflictDoNothing: ['event_id', 'target'] })),
      ...plan.eventIds.map((id) => statementOf(markDispatched(database.db, id))),
    ]);
    return plan.result;
  }

  /** Reads a batch of undispatched events and works out their deliveries, writing nothing. */
  private async planFanOut(db: Kysely<Schema>, token: string): Promise<{ deliveries: DeliveriesTable[]; eventIds: string[]; result: { events: number; leased: Leased[] } }> {
    const { clock, config } = this.services.ctx;
    // PostgreSQL reads through a function that skips dispatched events' dead row versions (migration 011).
    const events: EventRow[] = this.services.ctx.database.dialect === 'postgres'
      ? (await sql<EventRow>`select * from undispatched_events(${FAN_OUT_BATCH})`.execute(db)).rows
      : (await db.executeQuery<EventRow>(undispatchedBatch(db))).rows;
    if (events.length === 0) return { deliveries: [], eventIds: [], result: { events: 0, leased: [] } };
    const cache = LookupCache.of(this.services.ctx);
    const byMerchant = await cache.endpointsOf([...new Set(events.map((e) => e.merchant_id))]);
    const mailRules = new Map<string, MailRules>();
    const modes = new Map<string, KeyMode>();
    for (const id of new Set(events.map((e) => e.channel_id))) {
      const channel = await cache.channelById(id);
      mailRules.set(id, mailRulesOf(channel));
      modes.set(id, channel.mode);
    }
    // Receipts need the customer's address: only their events' bodies are read, with the
    // payment details that slim bodies take the address from.
    const complianceAddresses = await liveNotifyAddresses(db, [...new Set(events.filter((e) => isComplianceEvent(e.type)).map((e) => e.merchant_id))]);
    const receiptEvents = events.filter((e) => e.payment_id !== null && mailRules.get(e.channel_id)?.receipts).map((e) => e.id);
    const wholeBodies = new Map<string, string>();
    for (const ids of chunks(receiptEvents, INSERT_CHUNK)) {
      const rows = await db
        .selectFrom('events')
        .leftJoin('payments', 'payments.id', 'events.payment_id')
        .leftJoin('channels', 'channels.id', 'events.channel_id')
        .select(EVENT_READ_COLUMNS)
        .where('events.id', 'in', ids)
        .execute();
      for (const r of rows) wholeBodies.set(r.id, eventBody(r));
    }

    const now = clock.now();
    const retryUntil = now + config.webhookRetryWindowMs;
    const rows: DeliveriesTable[] = [];
    const add = (event: EventRow, kind: DeliveriesTable['kind'], target: string, extra: Pick<DeliveriesTable, 'endpoint_id'> | Pick<DeliveriesTable, 'recipient' | 'template'>) =>
      rows.push(pendingDelivery({ id: this.services.ctx.newId('delivery'), event_id: event.id, merchant_id: event.merchant_id, kind, target, ...extra }, now, retryUntil));
    for (const event of events) {
      for (const ep of byMerchant.get(event.merchant_id) ?? []) {
        if (endpointTakes(ep, event, modes.get(event.channel_id)!)) add(event, 'webhook', ep.id, { endpoint_id: ep.id });
      }
      const rules = mailRules.get(event.channel_id);
      if (!rules) continue;
      // The merchant has to act on these, so they go out whatever the channels' notify_events
      // say, and to every live channel's addresses: compliance is the merchant's, not one shop's.
      if (isComplianceEvent(event.type)) {
        for (const email of complianceAddresses.get(event.merchant_id) ?? new Set(rules.emails)) add(event, 'email', `compliance:${email}`, { recipient: email, template: 'compliance' });
        continue;
      }
      if (notifiesMerchant(rules, event.type)) {
        for (const email of new Set(rules.emails)) add(event, 'email', `notification:${email}`, { recipient: email, template: 'notification' });
      }
      if (rules.receipts) {
        const whole = wholeBodies.get(event.id);
        const about = whole === undefined ? null : aboutPayment((JSON.parse(whole) as { data: { object: EventObject } }).data.object);
        const email = about && receiptWorthy(event.type, about.payment) ? customerEmail(about.payment) : null;
        if (email) add(event, 'email', `receipt:${email}`, { recipient: email, template: 'receipt' });
      }
    }
    const leased = this.fairShare(rows, this.free());
    for (const row of leased) Object.assign(row, { locked_until: this.leaseUntil(row.kind, now), lease_token: token });
    return { deliveries: rows, eventIds: events.map((e) => e.id), result: { events: events.length, leased: leased.map((r) => ({ id: r.id, endpoint_id: r.endpoint_id, merchant_id: r.merchant_id })) } };
  }

  /** Leases as many due deliveries as there are free slots, inside the caller's transaction. */
  private async claimWithin(trx: Trx, token: string): Promise<Leased[]> {
    const { database, clock } = this.services.ctx;
    const free = this.free();
    if (free <= 0) return [];
    const now = clock.now();
    // Targets and merchants that may take nothing more are left out by the query: read
    // oldest first, their backlog would fill every claim and a merchant with one callback
    // due would never be reached.
    const fullTargets: (string | null)[] = [];
    for (const [target, { group, n }] of this.leased.targets) {
      if (!mayTake(this.share, LEASE_DEPTH, free, n, this.leased.groups.get(group) ?? 0)) fullTargets.push(target);
    }
    const fullMerchants = [...this.leased.groups].filter(([group, n]) => group !== null && !mayTake(this.share, LEASE_DEPTH, free, 0, n)).map(([group]) => group!);
    const fullEndpoints = fullTargets.filter((t) => t !== null);
    let q = trx
      .selectFrom('deliveries')
      .select(['id', 'kind', 'endpoint_id', 'merchant_id'])
      .where('status', '=', sql.lit('pending'))
      .where('next_attempt_at', '<=', now)
      .where((eb) => eb.or([eb('locked_until', 'is', null), eb('locked_until', '<=', now)]))
      .orderBy('next_attempt_at')
      // No target may take more than its share, so reading more rows than one share
      // (or than the free slots) only reads rows to skip: with one busy endpoint, twice
      // the free slots was ~1,800 rows read for ~120 leased, 9 ms of the event loop.
      .limit(Math.min(free, LEASE_DEPTH * this.share));
    if (fullTargets.includes(null)) q = q.where('endpoint_id', 'is not', null);
    if (fullEndpoints.length) q = q.where((eb) => eb.or([eb('endpoint_id', 'is', null), eb('endpoint_id', 'not in', fullEndpoints)]));
    if (fullMerchants.length) q = q.where((eb) => eb.or([eb('endpoint_id', 'is', null), eb('merchant_id', 'not in', fullMerchants)]));
    if (database.caps.rowLocks) q = q.forUpdate().skipLocked();
    // A delivery still in flight here whose lease ran out (a request slower than the
    // lease) must not go twice from this process. That is rare, so it is filtered here
    // rather than sent as a list of every in-flight id with each claim.
    const rows = this.fairShare((await q.execute()).filter((r) => !this.inFlight.has(r.id)), free);
    for (const kind of ['webhook', 'email'] as const) {
      const ids = rows.filter((r) => r.kind === kind).map((r) => r.id);
      if (ids.length) await trx.updateTable('deliveries').set({ locked_until: this.leaseUntil(kind, now), lease_token: token }).where('id', 'in', ids).execute();
    }
    return rows.map((r) => ({ id: r.id, endpoint_id: r.endpoint_id, merchant_id: r.merchant_id }));
  }

  /** Loads what the deliveries leased under `token` need and queues them for a sending slot. */
  private async startLeased(token: string, leased: Leased[]): Promise<void> {
    let details: Claimed[] = [];
    try {
      details = await this.services.ctx.database.db
        .selectFrom('deliveries')
        .innerJoin('events', 'events.id', 'deliveries.event_id')
        .leftJoin('payments', 'payments.id', 'events.payment_id')
        .leftJoin('webhook_endpoints', 'webhook_endpoints.id', 'deliveries.endpoint_id')
        .leftJoin('channels', 'channels.id', 'events.channel_id')
        .leftJoin('merchants', 'merchants.id', 'events.merchant_id')
        .select([
          'deliveries.id',
          'deliveries.event_id',
          'deliveries.kind',
          'deliveries.endpoint_id',
          'deliveries.merchant_id',
          'deliveries.recipient',
          'deliveries.template',
          'deliveries.attempts',
          'deliveries.failures',
          'deliveries.retry_until',
          'deliveries.locked_until',
          'deliveries.lease_token',
          'events.type as event_type',
          'events.sequence as event_sequence',
          'events.created_at as event_created_at',
          'events.payment_id as event_payment_id',
          'events.body',
          'events.body_slim',
          'payments.details as payment_details',
          'webhook_endpoints.url',
          'webhook_endpoints.status as endpoint_status',
          'webhook_endpoints.deleted_at as endpoint_deleted_at',
          'webhook_endpoints.secret_ct',
          'webhook_endpoints.previous_secret_ct',
          'webhook_endpoints.previous_secret_expires_at',
          'channels.name as channel_name',
          'channels.mode as channel_mode',
          'channels.support_email as channel_support_email',
          'merchants.name as merchant_name',
        ])
        .where('deliveries.id', 'in', leased.map((r) => r.id))
        .where('deliveries.lease_token', '=', token)
        .execute()
        .then((rows) =>
          rows.map(({ body_slim, payment_details, event_sequence, event_created_at, event_payment_id, ...d }) => ({
            ...d,
            payment_id: event_payment_id,
            body: eventBody({ id: d.event_id, type: d.event_type, sequence: event_sequence, created_at: event_created_at, payment_id: event_payment_id, body: d.body, body_slim, payment_details, channel_mode: d.channel_mode }),
          })),
        );
    } finally {
      // Anything that cannot start now waits for its lease to run out.
      const found = new Set(details.map((d) => d.id));
      for (const r of leased) if (!found.has(r.id)) this.release(r);
    }
    for (const d of details) {
      const queue = this.ready.get(d.endpoint_id);
      if (queue) queue.push(d);
      else this.ready.set(d.endpoint_id, [d]);
    }
    this.pump();
  }

  /** Starts waiting deliveries while there are sending slots, target by target as mayTake allows. */
  private pump(): void {
    const capacity = this.services.ctx.config.dispatchConcurrency;
    for (const [target, queue] of [...this.ready]) {
      if (this.stopped || this.sending.total >= capacity) return;
      const before = queue.length;
      while (queue.length && mayTake(this.share, 1, capacity - this.sending.total, this.sending.target(queue[0]!), this.sending.group(queue[0]!))) this.start(queue.shift()!);
      if (queue.length === before) continue;
      this.ready.delete(target);
      if (queue.length) this.ready.set(target, queue);
    }
  }

  private track(starting: Promise<void>): void {
    const p = starting.catch((err: unknown) => this.log.error({ err }, 'could not start leased deliveries; their leases will expire')).finally(() => this.starting.delete(p));
    this.starting.add(p);
  }

  private start(d: Claimed): void {
    const signal = this.inFlight.get(d.id)!.signal;
    this.sending.change(d, 1);
    const run = this.deliver(d, signal)
      .catch((err: unknown) => this.log.error({ err, delivery_id: d.id }, 'delivery failed unexpectedly; its lease will expire and it will be retried'))
      .finally(() => {
        this.sending.change(d, -1);
        this.release(d);
        this.running.delete(run);
        this.pump();
      });
    this.running.add(run);
  }

  private async deliver(d: Claimed, signal: AbortSignal): Promise<void> {
    if (!(await this.holdLease(d)) || signal.aborted) return;
    const outcome = d.kind === 'webhook' ? await this.sendWebhook(d, signal) : await this.sendMail(d);
    if (signal.aborted) return;
    // The slot frees now; the result joins the next batch, whose commit also refills the slot.
    this.writer.record(d, outcome);
  }

  /**
   * Slots are shared: a delivery can wait behind slow sends to other endpoints or slow
   * e-mails longer than its lease foresaw, and once the lease can run out before this
   * attempt ends, another process may lease and send it as well. The lease is then
   * extended first, under its token; false when it is no longer this process's to send.
   */
  private async holdLease(d: Claimed): Promise<boolean> {
    const { clock, database } = this.services.ctx;
    const until = clock.now() + this.attemptMaxMs(d.kind) + LEASE_MARGIN_MS;
    if (d.locked_until !== null && d.locked_until >= until) return true;
    const held = await database.write((trx) =>
      trx.updateTable('deliveries').set({ locked_until: until }).where('id', '=', d.id).where('lease_token', '=', d.lease_token).where('status', '=', 'pending').executeTakeFirst(),
    );
    return Number(held.numUpdatedRows) > 0;
  }

  private async sendWebhook(d: Claimed, signal: AbortSignal): Promise<Outcome> {
    if (!d.url || !d.secret_ct || d.endpoint_status !== 'enabled' || d.endpoint_deleted_at !== null) {
      return { kind: 'cancel', reason: 'the endpoint is disabled or deleted' };
    }
    const { clock } = this.services.ctx;
    const startedAt = clock.now();
    const secrets = this.services.webhookEndpoints.signingSecrets(
      { id: d.endpoint_id!, secret_ct: d.secret_ct, previous_secret_ct: d.previous_secret_ct, previous_secret_expires_at: d.previous_secret_expires_at },
      startedAt,
    );
    const headers = signedHeaders(secrets, d.event_id, Math.floor(this.wallClock.now() / 1000), d.body);
    const res = await this.sender.send({ url: d.url, headers: { ...headers }, body: d.body, signal });
    const ok = res.statusCode !== null && res.statusCode >= 200 && res.statusCode < 300;
    return {
      kind: 'attempt',
      startedAt,
      durationMs: res.durationMs,
      statusCode: res.statusCode,
      error: ok ? null : (res.error ?? `HTTP ${res.statusCode}`),
      responseBody: res.body,
      succeeded: ok,
      permanent: false,
      gone: res.statusCode === 410,
      notBefore: res.retryAfterMs === null ? null : clock.now() + res.retryAfterMs,
    };
  }

  /** The message a mail delivery carries, or null when its event has nothing an e-mail can say. */
  private renderMail(d: Claimed): RenderedMail | null {
    const event = JSON.parse(d.body) as { created_at: string; data: { object: unknown } };
    const common = { merchantName: d.merchant_name ?? '', channelName: d.channel_name ?? '', eventType: d.event_type, eventId: d.event_id, occurredAt: event.created_at };
    if (d.template === 'compliance') {
      const compliance = event.data.object as ComplianceMailInput['compliance'] & { object?: string };
      return compliance.object === 'compliance' ? renderComplianceMail({ ...common, compliance }) : null;
    }
    const about = aboutPayment(event.data.object as EventObject);
    const card = about?.payment.payment_method?.card;
    if (!about || !card) return null;
    return renderPaymentMail({
      ...common,
      template: d.template ?? 'notification',
      sandbox: d.channel_mode === 'sandbox',
      supportEmail: d.channel_support_email,
      payment: { ...about.payment, card },
      refund: about.refund,
    });
  }

  private async sendMail(d: Claimed): Promise<Outcome> {
    // An address stored before addresses were checked for RFC 5322 specials (or a delivery
    // queued for one then): the mailer would read it as a display name, a group or a second
    // entry and write to another address than this one, or to none for 72 hours.
    if (!isEmail(d.recipient!)) {
      const remedy = d.template === 'receipt' ? 'the customer gave it before such addresses were refused, and no receipt is sent to it' : 'the operator replaces it with channel update --notify-email';
      return { kind: 'cancel', reason: `${JSON.stringify(d.recipient)} is not one e-mail address (a display name, comment or one of ( ) < > [ ] : ; , \\ " in it); ${remedy}` };
    }
    let mail: ReturnType<typeof this.renderMail>;
    try {
      mail = this.renderMail(d);
    } catch (error) {
      // A message that cannot be rendered never will be: record it as failed, not retried forever.
      this.log.error({ err: error, delivery_id: d.id, event_type: d.event_type }, 'could not render e-mail');
      return { kind: 'cancel', reason: `the ${d.event_type} e-mail could not be rendered` };
    }
    if (!mail) return { kind: 'cancel', reason: `no e-mail template for ${d.event_type}` };
    const { clock } = this.services.ctx;
    const startedAt = clock.now();
    const began = performance.now();
    try {
      // A customer replying to a receipt writes to the shop, not to the gateway's sender.
      const replyTo = d.template === 'receipt' && d.channel_support_email ? { replyTo: d.channel_support_email } : {};
      const r = await this.mailer.send({ id: d.id, to: d.recipient!, ...mail, ...replyTo, date: new Date(startedAt) });
      return { kind: 'attempt', startedAt, durationMs: Math.round(performance.now() - began), statusCode: r.responseCode, error: null, responseBody: r.response.slice(0, 1024), succeeded: true, permanent: false, gone: false, notBefore: null };
    } catch (error) {
      const e = error as Error & { responseCode?: number | null };
      return {
        kind: 'attempt',
        startedAt,
        durationMs: Math.round(performance.now() - began),
        statusCode: e.responseCode ?? null,
        error: e.message.slice(0, 500),
        responseBody: null,
        succeeded: false,
        permanent: error instanceof PermanentMailError,
        gone: false,
        notBefore: null,
      };
    }
  }
}

interface Pending {
  d: Claimed;
  outcome: Outcome;
}

interface WriterHooks {
  /** Serialises lease-taking transactions in this process. */
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  /** Leases work for the slots the batch freed, inside the batch's transaction. */
  refill(trx: Trx, token: string): Promise<Leased[]>;
  reserve(rows: Leased[]): void;
  start(token: string, rows: Leased[]): void;
}

/**
 * Writes delivery results in batches: every result that arrived while the previous
 * batch was committing goes into the next transaction, which also leases the next
 * deliveries for the freed slots, so a busy dispatcher pays one commit per batch.
 * Each update is guarded by the lease it was sent under.
 */
class ResultWriter {
  private queue: Pending[] = [];
  private scheduled = false;
  private flushing: Promise<void> | null = null;

  constructor(
    private readonly services: Services,
    private readonly policy: RetryPolicy,
    private readonly log: Logger,
    private readonly hooks: WriterHooks,
  ) {}

  /** A batch is queued or being written: its commit will refill the freed slots. */
  get pending(): boolean {
    return this.scheduled || this.flushing !== null || this.queue.length > 0;
  }

  record(d: Claimed, outcome: Outcome): void {
    this.queue.push({ d, outcome });
    this.schedule();
  }

  /** Writes what is queued; the dispatcher has stopped leasing by then. */
  async close(): Promise<void> {
    while (this.flushing || this.queue.length) await (this.flushing ?? this.flush());
  }

  private schedule(): void {
    if (this.scheduled || this.flushing) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.flushing) void this.flush();
    });
  }

  private flush(): Promise<void> {
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return Promise.resolve();
    const token = randomUUID();
    const done = (async () => {
      try {
        const refilled = await this.hooks.exclusive(async () => {
          const { rows, gaveUp } = await this.services.ctx.database.write(async (trx) => {
            const gaveUp = await this.write(trx, batch);
            return { rows: await this.hooks.refill(trx, token), gaveUp };
          });
          this.hooks.reserve(rows);
          this.report(batch, gaveUp);
          return rows;
        });
        // Starting them needs a read, not the writer: the next batch may commit meanwhile.
        if (refilled.length) this.hooks.start(token, refilled);
      } catch (error) {
        // Nothing was written. A delivery whose result stays unwritten goes again once its lease runs out.
        const lost = (err: unknown, d: Claimed) => this.log.error({ err, delivery_id: d.id }, 'could not record a delivery result; its lease will run out and it will go again');
        if (batch.length === 1) return lost(error, batch[0]!.d);
        // One result the database refuses must not cost the others theirs (they would be
        // sent again, and again while it keeps refusing): each is written again on its own,
        // one after another, as results for one endpoint can lock the same rows. The next
        // pass refills the freed slots.
        for (const p of batch) {
          await this.services.ctx.database
            .write((trx) => this.write(trx, [p]))
            .then((gaveUp) => this.report([p], gaveUp))
            .catch((err: unknown) => lost(err, p.d));
        }
      }
    })();
    this.flushing = done.finally(() => {
      this.flushing = null;
      if (this.queue.length) this.schedule();
    });
    return this.flushing;
  }

  /**
   * Outcomes once recorded, counted for the operator's metrics; failed attempts and given-up
   * deliveries also logged: an operator sees a merchant's endpoint or the mail server failing
   * in the log, not only in that merchant's events, with whose it is and what it was about.
   * Of the endpoint's URL only its origin is logged (merchants put secrets in paths and query
   * strings); of an e-mail, not the address.
   */
  private report(batch: Pending[], gaveUp: ReadonlySet<string>): void {
    const metrics = this.services.ctx.metrics;
    for (const { d, outcome: o } of batch) {
      if (o.kind !== 'attempt') {
        metrics.countDelivery(d.kind, 'cancelled');
        continue;
      }
      metrics.countDelivery(d.kind, o.succeeded ? 'succeeded' : gaveUp.has(d.id) ? 'failed' : 'retrying', o.durationMs / 1000);
      if (o.succeeded) continue;
      const fields = {
        delivery_id: d.id,
        merchant_id: d.merchant_id,
        payment_id: d.payment_id,
        event_id: d.event_id,
        event_type: d.event_type,
        endpoint_id: d.endpoint_id,
        ...(d.url !== null && { endpoint: URL.canParse(d.url) ? urlOrigin(d.url) : null }),
        kind: d.kind,
        attempt: d.attempts + 1,
        status_code: o.statusCode,
        error: o.error,
      };
      if (gaveUp.has(d.id)) this.log.error(fields, `gave up on a ${d.kind === 'webhook' ? 'callback' : 'notification e-mail'}: no more attempts`);
      else this.log.warn(fields, `${d.kind === 'webhook' ? 'callback' : 'notification e-mail'} attempt failed; it will be tried again`);
    }
  }

  /** Records the batch's outcomes; answers the deliveries given up on (marked failed). */
  private async write(trx: Trx, batch: Pending[]): Promise<Set<string>> {
    const gaveUp = new Set<string>();
    const now = this.services.ctx.clock.now();
    const attempts = batch.flatMap(({ d, outcome: o }) =>
      o.kind === 'attempt'
        ? [{ delivery_id: d.id, attempt: d.attempts + 1, event_id: d.event_id, started_at: o.startedAt, duration_ms: o.durationMs, status_code: o.statusCode, error: o.error, response_body: o.responseBody, succeeded: o.succeeded ? 1 : 0 }]
        : [],
    );
    for (const chunk of chunks(attempts, INSERT_CHUNK)) {
      await trx.insertInto('delivery_attempts').values(chunk).onConflict((oc) => oc.columns(['delivery_id', 'attempt']).doNothing()).execute();
    }
    const release = { locked_until: null, lease_token: null, updated_at: now };
    // Successes, the bulk of the traffic, are written a few statements per batch.
    const succeeded = new Map<string, { token: string; statusCode: number | null; ids: string[] }>();
    for (const { d, outcome: o } of batch) {
      if (o.kind !== 'attempt' || !o.succeeded) continue;
      const key = `${d.lease_token}\u0000${o.statusCode}`;
      const group = succeeded.get(key) ?? { token: d.lease_token!, statusCode: o.statusCode, ids: [] };
      group.ids.push(d.id);
      succeeded.set(key, group);
    }
    for (const g of succeeded.values()) {
      for (const ids of chunks(g.ids, INSERT_CHUNK)) {
        await trx
          .updateTable('deliveries')
          .set((eb) => ({ ...release, attempts: eb('attempts', '+', 1), failures: 0, last_status_code: g.statusCode, last_error: null, status: 'succeeded', completed_at: now }))
          .where('id', 'in', ids)
          .where('lease_token', '=', g.token)
          .where('status', '=', 'pending')
          .execute();
      }
    }
    for (const { d, outcome: o } of batch) {
      if (o.kind === 'attempt' && o.succeeded) continue;
      const leased = trx.updateTable('deliveries').where('id', '=', d.id).where('lease_token', '=', d.lease_token).where('status', '=', 'pending');
      // A redelivery asked for while this attempt ran gave the delivery a fresh schedule
      // (new window, no failures, due at once). That schedule must stand, or a failure
      // judged against the old window would drop the redelivery: the attempt is logged
      // and the lease released, nothing more.
      const asClaimed = leased.where('retry_until', '=', d.retry_until).where('failures', '=', d.failures);
      const last = o.kind === 'attempt' ? { attempts: d.attempts + 1, last_status_code: o.statusCode, last_error: o.error } : {};
      let written;
      if (o.kind === 'cancel') {
        written = await asClaimed.set({ ...release, status: 'cancelled', last_error: o.reason, completed_at: now }).executeTakeFirst();
      } else {
        const failures = d.failures + 1;
        const next = o.permanent || o.gone ? null : honourRetryAfter(this.policy, now, nextAttemptAt(this.policy, now, failures, d.retry_until), o.notBefore, d.retry_until);
        if (next === null) {
          written = await asClaimed.set({ ...release, ...last, failures, status: 'failed', completed_at: now }).executeTakeFirst();
          if (Number(written.numUpdatedRows) > 0) gaveUp.add(d.id);
        } else written = await asClaimed.set({ ...release, ...last, failures, next_attempt_at: next }).executeTakeFirst();
      }
      if (Number(written.numUpdatedRows) === 0) await leased.set({ ...release, ...last }).execute();
      if (o.kind === 'attempt' && o.gone && d.endpoint_id) {
        const reason = `the endpoint answered 410 Gone on ${new Date(now).toISOString()}`;
        await trx.updateTable('webhook_endpoints').set({ status: 'disabled', disabled_reason: reason, updated_at: now }).where('id', '=', d.endpoint_id).where('status', '=', 'enabled').execute();
        await cancelPendingDeliveries(trx, d.endpoint_id, now, 'the endpoint was disabled after answering 410 Gone');
      }
    }
    return gaveUp;
  }
}

/** A stored endpoint URL parses; should one not, nothing of it is logged. */
/** The dispatcher as a worker loop: polls as a safety net, and stops the dispatcher with it. */
export class DispatcherLoop extends Loop {
  constructor(
    readonly dispatcher: Dispatcher,
    pollMs: number,
    log: Logger,
    metrics: Metrics,
  ) {
    super('dispatcher', pollMs, () => dispatcher.pass(), log, metrics);
  }

  /**
   * The dispatcher stops first: under load every commit wakes it, and a pass runs for as
   * long as wake-ups keep coming, so waiting for the loop's pass before stopping it waited
   * for the traffic to end.
   */
  override async stop(): Promise<void> {
    await Promise.all([this.dispatcher.stop(), super.stop()]);
  }
}

export function dispatcherLoop(services: Services): DispatcherLoop {
  return new DispatcherLoop(new Dispatcher(services), services.ctx.config.dispatchPollMs, services.ctx.log, services.ctx.metrics);
}

/**
 * The notification addresses of each merchant's live channels, once each whatever its case;
 * merchants without a live channel are left out (their notices go to the channel they ride).
 */
async function liveNotifyAddresses(db: Kysely<Schema>, merchantIds: string[]): Promise<Map<string, Set<string>>> {
  if (merchantIds.length === 0) return new Map();
  const byMerchant = new Map<string, Map<string, string>>();
  const rows = await db.selectFrom('channels').select(['merchant_id', 'notify_emails']).where('merchant_id', 'in', merchantIds).where('mode', '=', 'live').orderBy('id').execute();
  for (const row of rows) {
    const addresses = byMerchant.get(row.merchant_id) ?? new Map<string, string>();
    for (const email of JSON.parse(row.notify_emails) as string[]) if (!addresses.has(email.toLowerCase())) addresses.set(email.toLowerCase(), email);
    byMerchant.set(row.merchant_id, addresses);
  }
  return new Map([...byMerchant].map(([merchant, addresses]) => [merchant, new Set(addresses.values())]));
}

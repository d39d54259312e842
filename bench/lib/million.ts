import { randomBytes } from 'node:crypto';
import { closeSync, cpSync, existsSync, fsyncSync, openSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import SQLite from 'better-sqlite3';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { createContext } from '../../src/server.js';
import { buildServices } from '../../src/app/services.js';
import { eventRow } from '../../src/app/events.js';
import { paymentResource } from '../../src/app/payment-resource.js';
import type { AuthoriseCommand } from '../../src/app/authorise.js';
import type { PaymentsTable } from '../../src/adapters/storage/schema.js';
import { PACKED_COLUMNS, packJson, unpackJson } from '../../src/adapters/storage/packed-json.js';
import type { AuthoriseRequestBody } from '../../src/http/schemas/payment-request.js';
import { formatId } from '../../src/domain/ids.js';
import { storedParams } from '../../src/adapters/storage/stored-values.js';
import { bodyFactory } from './bodies.js';
import { jsonHeaders, probeFeatures } from './flows.js';
import { getEach, type Measurement, postEach, runLoad } from './load.js';
import { type GatewayChild, removeDir, rssBytes, startGateway, tempDir, watchUsage } from './processes.js';
import { format, table } from './report.js';

/** What Authorise.prepare() hands to its unit of work (src/app/authorise.ts). */
interface Prepared {
  payment: PaymentsTable;
  session: Record<string, unknown> & { state: string };
  event: Record<string, unknown>;
}

interface BulkRow {
  payment: PaymentsTable;
  session: Record<string, unknown>;
  events: Array<Record<string, unknown>>;
}

/** Templates built by the gateway's own code; each loaded payment is one of them with fresh ids. */
const TEMPLATES = 64;
const BATCH = 10_000;
const SAMPLE_IDS = 10_000;

/**
 * Finished card payments as the gateway writes them: Authorise.prepare() validates the
 * spec's example and seals the card exactly as POST /payment/authorise does, the sandbox
 * acquirer approves it, and the authorised and captured states with their outbox events
 * are made the way recordAuthorisation()/applyTransition() make them (the card erased
 * with the page, page done, events already dispatched).
 */
async function buildTemplates(dataDir: string, tag: string): Promise<BulkRow[]> {
  // The keys the benchmark's gateway runs with, from its environment when set there.
  const keys = Object.fromEntries(['VAULT_KEK', 'VAULT_OLD_KEKS', 'HMAC_KEY'].flatMap((k) => (process.env[k] ? [[k, process.env[k]!]] : [])));
  const config = loadConfig({ ...keys, DATA_DIR: dataDir, LOG_LEVEL: 'silent', WORKERS: 'false', PORT: '8080' });
  const ctx = await createContext(config, pino({ level: 'silent' }));
  try {
    const services = buildServices(ctx);
    const credentials = JSON.parse(readFileSync(join(dataDir, 'sandbox-credentials.json'), 'utf8')) as { merchant_id: string; channel: string };
    const authorise = services.authorise as unknown as { prepare(cmd: AuthoriseCommand): Promise<Prepared> };
    if (typeof authorise.prepare !== 'function') throw new Error('Authorise.prepare() is gone: update bench/lib/million.ts to build rows the way src/app/authorise.ts now does');
    const body = bodyFactory(`bulk-${tag}`);
    const templates: BulkRow[] = [];
    for (let i = 0; i < TEMPLATES; i++) {
      const rawBody = body(i);
      const p = await authorise.prepare({ merchantId: credentials.merchant_id, keyMode: null, body: JSON.parse(rawBody) as AuthoriseRequestBody, rawBody, idempotencyKey: undefined });
      const details = JSON.parse(unpackJson(p.payment.details)) as Parameters<typeof paymentResource>[3];
      const now = p.payment.created_at;
      const card = (JSON.parse(rawBody) as { payment_method: { number: string; cvc: string } }).payment_method;
      const verdict = await ctx.acquirer.authorise({
        paymentId: p.payment.id,
        amount: p.payment.amount,
        currency: p.payment.currency,
        card: { pan: card.number, cvc: card.cvc, expiryMonth: p.payment.card_exp_month, expiryYear: p.payment.card_exp_year, brand: p.payment.card_brand as 'visa', holderName: undefined },
        initiator: 'cit',
        authenticated: true,
        storedCredential: true,
        paymentSubType: 'unscheduled-initial',
        industryUsage: 'none',
      });
      if (verdict.outcome !== 'approved') throw new Error(`the sandbox acquirer did not approve card ${p.payment.card_bin}…${p.payment.card_last4}`);
      const authorised: PaymentsTable = {
        ...p.payment,
        status: 'authorised',
        authorisation_code: verdict.authorisationCode,
        network_reference: verdict.networkReference,
        authorised_at: now,
        expires_at: now + config.authorisationValidityMs,
        sequence: 2,
        version: 2,
      };
      const captured: PaymentsTable = { ...authorised, status: 'captured', captured_amount: authorised.amount, expires_at: null, sequence: 3, version: 3 };
      const events = [
        p.event,
        eventRow(ctx, authorised, 'payment.authorised', paymentResource(ctx.vault, authorised, { reference: credentials.channel, mode: 'sandbox' }, details), now),
        eventRow(ctx, captured, 'payment.captured', paymentResource(ctx.vault, captured, { reference: credentials.channel, mode: 'sandbox' }, details), now),
      ].map((e) => ({ ...e, dispatched: 1 }));
      templates.push({ payment: captured, session: { ...p.session, state: 'done' }, events });
    }
    return templates;
  } finally {
    await ctx.database.close();
  }
}

/**
 * Writes `count` payments straight into the gateway's SQLite file: each a template with
 * its own time-ordered ids and reference (so every index grows as it would in
 * production), no card (the gateway erases it when the page ends), JSON columns packed one
 * by one as the gateway packs them. Only the commit differs from the gateway's: big
 * transactions with journal_mode=OFF and synchronous=OFF on the loader's connection —
 * this is test data — and the file is back in WAL mode before the server reopens it
 * with its own synchronous=FULL.
 */
export async function bulkLoad(dataDir: string, count: number, tag: string): Promise<{ ids: string[]; seconds: number }> {
  const t0 = performance.now();
  const templates = await buildTemplates(dataDir, tag);
  const raw = new SQLite(join(dataDir, 'gateway.sqlite'));
  raw.pragma('journal_mode = OFF');
  raw.pragma('synchronous = OFF');
  raw.pragma('cache_size = -1000000');
  const statements = new Map<string, SQLite.Statement>();
  const insert = (tableName: string, row: Record<string, unknown>) => {
    // Stored as the gateway stores it on SQLite: JSON columns it packs, packed.
    for (const [column, dictionary] of Object.entries(PACKED_COLUMNS[tableName] ?? {})) {
      if (typeof row[column] === 'string') row = { ...row, [column]: packJson(row[column], dictionary) };
    }
    let st = statements.get(tableName);
    if (!st) {
      const cols = Object.keys(row);
      st = raw.prepare(`insert into ${tableName} (${cols.join(', ')}) values (${cols.map((c) => '@' + c).join(', ')})`);
      statements.set(tableName, st);
    }
    st.run(storedParams(row));
  };
  const ids: string[] = [];
  const every = Math.max(1, Math.floor(count / SAMPLE_IDS));
  try {
    for (let done = 0; done < count; ) {
      const n = Math.min(BATCH, count - done);
      // One draw of randomness per batch: 4 ids of 10 bytes per payment.
      const random = randomBytes(n * 40);
      raw.transaction(() => {
        for (let i = 0; i < n; i++) {
          // The clock read per payment, as authorise reads it: ids advance as in
          // production, where a time-ordered key lands at the end of its B-tree. (One
          // reading per batch gave 10,000 payments the same millisecond, and their random
          // id suffixes scattered them over half-full pages.)
          const now = Date.now();
          const t = templates[(done + i) % TEMPLATES]!;
          const r = random.subarray(i * 40, (i + 1) * 40);
          const id = formatId('payment', now, r.subarray(0, 10));
          const reference = `bulk-${tag}-${done + i}`;
          const swap = (text: string) => text.replaceAll(t.payment.id, id).replaceAll(`"${t.payment.reference}"`, `"${reference}"`);
          insert('payments', { ...t.payment, id, reference, created_at: now, updated_at: now, authorised_at: now } as unknown as Record<string, unknown>);
          insert('checkout_sessions', { ...t.session, payment_id: id, created_at: now });
          t.events.forEach((e, k) => {
            const eventId = formatId('event', now, r.subarray(10 + k * 10, 20 + k * 10));
            insert('events', { ...e, id: eventId, payment_id: id, created_at: now, body: swap((e.body as string).replaceAll(e.id as string, eventId)) });
          });
          if ((done + i) % every === 0) ids.push(id);
        }
      })();
      done += n;
    }
  } finally {
    raw.pragma('journal_mode = WAL');
    raw.close();
  }
  // The load wrote without fsync: flush it now, or the kernel's write-back of a
  // gigabyte or two would compete with the next measurement's own fsyncs.
  const fd = openSync(join(dataDir, 'gateway.sqlite'), 'r+');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return { ids, seconds: (performance.now() - t0) / 1000 };
}

function fileBytes(dataDir: string): number {
  const file = join(dataDir, 'gateway.sqlite');
  return [file, `${file}-wal`].filter(existsSync).reduce((n, f) => n + statSync(f).size, 0);
}

/** Bytes per table and index (SQLite's dbstat), to show what a stored payment is made of. */
function bytesByTable(dataDir: string): Array<{ name: string; bytes: number }> {
  const db = new SQLite(join(dataDir, 'gateway.sqlite'), { readonly: true });
  try {
    return db.prepare('select name, sum(pgsize) as bytes from dbstat group by name order by bytes desc').all() as Array<{ name: string; bytes: number }>;
  } finally {
    db.close();
  }
}

interface SizePoint {
  label: string;
  payments: number;
  rssIdle: number;
  authorise: Measurement;
  authoriseRss: number;
  /** Steal during the authorise window: a round the host held back is low for that reason. */
  authoriseSteal: number;
  getOne: Measurement;
  list: Measurement | null;
}

async function measureAt(label: string, payments: number, dataDir: string, ids: string[], opts: MillionOptions): Promise<SizePoint> {
  let gw: GatewayChild | undefined;
  try {
    gw = await startGateway({ dataDir });
    await new Promise((ok) => setTimeout(ok, 1000));
    const rssIdle = rssBytes(gw.pid);
    const features = await probeFeatures(gw.url, gw.secretKey);
    const headers = jsonHeaders(gw.secretKey);
    const authorise = (tag: string) => postEach('/payment/authorise', headers, bodyFactory(`${opts.runId}-${label}-${tag}`));
    opts.say(`stored payments: ${label}: authorise`);
    await runLoad({ url: gw.url, connections: opts.connections, seconds: opts.warmupSeconds, requests: authorise('warm'), expect: (s) => s === 201 });
    const stop = watchUsage(gw.pid);
    const a = await runLoad({ url: gw.url, connections: opts.connections, seconds: opts.seconds, requests: authorise('m'), expect: (s) => s === 201 });
    const usage = stop();
    opts.say(`stored payments: ${label}: GET /payment/{id}`);
    const getHeaders = { 'x-secret-key': gw.secretKey };
    const readSeconds = Math.max(2, Math.round(opts.seconds / 2));
    const getOne = await runLoad({
      url: gw.url,
      connections: opts.connections,
      seconds: readSeconds,
      requests: getEach(getHeaders, (n) => `/payment/${ids[(n * 7919) % ids.length]}`),
      expect: (s) => s === 200,
    });
    let list: Measurement | null = null;
    if (features.listPayments) {
      opts.say(`stored payments: ${label}: GET /payments`);
      list = await runLoad({ url: gw.url, connections: opts.connections, seconds: readSeconds, requests: getEach(getHeaders, () => '/payments?limit=20'), expect: (s) => s === 200 });
    }
    return { label, payments, rssIdle, authorise: a, authoriseRss: usage.rssMaxBytes, authoriseSteal: usage.stealPercent, getOne, list };
  } catch (error) {
    throw gw?.ended() ? new Error(`the server ${gw.ended()} (not stopped by the benchmark) while measuring at ${payments} payments`) : error;
  } finally {
    await gw?.stop();
  }
}

export interface MillionOptions {
  payments: number;
  seconds: number;
  warmupSeconds: number;
  connections: number;
  runId: string;
  say: (text: string) => void;
}

/** Measurements after the load, alternating between the two sizes (A B, B A), so a machine that speeds up or slows down over the minutes of the load moves both alike. */
const ROUNDS = 2;

/**
 * The gateway at BENCH_LOAD_PAYMENTS stored payments against the same gateway nearly
 * empty (1,000 payments, so reads have something to find): disk per payment, RSS,
 * authorise throughput and read latency.
 */
export async function millionSection(opts: MillionOptions): Promise<string> {
  const dataDir = tempDir('tzero-bench-million-');
  const emptyDir = tempDir('tzero-bench-nearly-empty-');
  try {
    // First boot creates the schema, keys and sandbox credentials the loader reuses.
    await (await startGateway({ dataDir })).stop();
    const base = Math.min(1_000, opts.payments);
    opts.say(`stored payments: loading ${base}`);
    const small = await bulkLoad(dataDir, base, 'a');
    // The nearly empty gateway is a copy of this one: same keys, merchant and channel.
    cpSync(dataDir, emptyDir, { recursive: true });

    const rest = opts.payments - base;
    const before = fileBytes(dataDir);
    const tablesBefore = new Map(bytesByTable(dataDir).map((t) => [t.name, t.bytes]));
    opts.say(`stored payments: loading ${rest.toLocaleString('en-US')} more`);
    const big = rest > 0 ? await bulkLoad(dataDir, rest, 'b') : { ids: [], seconds: 0 };
    const after = fileBytes(dataDir);
    const perPayment = rest > 0 ? (after - before) / rest : NaN;
    // Per table, only what the loaded payments added.
    const tables = bytesByTable(dataDir).map((t) => ({ name: t.name, bytes: t.bytes - (tablesBefore.get(t.name) ?? 0) }));
    const fulls: SizePoint[] = [];
    const empties: SizePoint[] = [];
    // Full then nearly empty, then the other way round: what a measurement leaves behind
    // (the file cache's writeback, a warmer or colder CPU) falls on each size alike.
    for (let round = 1; round <= ROUNDS; round++) {
      const full = () => measureAt(`full-${round}`, opts.payments, dataDir, [...small.ids, ...big.ids], opts);
      const empty = () => measureAt(`empty-${round}`, base, emptyDir, small.ids, opts);
      if (round % 2) {
        fulls.push(await full());
        empties.push(await empty());
      } else {
        empties.push(await empty());
        fulls.push(await full());
      }
    }

    const mb = (b: number) => format.fixed(b / 1048576, 1);
    const lat = (m: Measurement | null) => (m ? `${format.ms(m.p50)} / ${format.ms(m.p99)}` : 'n/a');
    const rowsFor = (p: SizePoint, round: number) => [
      String(round),
      p.payments.toLocaleString('en-US'),
      mb(p.rssIdle),
      mb(p.authoriseRss),
      format.whole(p.authorise.rate),
      format.ms(p.authorise.p99),
      String(p.authorise.errors),
      format.fixed(p.authoriseSteal, 0),
      format.whole(p.getOne.rate),
      lat(p.getOne),
      lat(p.list),
    ];
    const header = ['round', 'stored payments', 'RSS idle MB', 'RSS under load MB', 'authorise req/s', 'authorise p99 ms', 'errors', 'authorise steal %', 'GET /payment/{id} req/s', 'GET /payment/{id} p50 / p99 ms', 'GET /payments p50 / p99 ms'];
    const grid = table(
      header,
      fulls.flatMap((full, i) => [rowsFor(full, i + 1), rowsFor(empties[i]!, i + 1)]),
      new Set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
    );
    const mean = (points: SizePoint[], of: (p: SizePoint) => number) => points.reduce((n, p) => n + of(p), 0) / points.length;
    const rate = (p: SizePoint) => p.authorise.rate;
    const pairs = fulls.map((full, i) => format.fixed(rate(full) / rate(empties[i]!), 3)).join(', ');
    const growth = (of: (p: SizePoint) => number) => format.fixed((mean(fulls, of) - mean(empties, of)) / 1048576, 1);
    const stored = opts.payments.toLocaleString('en-US');
    const total = tables.reduce((n, t) => n + t.bytes, 0);
    const breakdown = tables
      .filter((t) => t.bytes / total >= 0.005)
      .sort((a, b) => b.bytes - a.bytes)
      .map((t) => `${t.name} ${format.fixed(t.bytes / rest, 0)}`)
      .join(', ');
    return [
      `Stored payments (SQLite): ${stored} finished card payments (captured, 3 outbox events each, their cards erased with their pages) bulk-loaded in ${format.fixed(small.seconds + big.seconds, 0)} s`,
      '',
      grid,
      '',
      `- disk: ${format.whole(perPayment)} bytes per payment (database file growth over the ${rest.toLocaleString('en-US')} loaded after the first ${base.toLocaleString('en-US')}), ${mb(after)} MB in all`,
      `- bytes per loaded payment by table/index (dbstat, growth over the load): ${breakdown}`,
      `- authorise at ${stored} ÷ nearly empty: ${format.fixed(mean(fulls, rate) / mean(empties, rate), 3)} (means of ${ROUNDS} rounds measured alternately after the load; round by round ${pairs}); RSS growth under load: ${growth((p) => p.authoriseRss)} MB, idle: ${growth((p) => p.rssIdle)} MB`,
      `- GET /payments: ${fulls[0]!.list ? 'first page of 20, newest first' : 'not measured: GET /payments → 404 route_not_found (issue 5)'}`,
    ].join('\n');
  } finally {
    removeDir(dataDir);
    removeDir(emptyDir);
  }
}

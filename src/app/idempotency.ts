import { createHmac, hkdfSync } from 'node:crypto';
import { holdsCardNumber } from '../domain/card-number-in-text.js';
import { DomainError } from '../domain/errors.js';
import type { Trx } from '../adapters/storage/database.js';
import { insertRow, type RowInsert } from '../adapters/storage/compiled.js';
import type { KeyScope } from './key-scope.js';
import type { AppContext } from './context.js';

/**
 * Idempotency-Key handling (IETF httpapi draft): the stored response is written in the
 * same transaction as the effect it describes, so a replay can never describe an
 * effect that was rolled back, nor miss one that committed.
 */
export interface StoredResponse {
  status: number;
  body: string;
  replayed: boolean;
}

/**
 * Writes the stored response inside the effect's own unit of work: called with its
 * transaction, or, for insert-only units, as one more row (null when the request had no key).
 */
export type Recorder = ((trx: Trx, status: number, body: string) => Promise<void>) & {
  row(status: number, body: string): RowInsert | null;
  /**
   * Replaces a response recorded earlier in the request (a provisional answer committed
   * before the acquirer was asked) with the final one, in the transaction that settles it.
   */
  replace(trx: Trx, status: number, body: string): Promise<void>;
  /** Drops that provisional response when the outcome is one that is not stored (a refusal): a retry tries again. */
  forget(trx: Trx): Promise<void>;
};

const NOTHING_TO_RECORD: Recorder = Object.assign(async () => {}, { row: () => null, replace: async () => {}, forget: async () => {} });

export const IDEMPOTENCY_KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
const inFlight = new Set<string>();

/**
 * Stored responses carry the hosted-page URL (a bearer token for the page), so they are
 * sealed like other secrets; the record id binds each one to its merchant and key.
 */
function sealStoredResponse(ctx: AppContext, merchantId: string, key: string, body: string): string {
  return ctx.vault.sealString(`idempotency:${merchantId}:${key}`, body);
}

/** A `"cvc"` member's string value, as sent (escapes included). */
const CVC_VALUE = /("cvc"\s*:\s*)"(?:[^"\\]|\\.)*"/g;

/**
 * A JSON body in one spelling: members in name order, every value typed and length-prefixed so
 * no two requests share one, every CVC's value blanked. Names are unique (a repeated one is
 * refused before: duplicate-names.ts). Written as one string, not an object rebuilt and
 * serialised again: it runs on every authorise that carries a key, and that copy cost four
 * times this. A body that is not JSON (none reaches here parsed otherwise) is compared as sent.
 */
function canonicalBody(rawBody: string): string {
  if (!rawBody.trim()) return rawBody;
  let parsed: unknown;
  try {
    parsed = JSON.parse(rawBody);
  } catch {
    return rawBody.replace(CVC_VALUE, '$1""');
  }
  return spelled(parsed);
}

function spelled(value: unknown): string {
  if (typeof value === 'string') return `s${value.length}:${value}`;
  if (typeof value === 'number') return `n${value};`;
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (value === null) return 'z';
  if (Array.isArray(value)) {
    let out = `a${value.length}:`;
    for (const item of value) out += spelled(item);
    return out;
  }
  const members = value as Record<string, unknown>;
  const names = Object.keys(members).sort();
  let out = `o${names.length}:`;
  for (const name of names) {
    const member = members[name];
    out += `${name.length}:${name}${name === 'cvc' && typeof member === 'string' ? 's0:' : spelled(member)}`;
  }
  return out;
}

export class Idempotency {
  /**
   * Keyed, because an authorise body holds a card number and CVC: a plain hash of it
   * could be brute-forced back to the card from the few unknown digits.
   */
  private readonly hashKey: Buffer;

  constructor(private readonly ctx: AppContext) {
    this.hashKey = Buffer.from(hkdfSync('sha256', ctx.config.hmacKey, Buffer.alloc(0), 'tzero idempotency request v1', 32));
  }

  /**
   * What a retry is compared by, kept as long as the key: the request as parsed, not its bytes
   * (decision 0037). A client that serialises its retry again (spacing, member order, 250.0,
   * an escaped letter) sends the same request; refused, it would be sent once more under a new
   * key and move the money twice. The CVC's value is left out: it must not outlive the
   * authorisation in any form (PCI DSS 3.3.1), and with the hash key its three or four digits
   * would be found by trying them all. A retry that differs in the CVC alone is the same request.
   */
  private requestHash(endpoint: string, rawBody: string): string {
    return createHmac('sha256', this.hashKey).update(endpoint).update('\n').update(canonicalBody(rawBody)).digest('hex');
  }

  /** Keys stored before retries were compared by content hold a hash of the bytes, the CVC's value blanked. */
  private bytesHash(endpoint: string, rawBody: string): string {
    const compared = rawBody.includes('"cvc"') ? rawBody.replace(CVC_VALUE, '$1""') : rawBody;
    return createHmac('sha256', this.hashKey).update(endpoint).update('\n').update(compared).digest('hex');
  }

  /**
   * Keys stored before the CVC was left out hold a hash of the whole body; until they expire
   * (IDEMPOTENCY_TTL_HOURS after that change) a retry of one is compared that way too, or it
   * would be refused as another request and tempt a second payment under a new key.
   */
  private wholeBodyHash(endpoint: string, rawBody: string): string {
    return createHmac('sha256', this.hashKey).update(endpoint).update('\n').update(rawBody).digest('hex');
  }

  validateKey(key: string): void {
    if (!IDEMPOTENCY_KEY_PATTERN.test(key)) {
      throw new DomainError(400, 'invalid_idempotency_key', 'Idempotency-Key must be 1-255 printable ASCII characters without spaces', '/headers/idempotency-key');
    }
  }

  /**
   * Runs `effect` once per (merchant, key mode, key). Returns the stored response for a replay;
   * refuses a reused key with another body (422) or one still being processed (409).
   */
  async run(
    merchantId: string,
    sent: string | undefined,
    endpoint: string,
    rawBody: string,
    effect: (record: Recorder) => Promise<{ status: number; body: string }>,
    scope: KeyScope = null,
  ): Promise<StoredResponse> {
    if (sent === undefined) {
      const r = await effect(NOTHING_TO_RECORD);
      return { ...r, replayed: false };
    }
    this.validateKey(sent);
    // A sandbox key's "order-1" is not the live key's (decision 0028). Sent keys hold no space,
    // so the namespaces never meet, and a key made before modes keeps the rows it had.
    const key = scope === null ? sent : `${scope} ${sent}`;
    const hash = this.requestHash(endpoint, rawBody);
    const previous = await this.lookup(merchantId, key, hash, endpoint, rawBody);
    if (previous) return previous;
    // The key is stored as sent, for as long as it is remembered: one built from a card number
    // would keep that number in clear. One an earlier version stored is replayed above, until it
    // expires: refused, a retry would tempt a second payment under a new key.
    if (holdsCardNumber(sent)) {
      throw new DomainError(400, 'card_number_in_text', 'Idempotency-Key looks like a card number: it is stored as sent; use an order or attempt id', '/headers/idempotency-key');
    }
    const slot = `${merchantId}\u0000${key}`;
    if (inFlight.has(slot)) throw conflict();
    inFlight.add(slot);
    try {
      const now = this.ctx.clock.now();
      const row = (status: number, body: string) => ({
        table: 'idempotency_keys' as const,
        row: { merchant_id: merchantId, key, endpoint, request_hash: hash, response_status: status, response_body: sealStoredResponse(this.ctx, merchantId, key, body), created_at: now, expires_at: now + this.ctx.config.idempotencyTtlMs },
      });
      const replace = async (trx: Trx, status: number, body: string) => {
        await trx
          .updateTable('idempotency_keys')
          .set({ response_status: status, response_body: sealStoredResponse(this.ctx, merchantId, key, body) })
          .where('merchant_id', '=', merchantId)
          .where('key', '=', key)
          .execute();
      };
      const forget = async (trx: Trx) => {
        await trx.deleteFrom('idempotency_keys').where('merchant_id', '=', merchantId).where('key', '=', key).execute();
      };
      const record: Recorder = Object.assign(async (trx: Trx, status: number, body: string) => {
        const r = row(status, body);
        await insertRow(trx, r.table, r.row);
      }, { row, replace, forget });
      try {
        const r = await effect(record);
        return { ...r, replayed: false };
      } catch (error) {
        // Another process may have committed the same key first: answer as it did.
        if (isUniqueViolation(error)) {
          const winner = await this.lookup(merchantId, key, hash, endpoint, rawBody);
          if (winner) return winner;
          throw conflict();
        }
        // A retry that reached another process while the first was under way is refused by
        // the first one's effect (the payment is already capturing, nothing is left to
        // refund): once that has committed with its key, the retry gets its answer instead.
        if (error instanceof DomainError && error.status < 500) {
          const first = await this.lookup(merchantId, key, hash, endpoint, rawBody);
          if (first) return first;
        }
        throw error;
      }
    } finally {
      inFlight.delete(slot);
    }
  }

  private async lookup(merchantId: string, key: string, hash: string, endpoint: string, rawBody: string): Promise<StoredResponse | null> {
    const row = await this.ctx.database.db
      .selectFrom('idempotency_keys')
      .select(['request_hash', 'response_status', 'response_body', 'expires_at'])
      .where('merchant_id', '=', merchantId)
      .where('key', '=', key)
      .executeTakeFirst();
    if (!row) return null;
    if (row.expires_at <= this.ctx.clock.now()) {
      await this.ctx.database.write((trx) => trx.deleteFrom('idempotency_keys').where('merchant_id', '=', merchantId).where('key', '=', key).execute());
      return null;
    }
    if (row.request_hash !== hash && row.request_hash !== this.bytesHash(endpoint, rawBody) && row.request_hash !== this.wholeBodyHash(endpoint, rawBody)) {
      throw new DomainError(422, 'idempotency_key_reused', 'this Idempotency-Key was already used with a different request body or endpoint; use a new key for a new request', '/headers/idempotency-key');
    }
    return { status: row.response_status, body: this.ctx.vault.openString(`idempotency:${merchantId}:${key}`, row.response_body), replayed: true };
  }

  /** Keys are kept at least IDEMPOTENCY_TTL_HOURS; the sweeper calls this. */
  async purgeExpired(): Promise<number> {
    const r = await this.ctx.database.write((trx) => trx.deleteFrom('idempotency_keys').where('expires_at', '<=', this.ctx.clock.now()).executeTakeFirst());
    return Number(r.numDeletedRows);
  }
}

/** The first request commits within its acquirer call; a second later its retry is mostly a replay. */
export const IN_USE_RETRY_AFTER_S = 1;

function conflict(): DomainError {
  return new DomainError(
    409,
    'idempotency_key_in_use',
    `a request with this Idempotency-Key is still being processed; send it again after Retry-After (${IN_USE_RETRY_AFTER_S} s) to get its answer`,
    '/headers/idempotency-key',
    undefined,
    IN_USE_RETRY_AFTER_S,
  );
}

export function isUniqueViolation(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e?.code === '23505' || e?.code === 'SQLITE_CONSTRAINT_PRIMARYKEY' || e?.code === 'SQLITE_CONSTRAINT_UNIQUE';
}

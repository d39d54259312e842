import { CompiledQuery, type Compilable, type Insertable, type Kysely, SqliteAdapter } from 'kysely';
import { PACKED_COLUMNS, packJson } from './packed-json.js';
import type { Kek } from '../../config.js';
import type { SensitiveCard } from '../vault/envelope.js';
import { type CardToSeal, SEALED_CARD_COLUMNS, paramsWithCard } from './card-to-seal.js';
import type { Schema } from './schema.js';
import type { Trx } from './database.js';

type Executor = Kysely<Schema> | Trx;

/** SQL text differs by dialect (`?` vs `$1`), so texts are kept per dialect adapter. */
const texts = new WeakMap<object, Map<string | symbol, string>>();

function textsFor(ex: Executor): Map<string | symbol, string> {
  const adapter = ex.getExecutor().adapter;
  let map = texts.get(adapter);
  if (!map) texts.set(adapter, (map = new Map()));
  return map;
}

/**
 * One row for a table, as units of work that only insert hand them over. With
 * `onConflictDoNothing`, a row that would break the unique key on those columns is
 * skipped instead of failing its unit.
 */
export type RowInsert =
  | {
      [T in keyof Schema & string]: { table: T; row: Insertable<Schema[T]>; onConflictDoNothing?: ReadonlyArray<keyof Schema[T] & string> };
    }[keyof Schema & string]
  | CardToSeal;

/** SQL text and parameters, ready for any connection of the executor's dialect. */
export interface CompiledStatement {
  sql: string;
  params: unknown[];
  /** Parameters SQLite stores packed: [index in params, dictionary] (packed-json.ts). */
  pack?: Array<[number, number]>;
  /** A card sealed where the statement runs, into the parameters from `at` on (SEALED_CARD_COLUMNS). */
  seal?: { at: number; recordId: string; card: SensitiveCard };
}

/** A query Kysely compiled, as a statement for `Database.apply`. */
export function statementOf(query: { sql: string; parameters: ReadonlyArray<unknown> }): CompiledStatement {
  return { sql: query.sql, params: [...query.parameters] };
}

/** The parameters as SQLite binds them: the card sealed, the JSON columns it keeps packed deflated (packed-json.ts). */
export function sqliteParams(statement: CompiledStatement, kek: Kek | undefined): unknown[] {
  const { pack } = statement;
  const params = paramsWithCard(statement, kek);
  if (!pack) return params;
  const out = params === statement.params ? params.slice() : params;
  for (const [i, dictionary] of pack) out[i] = packJson(out[i] as string, dictionary);
  return out;
}

/**
 * Compiled texts found by walking a sequence of strings (a row's columns, a unit's insert
 * texts), one step each: the hot path finds its text without joining a key.
 */
interface TextStep {
  next: Map<string, TextStep>;
  text?: string;
}

function stepTo(step: TextStep, key: string): TextStep {
  let next = step.next.get(key);
  if (!next) step.next.set(key, (next = { next: new Map() }));
  return next;
}

const insertShapes = new WeakMap<object, Map<string, TextStep>>();

function firstStep(ex: Executor, table: string, onConflictDoNothing: ReadonlyArray<string> | undefined): TextStep {
  const adapter = ex.getExecutor().adapter;
  let roots = insertShapes.get(adapter);
  if (!roots) insertShapes.set(adapter, (roots = new Map()));
  const key = onConflictDoNothing ? `${table} unless ${onConflictDoNothing.join(',')}` : table;
  let root = roots.get(key);
  if (!root) roots.set(key, (root = { next: new Map() }));
  return root;
}

/**
 * An insert compiled once per table and column list. The hot path writes the same
 * shapes thousands of times a second; building and compiling the query each time would
 * cost more than running it. Undefined values are left out, as Kysely's own `values()` does.
 */
export function compileInsert(ex: Executor, insert: RowInsert): CompiledStatement {
  if ('card' in insert) return compileCardInsert(ex, insert);
  const { table, row, onConflictDoNothing } = insert;
  const values = row as Record<string, unknown>;
  const params: unknown[] = [];
  const packed = PACKED_COLUMNS[table];
  let pack: CompiledStatement['pack'];
  let step = firstStep(ex, table, onConflictDoNothing);
  for (const column in values) {
    const v = values[column];
    if (v === undefined) continue;
    params.push(v);
    const dictionary = packed?.[column];
    if (dictionary !== undefined && typeof v === 'string') (pack ??= []).push([params.length - 1, dictionary]);
    step = stepTo(step, column);
  }
  let text = step.text;
  if (text === undefined) {
    const defined = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
    const query = ex.insertInto(table).values(defined as never);
    const compilable = onConflictDoNothing ? query.onConflict((oc) => oc.columns(onConflictDoNothing as never).doNothing()) : query;
    text = step.text = (compilable as unknown as Compilable).compile().sql;
  }
  return pack ? { sql: text, params, pack } : { sql: text, params };
}

/** The card_secrets insert for a card sealed where it runs: the sealed columns are bound as it runs. */
function compileCardInsert(ex: Executor, { paymentId, card }: CardToSeal): CompiledStatement {
  const key = 'card_secrets(sealed where written)';
  const cache = textsFor(ex);
  let text = cache.get(key);
  if (text === undefined) {
    const placeholder = Object.fromEntries(SEALED_CARD_COLUMNS.map((c) => [c, '']));
    text = (ex.insertInto('card_secrets').values({ payment_id: paymentId, ...placeholder } as never) as unknown as Compilable).compile().sql;
    cache.set(key, text);
  }
  return { sql: text, params: [paymentId, ...SEALED_CARD_COLUMNS.map(() => null)], seal: { at: 1, recordId: paymentId, card } };
}

const combined: TextStep = { next: new Map() };

/** A unit's inserts compiled, each with its card (if any) sealed: parts for `combineInserts`. */
export function compileInsertParts(ex: Executor, rows: RowInsert[], kek: Kek | undefined): CompiledStatement[] {
  return rows.map((r) => {
    const part = compileInsert(ex, r);
    return part.seal ? { sql: part.sql, params: paramsWithCard(part, kek) } : part;
  });
}

/** The combined statement's place in its trie: the same object for parts of the same texts. */
export function insertShape(parts: CompiledStatement[]): object {
  let step = combined;
  for (const p of parts) step = stepTo(step, p.sql);
  return step;
}

/**
 * PostgreSQL: several inserts as one statement of data-modifying CTEs, so a unit of
 * work that only inserts (or several such units) costs one round trip and one implicit
 * transaction instead of BEGIN, an INSERT per row and COMMIT. Atomic like a transaction:
 * any failing row fails the statement.
 */
export function combineInserts(parts: CompiledStatement[]): CompiledStatement {
  if (parts.length === 1) return parts[0]!;
  const step = insertShape(parts) as TextStep;
  let text = step.text;
  if (text === undefined) {
    let offset = 0;
    const ctes = parts.map((p, i) => {
      // Compiled inserts hold identifiers and $n placeholders only, never literals.
      const renumbered = p.sql.replace(/\$(\d+)/g, (_, n: string) => `$${Number(n) + offset}`);
      offset += p.params.length;
      return `i${i} as (${renumbered})`;
    });
    text = step.text = `with ${ctes.join(', ')} select 1`;
  }
  return { sql: text, params: parts.flatMap((p) => p.params) };
}

/** One insert on the executor's connection, stored as its dialect stores it (packed columns on SQLite). */
export async function insertRow<T extends keyof Schema & string>(ex: Executor, table: T, row: Insertable<Schema[T]>): Promise<void> {
  const statement = compileInsert(ex, { table, row } as RowInsert);
  await ex.executeQuery(CompiledQuery.raw(statement.sql, onSqlite(ex) ? sqliteParams(statement, undefined) : statement.params));
}

/** An insert-only unit's rows, in a transaction that also does more; a card to seal is Database.insert's alone. */
export async function insertRows(ex: Executor, rows: RowInsert[]): Promise<void> {
  for (const r of rows) {
    if ('card' in r) throw new Error('a card to seal is written by Database.insert only');
    const statement = compileInsert(ex, r);
    await ex.executeQuery(CompiledQuery.raw(statement.sql, onSqlite(ex) ? sqliteParams(statement, undefined) : statement.params));
  }
}

function onSqlite(ex: Executor): boolean {
  return ex.getExecutor().adapter instanceof SqliteAdapter;
}

/**
 * A query whose SQL text is compiled on first use and reused with new parameters.
 * `build` receives placeholders and must use each parameter exactly once, in order.
 */
export function compiledOnce<P extends unknown[]>(build: (db: Kysely<Schema>, ...params: P) => Compilable): (db: Kysely<Schema>, ...params: P) => CompiledQuery {
  const key = Symbol('compiled query');
  return (db, ...params) => {
    const cache = textsFor(db);
    let text = cache.get(key);
    if (text === undefined) {
      text = build(db, ...params).compile().sql;
      cache.set(key, text);
    }
    return CompiledQuery.raw(text, params);
  };
}

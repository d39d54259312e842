import { CompiledQuery, type Compilable, type Insertable, type Kysely } from 'kysely';
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
 * Insert one row through SQL compiled once per table and column list. The hot path
 * writes the same shapes thousands of times a second; building and compiling the
 * query each time would cost more than running it. Undefined values are left out,
 * as Kysely's own `values()` does.
 */
export async function insertRow<T extends keyof Schema & string>(ex: Executor, table: T, row: Insertable<Schema[T]>): Promise<void> {
  const entries = Object.entries(row as Record<string, unknown>).filter(([, v]) => v !== undefined);
  const key = `${table}(${entries.map(([k]) => k).join(',')})`;
  const cache = textsFor(ex);
  let text = cache.get(key);
  if (text === undefined) {
    text = (ex.insertInto(table).values(Object.fromEntries(entries) as never) as unknown as Compilable).compile().sql;
    cache.set(key, text);
  }
  await ex.executeQuery(CompiledQuery.raw(text, entries.map(([, v]) => v)));
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

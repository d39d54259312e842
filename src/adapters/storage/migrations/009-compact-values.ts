import { type Kysely, type RawBuilder, SqliteAdapter, sql } from 'kysely';
import { ID_TAGS, storedValue } from '../stored-values.js';
import { atomically } from './atomically.js';

/**
 * SQLite only (docs/decisions/0008-compact-values-on-sqlite.md): ids and sealed values
 * already stored as text become the bytes the gateway now binds (stored-values.ts), and
 * card_secrets becomes WITHOUT ROWID, so its key stops needing a second B-tree beside
 * the table. payments and events stay rowid tables: their rows are too big for that
 * (a WITHOUT ROWID table keeps whole rows in its interior pages, which made both trees
 * two levels deeper at a million payments and authorise slower). PostgreSQL keeps text
 * and its tables as they are.
 *
 * Every text column of every table is converted, not only the id and ciphertext
 * columns: the gateway binds any string of those forms as bytes, a merchant's
 * id-shaped reference included, so a text cell left behind would no longer match its
 * own value.
 *
 * On a large file this rewrites most of it once, inside one transaction: a crash
 * leaves the file as it was.
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  if (!(db.getExecutor().adapter instanceof SqliteAdapter)) return;
  return atomically(db, convert);
}

const REBUILT = new Set(['card_secrets']);

interface Column {
  name: string;
  type: string;
  pk: number;
}

async function convert(db: Kysely<unknown>): Promise<void> {
  // A parent's key and its children's references are converted one table after the
  // other: foreign keys are checked at COMMIT, when both sides match again.
  await sql`pragma defer_foreign_keys = on`.execute(db);
  const tables = await sql<{ name: string; sql: string }>`
    select name, sql from sqlite_master
    where type = 'table' and name not like 'sqlite%' and name not like 'kysely%'`.execute(db);
  for (const { name, sql: createSql } of tables.rows) {
    const columns = (await sql<Column>`select name, type, pk from pragma_table_info(${name})`.execute(db)).rows;
    const texts = columns.filter((c) => c.type.toLowerCase() === 'text').map((c) => c.name);
    if (texts.length === 0) continue;
    if (REBUILT.has(name)) await rebuildWithoutRowid(db, name, createSql, columns, new Set(texts));
    else await sql`update ${sql.table(name)} set ${sql.join(texts.map((c) => sql`${sql.ref(c)} = ${storedId(c)}`))}`.execute(db);
    await storeSealedValues(db, name, columns, texts);
  }
}

/** A table rebuilt from its own definition, its rows copied with their ids converted. */
async function rebuildWithoutRowid(db: Kysely<unknown>, table: string, createSql: string, columns: Column[], texts: Set<string>): Promise<void> {
  const next = `${table}_next`;
  const head = new RegExp(`^CREATE TABLE "?${table}"?`, 'i');
  if (!head.test(createSql) || /without rowid\s*$/i.test(createSql)) throw new Error(`unexpected definition of ${table}: ${createSql}`);
  const indexes = await sql<{ sql: string }>`select sql from sqlite_master where type = 'index' and tbl_name = ${table} and sql is not null`.execute(db);
  await sql.raw(`${createSql.replace(head, `CREATE TABLE "${next}"`)} without rowid`).execute(db);
  const names = columns.map((c) => c.name);
  const values = names.map((c) => (texts.has(c) ? storedId(c) : sql.ref(c)));
  await sql`insert into ${sql.table(next)} (${sql.join(names.map((c) => sql.ref(c)))}) select ${sql.join(values)} from ${sql.table(table)}`.execute(db);
  // Takes the old table's indexes with it; they are made again on the new one.
  await sql`drop table ${sql.table(table)}`.execute(db);
  await sql`alter table ${sql.table(next)} rename to ${sql.table(table)}`.execute(db);
  for (const index of indexes.rows) await sql.raw(index.sql).execute(db);
}

const HEX32 = '[0-9a-f]'.repeat(32);

/** The column's value with an id as stored-values.ts stores it (tag byte + 16 bytes), anything else unchanged. */
function storedId(column: string): RawBuilder<unknown> {
  const c = sql.ref(column);
  const prefix = sql`substr(${c}, 1, instr(${c}, '_') - 1)`;
  const tags = Object.entries(ID_TAGS).map(([p, tag]) => sql`when ${sql.lit(p)} then ${sql.lit(tag.toString(16))}`);
  return sql`case when (${c} glob ${sql.lit(`[a-z][a-z]_${HEX32}`)} or ${c} glob ${sql.lit(`[a-z][a-z][a-z]_${HEX32}`)})
      and ${prefix} in (${sql.join(Object.keys(ID_TAGS).map((p) => sql.lit(p)))})
    then unhex((case ${prefix} ${sql.join(tags, sql` `)} end) || substr(${c}, instr(${c}, '_') + 1))
    else ${c} end`;
}

/** Sealed values (`iv.ciphertext.tag`): a GLOB finds the candidates, storedValue decides and converts. */
const SEALED_GLOB = `${'?'.repeat(16)}.*.${'?'.repeat(22)}==`;

async function storeSealedValues(db: Kysely<unknown>, table: string, columns: Column[], texts: string[]): Promise<void> {
  const key = columns
    .filter((c) => c.pk > 0)
    .sort((a, b) => a.pk - b.pk)
    .map((c) => sql.ref(c.name));
  // Every table of the schema declares its key.
  if (key.length === 0) throw new Error(`${table} has no primary key`);
  const order = sql.join(key);
  for (const column of texts) {
    // In batches, in key order. Rows that stay text (a look-alike storedValue refuses)
    // keep their places at the front, so the next batch skips exactly those.
    for (let skipped = 0; ; ) {
      const rows = await sql<Record<string, unknown>>`
        select ${sql.join(key.map((k, i) => sql`${k} as ${sql.ref(`k${i}`)}`))}, ${sql.ref(column)} as v
        from ${sql.table(table)} where typeof(${sql.ref(column)}) = 'text' and ${sql.ref(column)} glob ${SEALED_GLOB}
        order by ${order} limit ${BATCH} offset ${skipped}`.execute(db);
      if (rows.rows.length === 0) break;
      for (const row of rows.rows) {
        const stored = storedValue(row.v);
        if (stored === row.v) {
          skipped++;
          continue;
        }
        const where = sql.join(
          key.map((k, i) => sql`${k} = ${row[`k${i}`]}`),
          sql` and `,
        );
        await sql`update ${sql.table(table)} set ${sql.ref(column)} = ${stored} where ${where}`.execute(db);
      }
    }
  }
}

const BATCH = 5_000;

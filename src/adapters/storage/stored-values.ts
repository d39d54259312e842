import type SQLite from 'better-sqlite3';

/**
 * SQLite stores two kinds of text as the bytes they spell, where values are bound and
 * read (docs/decisions/0008-compact-values-on-sqlite.md):
 *
 * - ids (`pay_` + 32 hex digits): 17 bytes instead of 35–36 characters, a tag byte naming
 *   the prefix, then 16 bytes. A payment's rows and index entries hold about twenty ids.
 * - sealed values (`iv.ciphertext.tag` in base64, src/adapters/vault/envelope.ts): a tag
 *   byte, the 12-byte IV, the 16-byte GCM tag, then the ciphertext, a quarter smaller.
 *
 * Every bound string is looked at, so no query has to know which columns hold what: a
 * string that is exactly one of these forms is bound as its bytes, and a blob with one of
 * these tags reads back as that string. The mapping is one to one (base64 only in its
 * canonical spelling), so a merchant's own text that happens to look like an id (a
 * reference, say) also comes back unchanged, and ids compare and sort as they did as text
 * (the first eleven tags follow their prefixes' alphabetical order; later prefixes take the
 * next free tag, so ids of different kinds may sort apart from their text, which no query
 * does: every id column holds one kind).
 *
 * Tags are part of the file format: never renumber one. First bytes in use: 0x01–0x3e
 * packed JSON (its dictionary number, packed-json.ts), 0x3f sealed values, 0x41–0x4c ids.
 * A prefix without a tag still works, stored as text.
 */
export const ID_TAGS: Readonly<Record<string, number>> = {
  aud: 0x41,
  ch: 0x42,
  del: 0x43,
  doc: 0x44,
  evt: 0x45,
  key: 0x46,
  mer: 0x47,
  pay: 0x48,
  pm: 0x49,
  re: 0x4a,
  we: 0x4b,
  rel: 0x4c,
};
const SEALED_TAG = 0x3f;

const PREFIX_BY_TAG = new Map(Object.entries(ID_TAGS).map(([prefix, tag]) => [tag, `${prefix}_`]));
const TAG_BY_PREFIX = new Map(Object.entries(ID_TAGS));
const ID_BYTES = 17;
const IV_BYTES = 12;
const GCM_TAG_BYTES = 16;
const SEALED_CT_AT = 1 + IV_BYTES + GCM_TAG_BYTES;
const SEALED_SHAPE = /^([A-Za-z0-9+/]{16})\.([A-Za-z0-9+/]*={0,2})\.([A-Za-z0-9+/]{22}==)$/;
/** Where a sealed value's first dot is: base64 of the 12-byte IV is 16 characters. */
const SEALED_FIRST_DOT = 16;

/**
 * A value as SQLite stores it: an id or a sealed value as its bytes, anything else as it is.
 * Every bound string passes through here (on the writer thread, some sixty a payment), so
 * the shapes are checked by character before any regular expression or allocation.
 */
export function storedValue(value: unknown): unknown {
  if (typeof value !== 'string') return value;
  if (value.length === 35 || value.length === 36) return idBytes(value) ?? value;
  if (value.length < 42 || value.charCodeAt(SEALED_FIRST_DOT) !== 0x2e) return value;
  const m = SEALED_SHAPE.exec(value);
  if (!m) return value;
  const ct = m[2]!;
  const bytes = Buffer.allocUnsafe(SEALED_CT_AT + Buffer.byteLength(ct, 'base64'));
  bytes[0] = SEALED_TAG;
  bytes.write(m[1]!, 1, 'base64');
  bytes.write(m[3]!, 1 + IV_BYTES, 'base64');
  bytes.write(ct, SEALED_CT_AT, 'base64');
  // Only the canonical spelling (padding bits zero, in the ciphertext and in the tag), or
  // the text would not come back byte for byte.
  return textFromStored(bytes) === value ? bytes : value;
}

/** `<prefix>_` + 32 lowercase hex digits, for a prefix with a tag: its 17 bytes. */
function idBytes(value: string): Buffer | undefined {
  const underscore = value.length - 33;
  if (value.charCodeAt(underscore) !== 0x5f) return undefined;
  const tag = TAG_BY_PREFIX.get(value.slice(0, underscore));
  if (tag === undefined) return undefined;
  const bytes = Buffer.allocUnsafe(ID_BYTES);
  bytes[0] = tag;
  for (let i = 1, at = underscore + 1; i < ID_BYTES; i++, at += 2) {
    const hi = hexDigit(value.charCodeAt(at));
    const lo = hexDigit(value.charCodeAt(at + 1));
    if (hi < 0 || lo < 0) return undefined;
    bytes[i] = (hi << 4) | lo;
  }
  return bytes;
}

/** A lowercase hex digit's value, or -1: uppercase would read back lowercase, and the mapping is one to one. */
function hexDigit(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

/** The text a stored value spells, or undefined when it is not an id or a sealed value. */
export function textFromStored(value: unknown): string | undefined {
  if (!(value instanceof Uint8Array)) return undefined;
  const b = Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (b.length === ID_BYTES) {
    const prefix = PREFIX_BY_TAG.get(b[0]!);
    if (prefix !== undefined) return prefix + b.toString('hex', 1);
  }
  if (b[0] === SEALED_TAG && b.length >= SEALED_CT_AT) {
    const tagAt = 1 + IV_BYTES;
    return `${b.toString('base64', 1, tagAt)}.${b.toString('base64', SEALED_CT_AT)}.${b.toString('base64', tagAt, SEALED_CT_AT)}`;
  }
  return undefined;
}

/** Positional or named parameters in their stored form. */
export function storedParams<P>(params: P): P {
  if (Array.isArray(params)) {
    let out: unknown[] | undefined;
    for (let i = 0; i < params.length; i++) {
      const v = storedValue(params[i]);
      if (v !== params[i]) (out ??= params.slice())[i] = v;
    }
    return (out ?? params) as P;
  }
  if (params !== null && typeof params === 'object' && !(params instanceof Uint8Array)) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(params)) out[k] = storedValue(v);
    return out as P;
  }
  return storedValue(params) as P;
}

/** A row as read, stored forms turned back into their text. Changes the row in place. */
export function readRow<R>(row: R): R {
  if (row === null || typeof row !== 'object') return row;
  const r = row as Record<string, unknown>;
  for (const k in r) {
    const text = textFromStored(r[k]);
    if (text !== undefined) r[k] = text;
  }
  return row;
}

/**
 * The statement as Kysely's SQLite driver uses it (`reader`, `all`, `run`, `iterate`),
 * binding and reading values in their stored forms.
 */
export function withStoredValues(stmt: SQLite.Statement): SQLite.Statement {
  return {
    reader: stmt.reader,
    all: (params: unknown) => (stmt.all(storedParams(params)) as unknown[]).map(readRow),
    get: (params: unknown) => readRow(stmt.get(storedParams(params))),
    run: (params: unknown) => stmt.run(storedParams(params)),
    *iterate(params: unknown) {
      for (const row of stmt.iterate(storedParams(params))) yield readRow(row);
    },
  } as unknown as SQLite.Statement;
}

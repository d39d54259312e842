declare global {
  interface String {
    /** ES2024, in Node since 20; TypeScript's lib for this project's ES2022 target lacks it. */
    isWellFormed(): boolean;
  }
}

/**
 * Where a parsed JSON value holds text that is not well-formed Unicode: the JSON pointer of
 * the first string (or key) with an unpaired UTF-16 surrogate, or undefined. JSON can carry
 * one as an escape (`"\ud800"`), but no database column can store it: SQLite keeps bytes that
 * read back as U+FFFD, PostgreSQL's driver writes U+FFFD, so the text would come back changed.
 * Only a body with a `\u` escape can hold one, which the caller checks first.
 */
export function illFormedTextAt(value: unknown, pointer = ''): string | undefined {
  if (typeof value === 'string') return value.isWellFormed() ? undefined : pointer;
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, item] of Object.entries(value)) {
    const at = `${pointer}/${key.replaceAll('~', '~0').replaceAll('/', '~1')}`;
    if (!key.isWellFormed()) return at;
    const inside = illFormedTextAt(item, at);
    if (inside !== undefined) return inside;
  }
  return undefined;
}

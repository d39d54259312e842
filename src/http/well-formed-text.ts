import { DomainError } from '../domain/errors.js';

declare global {
  interface String {
    /** ES2024, in Node since 20; TypeScript's lib for this project's ES2022 target lacks it. */
    isWellFormed(): boolean;
  }
}

export interface TextProblem {
  /** JSON pointer of the string or key. */
  pointer: string;
  /** An unpaired UTF-16 surrogate, or a NUL character. */
  kind: 'unpaired_surrogate' | 'nul';
}

/**
 * The first string (or key) in a parsed JSON value that no column could store as sent: one
 * with an unpaired UTF-16 surrogate (SQLite keeps bytes that read back as U+FFFD, the
 * PostgreSQL driver writes U+FFFD) or with a NUL character (PostgreSQL refuses it in text).
 * JSON can carry either only as a `\u` escape, so the caller looks only at bodies with one.
 * Walked with a stack of its own: a body nested thousands deep must not overflow the call stack.
 */
export function textProblemIn(value: unknown): TextProblem | undefined {
  // Each entry knows its parent and key; the pointer is spelled only for the one problem
  // found (spelling one per level cost a body nested 65,000 deep about 0.4 s).
  const pending: Item[] = [{ value, parent: null, key: '' }];
  for (let next = pending.pop(); next; next = pending.pop()) {
    const item = next.value;
    if (typeof item === 'string') {
      const kind = problemOf(item);
      if (kind) return { pointer: pointerOf(next), kind };
    } else if (item !== null && typeof item === 'object') {
      const entries = Object.entries(item);
      // Reversed onto the stack, so the first problem in document order is the one named.
      for (let i = entries.length - 1; i >= 0; i--) {
        const [key, child] = entries[i]!;
        const entry: Item = { value: child, parent: next, key };
        const kind = problemOf(key);
        if (kind) return { pointer: pointerOf(entry), kind };
        pending.push(entry);
      }
    }
  }
  return undefined;
}

interface Item {
  value: unknown;
  parent: Item | null;
  key: string;
}

function pointerOf(item: Item): string {
  const keys: string[] = [];
  for (let at: Item | null = item; at?.parent; at = at.parent) keys.push(at.key.replaceAll('~', '~0').replaceAll('/', '~1'));
  return keys.reverse().map((k) => `/${k}`).join('');
}

/** A path parameter's or query value's problem, if any (they arrive decoded from %-escapes). */
export function problemOf(text: string): TextProblem['kind'] | undefined {
  if (text.includes('\u0000')) return 'nul';
  return text.isWellFormed() ? undefined : 'unpaired_surrogate';
}

/** The 400 for text no column could store as sent, naming where it is. */
export function textProblemError(pointer: string, kind: TextProblem['kind']): DomainError {
  const where = pointer || 'the body';
  return kind === 'nul'
    ? new DomainError(400, 'invalid_character', `${where} holds a NUL character (\\u0000), which no text may contain`, pointer)
    : new DomainError(400, 'invalid_unicode', `${where} holds an unpaired UTF-16 surrogate (a lone \\uD800–\\uDFFF escape): send well-formed Unicode text`, pointer);
}

/**
 * The name of the first query parameter whose name or value is not percent-encoded UTF-8
 * (`%E9`, a bare `%`, an encoded lone surrogate), as the query parser keys it. The parser
 * keeps such text raw, so `?reference=caf%E9` was searched for as the literal "caf%E9".
 */
export function undecodableQueryParameter(query: string): string | undefined {
  if (!query.includes('%')) return undefined;
  for (const pair of query.split('&')) {
    if (!pair.includes('%')) continue;
    const eq = pair.indexOf('=');
    const name = eq === -1 ? pair : pair.slice(0, eq);
    const decodedName = decodeQueryText(name);
    if (decodedName === undefined) return name;
    if (eq !== -1 && decodeQueryText(pair.slice(eq + 1)) === undefined) return decodedName;
  }
  return undefined;
}

function decodeQueryText(text: string): string | undefined {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    return undefined;
  }
}

/**
 * What a terminal acts on instead of showing: control characters (escape sequences that
 * rewrite the screen or the window title, carriage returns, line breaks), line separators
 * and bidi controls. In a name or label the CLI prints (a merchant's name, copied from its
 * application) they could hide or fake a row, or reorder the figures beside it: written
 * as \u escapes instead, which JSON reads as the same text.
 */
const UNSHOWN = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

export function shown(text: string): string {
  return text.replace(UNSHOWN, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Our lines as written, what is on them shown; in JSON the characters are in strings only, so it stays valid. */
export function printable(text: string): string {
  return text.split('\n').map(shown).join('\n');
}

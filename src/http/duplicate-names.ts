/**
 * The pointer of the first member whose name its object already used, if any.
 *
 * `JSON.parse` keeps the last of two equal names without a word, so `{"amount": 100,
 * "amount": 100000}` would be taken for 100000 where a merchant's own checks, a proxy or a
 * log reader may have seen 100 (RFC 8259 §4: with repeated names "the behavior of software
 * that receives such an object is unpredictable"). Counting the names in the text against
 * the members in the parsed value costs a body about 3 µs; only a body whose counts differ
 * is read again, token by token, to say where.
 */
export function duplicateNameIn(text: string, parsed: unknown): string | undefined {
  return namesAtMost(text) === membersIn(parsed) ? undefined : locateDuplicate(text);
}

const QUOTE = 34;
const BACKSLASH = 92;
const COLON = 58;

function isSpace(code: number): boolean {
  return code === 32 || code === 10 || code === 13 || code === 9;
}

/** The index of the quote closing the string that opens at `start` (the text is valid JSON). */
function stringEnd(text: string, start: number): number {
  for (let end = text.indexOf('"', start + 1); ; end = text.indexOf('"', end + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(end - 1 - backslashes) === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return end;
  }
}

function nextToken(text: string, from: number): number {
  let at = from;
  while (isSpace(text.charCodeAt(at))) at++;
  return at;
}

/**
 * Colons right after a closing quote: every name as sent, repeats included, and now and then
 * a string value holding `\":` too. Never fewer than the names, so equal to the members
 * only when no name repeats; a value that adds one just sends its body the slow way.
 */
function namesAtMost(text: string): number {
  let names = 0;
  for (let colon = text.indexOf(':'); colon !== -1; colon = text.indexOf(':', colon + 1)) {
    let before = colon - 1;
    while (isSpace(text.charCodeAt(before))) before--;
    if (text.charCodeAt(before) === QUOTE) names++;
  }
  return names;
}

/** Members of every object in the value, walked with a stack of its own (bodies nest deep). */
function membersIn(value: unknown): number {
  let members = 0;
  const pending: unknown[] = [value];
  for (let item = pending.pop(); item !== undefined; item = pending.pop()) {
    if (item === null || typeof item !== 'object') continue;
    if (Array.isArray(item)) {
      for (const child of item) pending.push(child);
    } else {
      for (const key in item) {
        members++;
        pending.push((item as Record<string, unknown>)[key]);
      }
    }
  }
  return members;
}

interface Container {
  /** Names seen so far in an object; null for an array. */
  names: Set<string> | null;
  /** The pointer segment of the member or element being read. */
  segment: string;
  index: number;
}

function escapeSegment(segment: string): string {
  return segment.replaceAll('~', '~0').replaceAll('/', '~1');
}

function locateDuplicate(text: string): string | undefined {
  const open: Container[] = [];
  for (let at = 0; at < text.length; at++) {
    const code = text.charCodeAt(at);
    const top = open[open.length - 1];
    if (code === 123 /* { */) open.push({ names: new Set(), segment: '', index: 0 });
    else if (code === 91 /* [ */) open.push({ names: null, segment: '0', index: 0 });
    else if (code === 125 /* } */ || code === 93 /* ] */) open.pop();
    else if (code === 44 /* , */ && top && top.names === null) top.segment = String(++top.index);
    else if (code === QUOTE) {
      const end = stringEnd(text, at);
      const after = nextToken(text, end + 1);
      if (top?.names && text.charCodeAt(after) === COLON) {
        // Decoded, so "\u0061mount" repeats "amount" as JSON.parse sees it.
        const name = JSON.parse(text.slice(at, end + 1)) as string;
        if (top.names.has(name)) {
          return open.slice(0, -1).map((c) => `/${escapeSegment(c.segment)}`).join('') + `/${escapeSegment(name)}`;
        }
        top.names.add(name);
        top.segment = name;
      }
      at = after - 1;
    }
  }
  return undefined;
}

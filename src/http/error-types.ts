import { readdirSync, readFileSync } from 'node:fs';

/** One place the documentation names an error code, as the code's type URL shows it. */
export interface Passage {
  /** The document (`docs/authorise.md`) or the served OpenAPI operation (`GET /events`). */
  source: string;
  /** The heading the passage is under, in a document. */
  section?: string;
  /** The status the passage gives the code: its table row's, or the OpenAPI response's. */
  status?: number;
  text: string;
}

/** The documents `test/unit/error-codes-documented.test.ts` requires every code to be named in, beside the OpenAPI. */
const ROOT = new URL('../../', import.meta.url);
const documents = (root: URL): string[] => ['README.md', ...readIfPresent(() => readdirSync(new URL('docs/', root)), []).filter((f) => f.endsWith('.md') && f !== 'benchmarks.md').sort().map((f) => `docs/${f}`)];

/** A deployment may ship without the documents: its type URLs then show what the OpenAPI document says, not a 500. */
function readIfPresent<T>(read: () => T, absent: T): T {
  try {
    return read();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return absent;
    throw error;
  }
}

interface Block {
  source: string;
  section?: string;
  status?: number;
  text: string;
}

/** Paragraphs, list items and table rows of a Markdown document, each with its heading; code blocks left out. */
function blocksOf(source: string, markdown: string): Block[] {
  const blocks: Block[] = [];
  let section: string | undefined;
  let lines: string[] = [];
  let fenced = false;
  const flush = () => {
    if (lines.length) blocks.push({ source, ...(section ? { section } : {}), text: lines.join(' ') });
    lines = [];
  };
  for (const raw of markdown.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('```')) {
      flush();
      fenced = !fenced;
      continue;
    }
    if (fenced) continue;
    const heading = /^#+\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      section = heading[1];
    } else if (line.startsWith('|')) {
      flush();
      const cells = line.split(/(?<!\\)\|/).slice(1, -1).map((c) => c.trim());
      const status = /^\d{3}$/.test(cells[0] ?? '') ? Number(cells[0]) : undefined;
      blocks.push({ source, ...(section ? { section } : {}), ...(status ? { status, text: cells.slice(1).join(' | ') } : { text: cells.join(' | ') }) });
    } else if (line === '' || /^([-*]|\d+\.)\s/.test(line)) {
      flush();
      if (line) lines.push(line.replace(/^([-*]|\d+\.)\s+/, ''));
    } else {
      lines.push(line);
    }
  }
  flush();
  return blocks;
}

const named = (code: string) => new RegExp(`(?<![a-z0-9_])${code}(?![a-z0-9_])`);

/**
 * The part of a long text about `code`: its sentence (or `;` clause), and of a long list
 * of codes (a status's table row), the item that names it with what it says of it.
 */
export function clauseNaming(text: string, code: string): string {
  const pieces = (text: string, separators: RegExp) => {
    const out: string[] = [];
    let depth = 0;
    let quoted = false;
    let start = 0;
    for (let i = 0; i < text.length; i++) {
      const c = text[i]!;
      if (c === '`') quoted = !quoted;
      else if (!quoted && (c === '(' || c === '[')) depth++;
      else if (!quoted && (c === ')' || c === ']')) depth = Math.max(0, depth - 1);
      else if (!quoted && depth === 0 && separators.test(text.slice(i, i + 2))) {
        out.push(text.slice(start, i + 1));
        start = i + 1;
      }
    }
    out.push(text.slice(start));
    return out.map((p) => p.trim().replace(/[;,]$/, '')).filter(Boolean);
  };
  const sentence = pieces(text, /^(?:\. |; )/).find((p) => named(code).test(p)) ?? text;
  if (sentence.length <= 320) return sentence;
  return pieces(sentence, /^, /).find((p) => named(code).test(p)) ?? sentence;
}

const documentBlocks = new Map<string, Block[]>();

/** Prose gives a code its status as `404 merchant_not_found`; a table row's own status stands. */
function withStatus(passage: Passage, code: string): Passage {
  const status = passage.status ?? Number(new RegExp(`\\b([1-5]\\d\\d) \`?${code}(?![a-z0-9_])`).exec(passage.text)?.[1]);
  return Number.isInteger(status) ? { ...passage, status } : passage;
}

/** Where the documents and the served OpenAPI document name `code`: what its problem type URL shows. */
export function passagesFor(code: string, openapi: { paths?: Record<string, Record<string, { responses?: Record<string, { description?: string }> }>> }, root = ROOT): Passage[] {
  // Read once: the documents are the gateway's own, the same until it is upgraded.
  let blocks = documentBlocks.get(root.href);
  if (!blocks) {
    blocks = documents(root).flatMap((file) => blocksOf(file, readIfPresent(() => readFileSync(new URL(file, root), 'utf8'), '')));
    documentBlocks.set(root.href, blocks);
  }
  const pattern = named(code);
  const passages: Passage[] = blocks.filter((b) => pattern.test(b.text)).map((b) => withStatus({ ...b, text: clauseNaming(b.text, code) }, code));
  for (const [path, operations] of Object.entries(openapi.paths ?? {})) {
    for (const [method, operation] of Object.entries(operations)) {
      for (const [status, response] of Object.entries(operation.responses ?? {})) {
        const description = response.description ?? '';
        if (pattern.test(description)) passages.push({ source: `${method.toUpperCase()} ${path}`, status: Number(status), text: clauseNaming(description, code) });
      }
    }
  }
  return passages;
}

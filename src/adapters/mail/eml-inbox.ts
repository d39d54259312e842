import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Reads back the .eml files the file mailer writes, for the sandbox inbox page. It
 * understands what nodemailer produces (RFC 2047 words, multipart/alternative,
 * quoted-printable and base64), not every message in the world.
 */
export interface InboxEntry {
  name: string;
  subject: string;
  to: string;
  from: string;
  date: string;
}

export interface InboxMessage extends InboxEntry {
  text: string;
  html: string | null;
  raw: string;
}

export const EML_NAME = /^[A-Za-z0-9_-]{1,80}\.eml$/;

function splitHead(raw: string): { head: Map<string, string>; body: string } {
  const m = /\r?\n\r?\n/.exec(raw);
  const headText = m ? raw.slice(0, m.index) : raw;
  const body = m ? raw.slice(m.index + m[0].length) : '';
  const head = new Map<string, string>();
  for (const line of headText.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0) head.set(line.slice(0, colon).trim().toLowerCase(), line.slice(colon + 1).trim());
  }
  return { head, body };
}

function decodeQuotedPrintable(s: string): Buffer {
  const soft = s.replace(/=\r?\n/g, '');
  const bytes: number[] = [];
  for (let i = 0; i < soft.length; i++) {
    const c = soft[i]!;
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(soft.slice(i + 1, i + 3))) {
      bytes.push(parseInt(soft.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(...Buffer.from(c, 'utf8'));
    }
  }
  return Buffer.from(bytes);
}

/** `=?UTF-8?Q?…?=` and `=?UTF-8?B?…?=`; adjacent encoded words join without the space between them. */
export function decodeWords(value: string): string {
  return value
    .replace(/(=\?[^?]+\?[QqBb]\?[^?]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?]+)\?([QqBb])\?([^?]*)\?=/g, (_all, _charset: string, enc: string, text: string) =>
      enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64').toString('utf8') : decodeQuotedPrintable(text.replace(/_/g, ' ')).toString('utf8'),
    );
}

function decodeBody(body: string, encoding: string | undefined): string {
  switch ((encoding ?? '7bit').toLowerCase()) {
    case 'quoted-printable':
      return decodeQuotedPrintable(body).toString('utf8');
    case 'base64':
      return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
    default:
      return body;
  }
}

interface Part {
  type: string;
  content: string;
}

function parts(head: Map<string, string>, body: string): Part[] {
  const type = head.get('content-type') ?? 'text/plain';
  const boundary = /boundary="?([^";]+)"?/i.exec(type)?.[1];
  if (!type.toLowerCase().startsWith('multipart/') || !boundary) {
    return [{ type: type.split(';')[0]!.trim().toLowerCase(), content: decodeBody(body, head.get('content-transfer-encoding')) }];
  }
  const out: Part[] = [];
  for (const chunk of body.split(`--${boundary}`).slice(1)) {
    if (chunk.startsWith('--')) break;
    const inner = splitHead(chunk.replace(/^\r?\n/, ''));
    out.push(...parts(inner.head, inner.body.replace(/\r?\n$/, '')));
  }
  return out;
}

function entry(name: string, head: Map<string, string>): InboxEntry {
  return {
    name,
    subject: decodeWords(head.get('subject') ?? '(no subject)'),
    to: decodeWords(head.get('to') ?? ''),
    from: decodeWords(head.get('from') ?? ''),
    date: head.get('date') ?? '',
  };
}

/** The headers the inbox lists of each named message. */
export function inboxEntries(dir: string, names: readonly string[]): InboxEntry[] {
  return names.map((name) => entry(name, splitHead(readFileSync(join(dir, name), 'utf8')).head));
}

export function readMessage(dir: string, name: string): InboxMessage | null {
  if (!EML_NAME.test(name)) return null;
  const file = join(dir, name);
  if (!existsSync(file)) return null;
  return parseMessage(name, readFileSync(file, 'utf8'));
}

export function parseMessage(name: string, raw: string): InboxMessage {
  const { head, body } = splitHead(raw);
  const all = parts(head, body);
  return {
    ...entry(name, head),
    text: all.find((p) => p.type === 'text/plain')?.content ?? '',
    html: all.find((p) => p.type === 'text/html')?.content ?? null,
    raw,
  };
}

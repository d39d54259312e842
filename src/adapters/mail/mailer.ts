import { mkdirSync } from 'node:fs';
import { rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nodemailer from 'nodemailer';
import type { Logger } from 'pino';
import { storableText } from '../../domain/storable-text.js';
import { maskEmailAddresses } from './masked-addresses.js';
import { ThreadClient, type ThreadReply } from '../threads.js';

export interface MailMessage {
  /** The delivery id: it names the Message-ID and the .eml file, so a re-send is recognisable. */
  id: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  date: Date;
  /** Where a reply goes instead of the (no-reply) sender: a channel's support address on its receipts. */
  replyTo?: string;
}

export interface MailResult {
  /** The SMTP server's answer as storable text (storableText, addresses masked, as a refusal's message is), or where the file went. */
  response: string;
  responseCode: number | null;
}

/** A refusal worth no retry: a 5xx answer about this message or its recipient (unknown mailbox, content rejected). */
export class PermanentMailError extends Error {
  override name = 'PermanentMailError';
  constructor(
    message: string,
    readonly responseCode: number | null,
  ) {
    super(message);
  }
}

export interface Mailer {
  send(message: MailMessage): Promise<MailResult>;
  close(): void;
  /** Where messages go, for logs and the sandbox inbox page (no credentials). */
  readonly destination: string;
}

export const MAIL_DIR = 'mail';

/** Seconds are generous for SMTP, but bounded, so a stuck server cannot hold a delivery forever. */
const SMTP_TIMEOUTS = { connectionTimeout: '10000', greetingTimeout: '10000', socketTimeout: '30000' };

/** What nodemailer waits when SMTP_URL gives a timeout of 0; the lease assumes it too for a value that is not a number. */
const NODEMAILER_TIMEOUTS: Record<keyof typeof SMTP_TIMEOUTS, number> = { connectionTimeout: 120_000, greetingTimeout: 30_000, socketTimeout: 600_000 };

/**
 * The longest one attempt can take under the timeouts SMTP_URL sets, ours where it sets
 * none. A delivery's lease must outlast it, or another process could send the same
 * message while this one still is.
 */
export function smtpAttemptMaxMs(smtpUrl: string | undefined): number {
  const query = smtpUrl ? new URL(smtpUrl).searchParams : new URLSearchParams();
  let sum = 0;
  for (const [k, fallback] of Object.entries(SMTP_TIMEOUTS) as Array<[keyof typeof SMTP_TIMEOUTS, string]>) {
    const ms = Number(query.get(k) ?? fallback);
    sum += Number.isFinite(ms) && ms > 0 ? ms : NODEMAILER_TIMEOUTS[k];
  }
  return sum;
}

function messageId(id: string): string {
  return `<${id}@tzero-pay>`;
}

type Transport = ReturnType<typeof nodemailer.createTransport>;

/**
 * Quoted-printable is what nodemailer picks for these templates anyway; naming it skips
 * the scan it makes of every body to choose (two fifths of a message's composition).
 * Messages never carry attachments, so nodemailer may not read files or URLs for one.
 */
const COMPOSE = { textEncoding: 'quoted-printable', disableFileAccess: true, disableUrlAccess: true } as const;

async function build(transport: Transport, from: string, m: MailMessage) {
  return transport.sendMail({ from, to: m.to, ...(m.replyTo ? { replyTo: m.replyTo } : {}), subject: m.subject, text: m.text, html: m.html, messageId: messageId(m.id), date: m.date, ...COMPOSE });
}

/** Through SMTP_URL; options can ride on the URL's query (`?pool=true`, `?secure=true`…). */
export class SmtpMailer implements Mailer {
  private readonly transport: Transport;
  readonly destination: string;

  constructor(
    smtpUrl: string,
    private readonly from: string,
  ) {
    const url = withTimeouts(smtpUrl);
    this.transport = nodemailer.createTransport(url.toString());
    this.destination = smtpDestination(url);
  }

  async send(message: MailMessage): Promise<MailResult> {
    try {
      const info = await build(this.transport, this.from, message);
      return { response: maskEmailAddresses(storableText(String(info.response ?? 'accepted'))), responseCode: parseCode(info.response) };
    } catch (error) {
      const e = error as SmtpError;
      const detail = maskEmailAddresses(storableText((e.response ?? e.message).slice(0, 300)));
      if (refusesThisMessage(e)) throw new PermanentMailError(detail, e.responseCode!);
      throw Object.assign(new Error(detail), { responseCode: e.responseCode ?? null });
    }
  }

  close(): void {
    this.transport.close();
  }
}

/** What nodemailer adds to the errors it gives (smtp-connection's _formatError). */
type SmtpError = Error & { code?: string; command?: string; responseCode?: number; response?: string };

/**
 * Only a 5xx answer to a recipient (RCPT TO) or to the message (DATA) condemns this
 * e-mail. Any other refusal is the server's about the gateway itself (535 to its login, a
 * 554 greeting, a sender refused at MAIL FROM, 530, "authenticate" or "STARTTLS first",
 * which a server may give to any command, and "relay access denied" to a recipient, given
 * to every recipient of a gateway the server does not relay for): it would refuse every
 * message alike until the operator mends the configuration, so giving up would drop every
 * e-mail sent meanwhile. Those, like timeouts and lost connections, are retried.
 */
function refusesThisMessage(e: SmtpError): boolean {
  if (typeof e.responseCode !== 'number' || e.responseCode < 500 || e.responseCode === 530) return false;
  if (e.command === 'RCPT TO' && /\brelay(ing)?\b.*\b(denied|not permitted|not allowed)\b/i.test(e.response ?? '')) return false;
  return (e.code === 'EENVELOPE' || e.code === 'EMESSAGE') && (e.command === 'RCPT TO' || e.command === 'DATA');
}

function withTimeouts(smtpUrl: string): URL {
  const url = new URL(smtpUrl);
  for (const [k, v] of Object.entries(SMTP_TIMEOUTS)) if (!url.searchParams.has(k)) url.searchParams.set(k, v);
  return url;
}

const CHECK_FAILED: Record<string, string> = {
  EAUTH: 'the mail server refused the login: check the user and password in SMTP_URL',
  ETLS: 'TLS with the mail server failed',
  ECONNECTION: 'could not connect to the mail server',
  ESOCKET: 'could not connect to the mail server',
  EDNS: 'could not resolve the mail server',
  ETIMEDOUT: 'the mail server did not answer in time',
};

/**
 * Connects and logs in once as the gateway starts: a wrong password, port or TLS setting
 * in SMTP_URL is reported at boot, not discovered later in every e-mail's failed attempts
 * (which are retried, so nothing is lost while the operator mends it). It never delays the
 * start and never rejects.
 */
export async function checkSmtp(smtpUrl: string, log: Logger): Promise<void> {
  const url = withTimeouts(smtpUrl);
  const smtp = smtpDestination(url);
  let transport: Transport | undefined;
  try {
    transport = nodemailer.createTransport(url.toString());
    await transport.verify();
    log.info({ smtp }, 'SMTP server reached and the login accepted');
  } catch (error) {
    const e = error as SmtpError;
    log.error(
      { smtp, code: e.code ?? null, command: e.command ?? null, response_code: e.responseCode ?? null, error: withoutPassword(storableText(String(e.message).slice(0, 300)), url) },
      `SMTP check failed: ${CHECK_FAILED[e.code ?? ''] ?? (e.code ? 'the mail server refused the session' : 'SMTP_URL could not be used')}; e-mails are retried meanwhile`,
    );
  } finally {
    transport?.close();
  }
}

/** A server may quote what it was sent: the log must never carry the password, as written in the URL or as sent. */
function withoutPassword(text: string, url: URL): string {
  let sent = url.password;
  try {
    sent = decodeURIComponent(url.password);
  } catch {
    // A malformed escape goes to the server as written.
  }
  let out = text;
  for (const form of [url.password, sent]) if (form) out = out.replaceAll(form, '***');
  return out;
}

function smtpDestination(url: URL): string {
  return `smtp ${url.hostname}:${url.port || (url.protocol === 'smtps:' ? 465 : 587)}`;
}

function parseCode(response: unknown): number | null {
  const m = /^(\d{3})\b/.exec(String(response ?? ''));
  return m ? Number(m[1]) : null;
}

/**
 * The embedded default: each message becomes `DATA_DIR/mail/<delivery id>.eml`, the
 * exact bytes SMTP would have carried, listed by the sandbox inbox page. Writing to a
 * temporary name and renaming means the page never shows half a message, and a re-send
 * replaces the file instead of adding a copy. The file system calls run on libuv's
 * threads: creating a file in a directory of thousands took a fifth of the event loop
 * when they ran on it (docs/benchmarks.md, eighth session).
 */
export class FileMailer implements Mailer {
  private readonly transport: Transport;
  readonly destination: string;

  constructor(
    private readonly dir: string,
    private readonly from: string,
  ) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.transport = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
    this.destination = `files in ${dir}`;
  }

  async send(message: MailMessage): Promise<MailResult> {
    const info = (await build(this.transport, this.from, message)) as unknown as { message: Buffer };
    const name = `${message.id}.eml`;
    const file = join(this.dir, name);
    const tmp = `${file}.tmp`;
    await writeFile(tmp, info.message, { mode: 0o600 });
    await rename(tmp, file);
    // Merchants read this in the delivery's attempts: the file's name, not the server's disk.
    return { response: `saved as ${name} in the gateway's mail folder (a sandbox gateway shows it at /sandbox/inbox/${name})`, responseCode: null };
  }

  close(): void {
    this.transport.close();
  }
}

export interface MailerConfig {
  smtpUrl: string | undefined;
  mailFrom: string;
  dataDir: string;
}

/** The mailer that does the work, on the thread that calls it. */
export function directMailer(config: MailerConfig): Mailer {
  return config.smtpUrl ? new SmtpMailer(config.smtpUrl, config.mailFrom) : new FileMailer(join(config.dataDir, MAIL_DIR), config.mailFrom);
}

/** The gateway's mailer: the direct one, run on a thread of its own (ThreadedMailer). */
export function createMailer(config: MailerConfig): Mailer {
  return new ThreadedMailer({ smtpUrl: config.smtpUrl, mailFrom: config.mailFrom, dataDir: config.dataDir });
}

export interface MailerRequest {
  id: number;
  message: MailMessage;
}

/** A send that failed: the error's kind, message and SMTP reply code. */
export interface MailerFailure {
  name: string;
  message: string;
  responseCode: number | null;
}

export type MailerReply = ThreadReply<MailResult, MailerFailure>;

/**
 * Sends through the direct mailer on a worker thread (mailer-thread.ts). Composing a
 * message with nodemailer takes the event loop a few hundred microseconds; with two
 * notifications per payment that was a quarter of the merchant-initiated flow's
 * throughput (docs/benchmarks.md, eighth session). Failures keep their kind: an SMTP
 * refusal is a PermanentMailError here as well. If the thread dies, the messages it held
 * fail (their deliveries are retried) and the next message starts a new thread.
 */
export class ThreadedMailer implements Mailer {
  readonly destination: string;
  private readonly thread: ThreadClient<MailResult, MailerFailure>;

  constructor(config: MailerConfig) {
    this.destination = config.smtpUrl ? smtpDestination(new URL(config.smtpUrl)) : `files in ${join(config.dataDir, MAIL_DIR)}`;
    this.thread = new ThreadClient({
      base: import.meta.url,
      name: 'mailer-thread',
      data: config,
      label: 'mail thread',
      failure: ({ name, message, responseCode }) =>
        name === 'PermanentMailError' ? new PermanentMailError(message, responseCode) : Object.assign(new Error(message), { responseCode }),
    });
  }

  send(message: MailMessage): Promise<MailResult> {
    return this.thread.request((id) => ({ id, message }) satisfies MailerRequest);
  }

  /** Messages in flight still finish; the process need not wait for the thread to exit. */
  close(): void {
    void this.thread.close(false);
  }
}

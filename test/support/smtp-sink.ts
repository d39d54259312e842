import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { parseMessage, type InboxMessage } from '../../src/adapters/mail/eml-inbox.js';

export interface Captured {
  to: string[];
  message: InboxMessage;
}

/** A real SMTP server on 127.0.0.1 that keeps what it receives and can refuse recipients on request. */
export class MailSink {
  readonly messages: Captured[] = [];
  /** Recipient → SMTP code to refuse it with (once for 4xx, always for 5xx). */
  readonly refuse = new Map<string, number>();
  /** While true, each message's DATA goes unanswered until release(): a slow mail server. */
  hold = false;
  private readonly held: Array<() => void> = [];
  private server: SMTPServer | null = null;
  port = 0;

  async start(): Promise<this> {
    this.server = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onRcptTo: (address, _session, callback) => {
        const code = this.refuse.get(address.address);
        if (code === undefined) return callback();
        if (code < 500) this.refuse.delete(address.address);
        callback(Object.assign(new Error(code < 500 ? 'try again later' : 'no such mailbox'), { responseCode: code }));
      },
      onData: (stream, session, callback) => {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const accept = () => {
            this.messages.push({ to: session.envelope.rcptTo.map((r) => r.address), message: parseMessage('smtp.eml', Buffer.concat(chunks).toString('utf8')) });
            callback();
          };
          if (this.hold) this.held.push(accept);
          else accept();
        });
      },
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    this.port = ((this.server as unknown as { server: { address(): AddressInfo } }).server.address()).port;
    return this;
  }

  /** Messages waiting for release(). */
  get holding(): number {
    return this.held.length;
  }

  /** Stops holding and accepts every held message. */
  release(): void {
    this.hold = false;
    for (const accept of this.held.splice(0)) accept();
  }

  to(address: string): Captured[] {
    return this.messages.filter((m) => m.to.includes(address));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

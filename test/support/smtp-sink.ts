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
          this.messages.push({ to: session.envelope.rcptTo.map((r) => r.address), message: parseMessage('smtp.eml', Buffer.concat(chunks).toString('utf8')) });
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', () => resolve()));
    this.port = ((this.server as unknown as { server: { address(): AddressInfo } }).server.address()).port;
    return this;
  }

  to(address: string): Captured[] {
    return this.messages.filter((m) => m.to.includes(address));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

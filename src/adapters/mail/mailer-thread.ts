import { parentPort, workerData } from 'node:worker_threads';
import { directMailer, type MailerConfig, type MailerReply, type MailerRequest } from './mailer.js';

/**
 * The mail thread: composes each message (nodemailer's MIME build) and hands it to SMTP
 * or writes it to the sandbox's mail directory, beside the event loop (mailer.ts,
 * ThreadedMailer).
 */
const mailer = directMailer(workerData as MailerConfig);

parentPort!.on('message', (request: MailerRequest | 'close') => {
  if (request === 'close') {
    mailer.close();
    parentPort!.close();
    return;
  }
  mailer.send(request.message).then(
    (value) => parentPort!.postMessage({ id: request.id, value } satisfies MailerReply),
    (error: Error & { responseCode?: number | null }) =>
      parentPort!.postMessage({ id: request.id, error: { name: error.name, message: error.message, responseCode: error.responseCode ?? null } } satisfies MailerReply),
  );
});

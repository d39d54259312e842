import { connect } from 'node:net';
import { exampleBody, type TestGateway } from './gateway.js';

/**
 * A merchant whose client gives up (a timeout) while its payment is written: a real HTTP
 * request over a socket that is closed once the payment is committed and before its answer,
 * which is then let go. Resolves once the gateway has answered nobody.
 */
export async function authoriseAndHangUp(t: TestGateway): Promise<void> {
  const base = new URL(await t.listen());
  const authorise = t.gateway.services.authorise;
  const execute = authorise.execute.bind(authorise);
  let committed!: () => void;
  const written = new Promise<void>((ok) => (committed = ok));
  let release!: () => void;
  const hungUp = new Promise<void>((ok) => (release = ok));
  let answered!: () => void;
  const done = new Promise<void>((ok) => (answered = ok));
  authorise.execute = async (...args) => {
    try {
      const stored = await execute(...args);
      committed();
      await hungUp;
      return stored;
    } finally {
      authorise.execute = execute;
      setImmediate(answered);
    }
  };
  const body = JSON.stringify(await exampleBody());
  const socket = connect(Number(base.port), base.hostname);
  socket.on('error', () => {});
  socket.write(
    `POST /payment/authorise HTTP/1.1\r\nhost: ${base.host}\r\ncontent-type: application/json\r\n` +
      `x-secret-key: ${t.credentials.secret_key}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  await written;
  socket.destroy();
  await new Promise<void>((ok) => {
    const check = () => t.app.server.getConnections((_e, n) => (n === 0 ? ok() : setTimeout(check, 10)));
    check();
  });
  release();
  await done;
}

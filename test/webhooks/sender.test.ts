import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { RESPONSE_BODY_LIMIT, WebhookSender } from '../../src/adapters/webhooks/sender.js';

const SANDBOX_LOCAL = { allowPrivate: true, requireHttps: false };

describe('the sender reading an answer', () => {
  it('stops reading a body past what the attempt log keeps and closes the connection', async () => {
    let sent = 0;
    let closed = false;
    const block = Buffer.alloc(64 * 1024, 'A');
    // Answers 200 and then sends without end, as fast as the gateway reads.
    const server = createServer((req, res) => {
      req.resume();
      res.writeHead(200, { 'content-type': 'text/plain' });
      const pump = () => {
        while (!res.destroyed && res.write(block)) sent += block.length;
      };
      res.on('drain', pump);
      res.on('close', () => (closed = true));
      pump();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const sender = new WebhookSender(SANDBOX_LOCAL, 20_000, 4);
    try {
      const started = Date.now();
      const answer = await sender.send({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, headers: {}, body: '{}' });
      assert.deepEqual([answer.statusCode, answer.error, answer.body], [200, null, 'A'.repeat(RESPONSE_BODY_LIMIT)]);
      assert.ok(Date.now() - started < 5_000, `answered after ${Date.now() - started} ms, not at once`);
      await new Promise((resolve) => setTimeout(resolve, 200));
      assert.ok(closed, 'the gateway closed the connection');
      assert.ok(sent < 16 * 1024 * 1024, `${sent} bytes were sent`);
    } finally {
      sender.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('reads a body of exactly the kept size to its end', async () => {
    const server = createServer((req, res) => {
      req.resume();
      res.end('B'.repeat(RESPONSE_BODY_LIMIT));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const sender = new WebhookSender(SANDBOX_LOCAL, 5_000, 4);
    try {
      const answer = await sender.send({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, headers: {}, body: '{}' });
      assert.deepEqual([answer.statusCode, answer.error, answer.body], [200, null, 'B'.repeat(RESPONSE_BODY_LIMIT)]);
    } finally {
      sender.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

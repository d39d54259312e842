import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { createLogger, requestLogger, scrubText } from '../../src/logger.js';

function capture(level: string) {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const parent = createLogger(level, sink);
  let children = 0;
  const child = parent.child.bind(parent);
  parent.child = ((...args: Parameters<typeof child>) => {
    children++;
    return child(...args);
  }) as typeof parent.child;
  return { parent, lines, children: () => children };
}

// pino writes to a plain stream synchronously, but give it a turn anyway.
const flushed = () => new Promise((r) => setImmediate(r));

describe('request logger', () => {
  it('builds no child for a request that logs nothing at the configured level', async () => {
    const { parent, lines, children } = capture('warn');
    const log = requestLogger(parent, { reqId: 'req_quiet' }, {});
    log.info({ req: { id: 'req_quiet', method: 'GET', url: '/health' } }, 'incoming request');
    log.debug('detail');
    await flushed();
    assert.equal(children(), 0);
    assert.deepEqual(lines, []);
    assert.equal(log.level, 'warn');
  });

  it('writes with the request id, through the redacting parent, once something is logged', async () => {
    const { parent, lines, children } = capture('warn');
    const log = requestLogger(parent, { reqId: 'req_loud' }, {});
    log.error({ body: { payment_method: { number: '4111111111111111' } } }, 'boom');
    log.warn('again');
    await flushed();
    assert.equal(children(), 1);
    assert.deepEqual(
      lines.map((l) => [l.reqId, l.msg]),
      [
        ['req_loud', 'boom'],
        ['req_loud', 'again'],
      ],
    );
    assert.equal((lines[0]!.body as { payment_method: { number: string } }).payment_method.number, '[redacted]');
  });

  it('follows the parent at info, and uses a real child when the route sets its own level', async () => {
    const info = capture('info');
    requestLogger(info.parent, { reqId: 'req_info' }, {}).info('incoming request');
    const routed = capture('warn');
    const debug = requestLogger(routed.parent, { reqId: 'req_debug' }, { level: 'debug' });
    debug.debug('route-level debug');
    await flushed();
    assert.deepEqual(info.lines.map((l) => [l.reqId, l.msg]), [['req_info', 'incoming request']]);
    assert.deepEqual(routed.lines.map((l) => [l.reqId, l.msg]), [['req_debug', 'route-level debug']]);
    assert.equal(routed.children(), 1);
    assert.ok(pino.levels.values[debug.level]! < pino.levels.values.warn!);
  });
});

describe('free-text scrubbing', () => {
  it('redacts card-number-like digits however they are written or glued to their neighbours', () => {
    for (const text of [
      'card4242424242424242',
      'x_4242424242424242',
      '12345674242424242424242',
      '4242.4242.4242.4242',
      '4242/4242/4242/4242',
      '4242  4242  4242  4242',
      'pan 4242 4242 4242 4242 used',
      '/nothing/4242_4242_4242_4242',
      '4242,4242,4242,4242',
      '4242%2C4242%2C4242%2C4242',
      '/payment/%34%32%34%32%34%32%34%32%34%32%34%32%34%32%34%32',
      '4242\u00a04242\u00a04242\u00a04242',
      'card 4242:4242:4242:4242 declined',
      'pan:4242:4242:4242:4242',
      '3782:822463:10005',
      '4242%3A4242%3A4242%3A4242',
    ]) {
      const scrubbed = scrubText(text);
      assert.ok(!/\d{5}|(?:\d{4}\D{1,3}){3}\d{4}|(?:%3\d){5}/.test(scrubbed), `${text} → ${scrubbed}`);
      assert.match(scrubbed, /\[digits redacted\]/);
    }
    assert.equal(scrubText('retry 3 of 10 at 12:00'), 'retry 3 of 10 at 12:00');
    // What operators need stays: times, host:port, a %-encoded URL with no long number in it.
    for (const kept of [
      '/payments?created_after=2026-11-28T03:45:00.000Z&limit=20',
      'timeout at 2026-11-28 03:45:00.123',
      'connect ECONNREFUSED 10.120.130.140:5432',
      'connect ECONNREFUSED [2001:4860:4860::8888]:5432',
      'connect ECONNREFUSED 2001:1234:5678:9012::1',
      'connect ECONNREFUSED fe80::1234:5678:9012:3456',
      'took 00:01:02:345 from 12:00:00',
      '/payments?created_after=2026-11-28%2003:45:00&reference=%31%32',
    ]) {
      assert.equal(scrubText(kept), kept);
    }
  });

  it('keeps card numbers pasted into a URL out of the request log', async () => {
    const lines: Array<{ req?: { url: string } }> = [];
    const log = createLogger('info', { write: (line: string) => lines.push(JSON.parse(line)) });
    for (const url of ['/payment/4242424242424242', '/payments?reference=4242+4242+4242+4242', '/payments?reference=4242%204242%204242%204242&limit=5', '/pay/tok_abc-def/confirm']) {
      log.info({ req: { id: 'r1', method: 'GET', url } }, 'incoming request');
    }
    assert.deepEqual(
      lines.map((l) => l.req?.url),
      ['/payment/[digits redacted]', '/payments?reference=[digits redacted]', '/payments?reference=[digits redacted]&limit=5', '/pay/[token]/confirm'],
    );
  });
});

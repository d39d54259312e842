import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { blockedReason, checkUrl, parseIPv6, parseLooseIPv4, resolveChecked, TargetRefused } from '../../src/adapters/webhooks/ssrf-guard.js';
import { WebhookSender } from '../../src/adapters/webhooks/sender.js';
import { Receiver } from './support.js';

const LIVE = { allowPrivate: false, requireHttps: true };
const SANDBOX_STRICT = { allowPrivate: false, requireHttps: false };
const SANDBOX_LOCAL = { allowPrivate: true, requireHttps: false };

function refused(fn: () => unknown, code: string, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof TargetRefused && e.code === code && (!message || message.test(e.message)));
}

describe('address classification', () => {
  it('reads the loose IPv4 forms as the address they stand for', () => {
    for (const form of ['127.0.0.1', '2130706433', '0x7f000001', '0177.0.0.1', '127.1', '0x7f.0.0.1', '017700000001']) {
      assert.deepEqual(parseLooseIPv4(form), [127, 0, 0, 1], form);
    }
    assert.deepEqual(parseLooseIPv4('10.1'), [10, 0, 0, 1]);
    assert.deepEqual(parseLooseIPv4('0x'), [0, 0, 0, 0], 'URL parsers read a bare 0x as zero');
    for (const notIp of ['example.com', '256.0.0.1', '1.2.3.4.5', '4294967296', '08.0.0.1', '']) assert.equal(parseLooseIPv4(notIp), null, notIp);
  });

  it('parses IPv6 with compression, embedded IPv4, brackets and zones', () => {
    assert.deepEqual(parseIPv6('::1'), [...Array(15).fill(0), 1]);
    assert.deepEqual(parseIPv6('[::ffff:127.0.0.1]')!.slice(10), [0xff, 0xff, 127, 0, 0, 1]);
    assert.deepEqual(parseIPv6('::ffff:7f00:1')!.slice(12), [127, 0, 0, 1]);
    assert.equal(parseIPv6('fe80::1%eth0')![0], 0xfe);
    for (const bad of ['1::2::3', '12345::', 'g::1', '1:2:3:4:5:6:7:8:9']) assert.equal(parseIPv6(bad), null, bad);
  });

  it('refuses loopback, private, link-local, CGNAT, metadata, unspecified, multicast and reserved ranges', () => {
    const cases: Record<string, RegExp> = {
      '127.0.0.1': /loopback/,
      '127.255.255.254': /loopback/,
      '10.0.0.1': /private/,
      '172.16.5.4': /private/,
      '172.31.255.255': /private/,
      '192.168.1.1': /private/,
      '169.254.169.254': /metadata/,
      '169.254.1.1': /link-local/,
      '100.64.0.1': /CGNAT/,
      '100.100.100.200': /metadata/,
      '0.0.0.0': /unspecified/,
      '224.0.0.1': /multicast/,
      '255.255.255.255': /reserved/,
      '198.18.0.1': /benchmarking/,
      '2130706433': /loopback/,
      '0x7f000001': /loopback/,
      '0177.0.0.1': /loopback/,
      '::1': /loopback/,
      '[::1]': /loopback/,
      '::': /unspecified/,
      '::ffff:127.0.0.1': /loopback \(IPv4-mapped\)/,
      '::ffff:a9fe:a9fe': /metadata \(IPv4-mapped\)/,
      '64:ff9b::a00:1': /private \(NAT64\)/,
      '::ffff:0:7f00:1': /loopback \(IPv4-translated\)/,
      '2002:7f00:1::': /loopback \(6to4\)/,
      'fc00::1': /unique local/,
      'fd00:ec2::254': /metadata/,
      'fe80::1': /link-local/,
      'ff02::1': /multicast/,
      '2001:db8::1': /documentation/,
      '3fff::1': /documentation/,
      '3fff:fff:ffff::1': /documentation/,
      '2001:2::1': /benchmarking/,
      '2001:10::1': /ORCHID \(deprecated\)/,
      '2001:1f::1': /ORCHID \(deprecated\)/,
      '2001:20::1': /ORCHIDv2/,
      '2001:2f:ffff::1': /ORCHIDv2/,
      '5f00::1': /SRv6/,
      '100::1': /discard-only/,
    };
    for (const [address, reason] of Object.entries(cases)) assert.match(blockedReason(address) ?? 'allowed', reason, address);
  });

  it('lets public addresses through', () => {
    for (const address of ['93.184.215.14', '8.8.8.8', '172.32.0.1', '100.128.0.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '64:ff9b::808:808', '2001:3::1', '2001:30::1', '3fff:1000::1', '5f01::1', '100:0:0:1::1']) {
      assert.equal(blockedReason(address), null, address);
    }
  });
});

describe('URL checks in live mode', () => {
  it('refuses the SSRF cases, whatever form the address is written in', () => {
    for (const url of [
      'https://127.0.0.1/hook',
      'https://[::1]/hook',
      'https://169.254.169.254/latest/meta-data/',
      'https://10.0.0.1/',
      'https://2130706433/',
      'https://0x7f000001/',
      'https://0177.0.0.1/',
      'https://[::ffff:127.0.0.1]/',
      'https://0/',
    ]) {
      refused(() => checkUrl(url, LIVE), 'url_address_not_allowed', /callbacks only go to public/);
    }
  });

  it('names the kind of address refused, with the right article', () => {
    refused(() => checkUrl('https://[::]/', LIVE), 'url_address_not_allowed', /^:: is an unspecified address;/);
    refused(() => checkUrl('https://[2001:20::1]/', LIVE), 'url_address_not_allowed', /is an ORCHIDv2 address/);
    refused(() => checkUrl('https://192.0.0.8/', LIVE), 'url_address_not_allowed', /is an IETF protocol assignment address/);
    refused(() => checkUrl('https://[fc00::1]/', LIVE), 'url_address_not_allowed', /is a unique local \(private\) address/);
    refused(() => checkUrl('https://[3fff::1]/', LIVE), 'url_address_not_allowed', /is a documentation address/);
  });

  it('wants https in live mode, http allowed in sandbox', () => {
    refused(() => checkUrl('http://example.com/hook', LIVE), 'url_scheme_not_allowed', /https in live mode/);
    assert.equal(checkUrl('http://example.com/hook', SANDBOX_STRICT).href, 'http://example.com/hook');
    refused(() => checkUrl('ftp://example.com/', SANDBOX_STRICT), 'url_scheme_not_allowed');
  });

  it('refuses malformed URLs, credentials and fragments', () => {
    refused(() => checkUrl('not a url', LIVE), 'invalid_url');
    refused(() => checkUrl('https://user:pw@example.com/', LIVE), 'invalid_url', /user name or password/);
    refused(() => checkUrl('https://example.com/#x', LIVE), 'invalid_url', /fragment/);
  });

  it('refuses a host name that resolves to loopback, and one with any private address', async () => {
    await assert.rejects(resolveChecked('localhost', LIVE), (e: unknown) => e instanceof TargetRefused && e.code === 'url_address_not_allowed' && /localhost resolves to it/.test(e.message));
    const mixed = async () => [
      { address: '93.184.215.14', family: 4 },
      { address: '10.1.2.3', family: 4 },
    ];
    await assert.rejects(resolveChecked('mixed.example', LIVE, mixed), /10\.1\.2\.3 is a private address/);
    const unresolvable = async () => {
      throw Object.assign(new Error('nope'), { code: 'ENOTFOUND' });
    };
    await assert.rejects(resolveChecked('nowhere.example', LIVE, unresolvable), (e: unknown) => e instanceof TargetRefused && e.code === 'url_host_unresolvable');
    assert.deepEqual(await resolveChecked('public.example', LIVE, async () => [{ address: '93.184.215.14', family: 4 }]), [{ address: '93.184.215.14', family: 4 }]);
  });

  it('allows loopback when the sandbox says so', async () => {
    assert.equal(checkUrl('http://127.0.0.1:9/hook', SANDBOX_LOCAL).hostname, '127.0.0.1');
    assert.equal((await resolveChecked('localhost', SANDBOX_LOCAL)).length > 0, true);
  });
});

describe('the sender connects only to checked addresses', () => {
  it('never reaches a loopback receiver under the live policy, by IP or by name', async () => {
    const receiver = await new Receiver().start();
    try {
      const strict = new WebhookSender(SANDBOX_STRICT, 2000, 4);
      for (const url of [`http://127.0.0.1:${receiver.port}/`, `http://localhost:${receiver.port}/`, `http://2130706433:${receiver.port}/`]) {
        const res = await strict.send({ url, headers: {}, body: '{}' });
        assert.equal(res.statusCode, null, url);
        assert.match(res.error ?? '', /refused: .*loopback/, url);
      }
      strict.close();
      assert.equal(receiver.requests, 0);
    } finally {
      await receiver.stop();
    }
  });

  it('connects to the address its own lookup returned, not to a fresh DNS answer', async () => {
    const receiver = await new Receiver().start();
    try {
      // "rebind.invalid" exists in no DNS; the request can only land on the address the guard handed over.
      const pinned = async () => [{ address: '127.0.0.1', family: 4 }];
      const local = new WebhookSender(SANDBOX_LOCAL, 2000, 4, pinned);
      const ok = await local.send({ url: `http://rebind.invalid:${receiver.port}/hooks`, headers: {}, body: '{}' });
      local.close();
      assert.equal(receiver.requests, 1);
      assert.equal(ok.statusCode, 400, 'the receiver rejects an unsigned message');
      const strict = new WebhookSender(SANDBOX_STRICT, 2000, 4, pinned);
      const blocked = await strict.send({ url: `http://rebind.invalid:${receiver.port}/hooks`, headers: {}, body: '{}' });
      strict.close();
      assert.match(blocked.error ?? '', /refused: 127\.0\.0\.1 is a loopback address/);
      assert.equal(receiver.requests, 1);
    } finally {
      await receiver.stop();
    }
  });

  it('does not follow redirects and bounds a hanging endpoint by the timeout', async () => {
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      if (req.url === '/redirect') res.writeHead(302, { location: 'http://169.254.169.254/' }).end();
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    const sender = new WebhookSender(SANDBOX_LOCAL, 300, 4);
    try {
      const redirected = await sender.send({ url: `http://127.0.0.1:${port}/redirect`, headers: {}, body: '{}' });
      assert.equal(redirected.statusCode, 302);
      const hung = await sender.send({ url: `http://127.0.0.1:${port}/hang`, headers: {}, body: '{}' });
      assert.equal(hung.statusCode, null);
      assert.match(hung.error ?? '', /no complete response within 300 ms/);
    } finally {
      sender.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

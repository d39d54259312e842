import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs, { mkdtempSync, readdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ConfigError, loadConfig } from '../../src/config.js';

const env = { DATA_DIR: '/tmp/unused', VAULT_KEK: `k1:${randomBytes(32).toString('base64')}`, HMAC_KEY: randomBytes(32).toString('base64') };
const refused = (extra: Record<string, string>, pattern: RegExp) =>
  assert.throws(() => loadConfig({ ...env, ...extra }), (e: Error) => e instanceof ConfigError && pattern.test(e.message), JSON.stringify(extra));

describe('mail settings', () => {
  it('refuses an SMTP_URL that is not an smtp:// or smtps:// URL with a host, without echoing it', () => {
    refused({ SMTP_URL: 'notaurl' }, /^SMTP_URL must be a URL such as smtp:\/\//);
    refused({ SMTP_URL: 'https://user:s3cret@mail.example.com' }, /^SMTP_URL must start with smtp:\/\/ or smtps:\/\/, got "https:\/\/"$/);
    refused({ SMTP_URL: 'smtp://' }, /^SMTP_URL names no host$/);
    assert.throws(() => loadConfig({ ...env, SMTP_URL: 'ftp://user:s3cret@host' }), (e: Error) => !e.message.includes('s3cret'));
  });

  it('accepts smtp:// and smtps:// URLs with their options', () => {
    for (const url of ['smtp://127.0.0.1:2525', 'smtps://user:pass@mail.example.com:465?pool=true']) assert.equal(loadConfig({ ...env, SMTP_URL: url }).smtpUrl, url);
    assert.equal(loadConfig(env).smtpUrl, undefined);
  });

  it('refuses a MAIL_FROM that is not one address, alone or after a name', () => {
    for (const from of ['payments', 'Shop <payments>', 'a@b.example\r\nBcc: x@y.example', 'a@b.example, c@d.example', '<a@b.example'])
      refused({ MAIL_FROM: from }, /^MAIL_FROM must be an e-mail address/);
    for (const from of ['payments@shop.example', 'Acme Payments <payments@shop.example>', '"Acme, Ltd" <payments@shop.example>']) assert.equal(loadConfig({ ...env, MAIL_FROM: from }).mailFrom, from);
    assert.equal(loadConfig(env).mailFrom, 'tZero Pay <no-reply@tzero-pay.test>');
  });
});

describe('live mode', () => {
  const live = { GATEWAY_MODE: 'live', ACQUIRER: 'sandbox', DATABASE_URL: 'postgres://gateway@127.0.0.1:5432/gateway', PUBLIC_URL: 'https://pay.example.com' };

  it('names its acquirer: a live gateway never lands on the simulator by default', () => {
    refused({ ...live, ACQUIRER: '' }, /^live mode needs ACQUIRER \(one of: sandbox\); "sandbox" is a simulator that moves no money$/);
    refused({ ACQUIRER: 'stripe' }, /^ACQUIRER must be one of: sandbox \(got "stripe"\)$/);
    assert.equal(loadConfig({ ...env, ...live }).acquirer, 'sandbox');
    assert.equal(loadConfig(env).acquirer, 'sandbox');
  });

  it('serves payment pages over HTTPS only: their links are credentials', () => {
    refused({ ...live, PUBLIC_URL: 'http://pay.example.com' }, /^PUBLIC_URL must be an https:\/\/ URL in live mode/);
    assert.equal(loadConfig({ ...env, ...live }).publicUrl, 'https://pay.example.com');
  });

  it('takes only http(s) public URLs in any mode', () => {
    for (const url of ['ftp://pay.example.com', 'javascript:alert(1)', 'pay.example.com']) refused({ PUBLIC_URL: url }, /^PUBLIC_URL must be an absolute http:\/\/ or https:\/\/ URL/);
    assert.equal(loadConfig({ ...env, PUBLIC_URL: 'http://127.0.0.1:8080/' }).publicUrl, 'http://127.0.0.1:8080');
  });

  it('refuses PORT 0 without a PUBLIC_URL: the default one would be http://HOST:0, a link to nowhere in every payment', () => {
    refused({ PORT: '0', PUBLIC_URL: '' }, /^PORT 0 \(any free port\) needs PUBLIC_URL/);
    assert.equal(loadConfig({ ...env, PORT: '0', PUBLIC_URL: 'http://127.0.0.1:8080' }).publicUrl, 'http://127.0.0.1:8080');
  });

  it('blames HOST, not a PUBLIC_URL nobody set, for a host that is no host; one with a slash made a wrong public URL', () => {
    for (const host of ['not a host', 'pay/ments', 'pay:8080']) refused({ HOST: host, PUBLIC_URL: '' }, new RegExp(`^HOST must be a host name or IP address to listen on, got "${host}"$`));
    assert.equal(loadConfig({ ...env, HOST: '::' }).publicUrl, 'http://[::]:8080');
  });

  it('wants an operator token no one could guess', () => {
    refused({ ...live, OPERATOR_TOKEN: 'a' }, /^OPERATOR_TOKEN must be at least 32 characters in live mode/);
    assert.deepEqual(loadConfig({ ...env, ...live, OPERATOR_TOKEN: 'x'.repeat(32) }).operatorTokens, [{ name: null, token: 'x'.repeat(32) }]);
    assert.deepEqual(loadConfig({ ...env, OPERATOR_TOKEN: 'a' }).operatorTokens, [{ name: null, token: 'a' }]);
  });

  it('takes a token a person (OPERATOR_TOKENS), never echoing one in its messages', () => {
    const a = 'a'.repeat(32);
    const b = 'b'.repeat(32);
    assert.deepEqual(loadConfig({ ...env, OPERATOR_TOKENS: `alice=${a}, bob.ops@acme=${b},` }).operatorTokens, [
      { name: 'alice', token: a },
      { name: 'bob.ops@acme', token: b },
    ]);
    assert.deepEqual(loadConfig({ ...env, OPERATOR_TOKEN: 'shared', OPERATOR_TOKENS: `alice=${a}` }).operatorTokens.map((t) => t.name), [null, 'alice']);
    refused({ OPERATOR_TOKENS: a }, /^OPERATOR_TOKENS entry 1 must be name=token/);
    refused({ OPERATOR_TOKENS: `alice=${a},bad name=${b}` }, /^OPERATOR_TOKENS entry 2 must be name=token/);
    refused({ OPERATOR_TOKENS: 'alice=' }, /^OPERATOR_TOKENS entry 1 needs a token/);
    refused({ OPERATOR_TOKENS: `alice=${a},alice=${b}` }, /^OPERATOR_TOKENS entry 2 repeats an earlier entry's name/);
    refused({ OPERATOR_TOKENS: `alice=${a},bob=${a}` }, /^OPERATOR_TOKENS entry 2's token is also another operator's/);
    refused({ OPERATOR_TOKEN: a, OPERATOR_TOKENS: `bob=${a}` }, /^OPERATOR_TOKENS entry 1's token is also another operator's or OPERATOR_TOKEN/);
    refused({ ...live, OPERATOR_TOKENS: 'alice=short' }, /^OPERATOR_TOKENS entry 1's token must be at least 32 characters in live mode/);
    assert.deepEqual(loadConfig({ ...env, OPERATOR_TOKENS: `alice=${a}`, OPERATOR_PORT: '9090' }).operatorListen, { host: '127.0.0.1', port: 9090 });
    // `openssl rand -hex 32` is 64 characters a name may hold: written the wrong way round,
    // token=name, the token is read as the name and must not be quoted back.
    const hex = 'c0ffee'.repeat(10) + 'beef';
    assert.throws(() => loadConfig({ ...env, ...live, OPERATOR_TOKENS: `${hex}=alice` }), (e: Error) => e instanceof ConfigError && !e.message.includes(hex));
    assert.throws(() => loadConfig({ ...env, OPERATOR_TOKENS: `${hex}=` }), (e: Error) => e instanceof ConfigError && !e.message.includes(hex));
    for (const secret of [a, 'short']) {
      assert.throws(() => loadConfig({ ...env, ...live, OPERATOR_TOKENS: `alice=${secret},alice=${secret}x` }), (e: Error) => e instanceof ConfigError && !e.message.includes(secret));
    }
  });

  it('puts the operator API on a listener of its own when asked, on loopback unless told otherwise', () => {
    assert.equal(loadConfig({ ...env, OPERATOR_TOKEN: 'a' }).operatorListen, undefined);
    assert.deepEqual(loadConfig({ ...env, OPERATOR_TOKEN: 'a', OPERATOR_PORT: '9090' }).operatorListen, { host: '127.0.0.1', port: 9090 });
    assert.deepEqual(loadConfig({ ...env, OPERATOR_TOKEN: 'a', OPERATOR_PORT: '9090', OPERATOR_HOST: '10.0.0.5' }).operatorListen, { host: '10.0.0.5', port: 9090 });
    refused({ OPERATOR_PORT: '9090' }, /^OPERATOR_PORT needs OPERATOR_TOKEN or OPERATOR_TOKENS/);
    // Set but naming no operator: a listener where every request is refused.
    refused({ OPERATOR_PORT: '9090', OPERATOR_TOKENS: ' , ' }, /^OPERATOR_PORT needs OPERATOR_TOKEN or OPERATOR_TOKENS/);
    refused({ OPERATOR_TOKEN: 'a', OPERATOR_HOST: '127.0.0.1' }, /^OPERATOR_HOST needs OPERATOR_PORT/);
    refused({ OPERATOR_TOKEN: 'a', PORT: '9090', OPERATOR_PORT: '9090' }, /^OPERATOR_PORT must differ from PORT \(9090\)/);
    refused({ OPERATOR_TOKEN: 'a', OPERATOR_PORT: 'nine' }, /^OPERATOR_PORT must be a whole number/);
  });
});

describe('database settings', () => {
  it('sizes the PostgreSQL pool with DATABASE_POOL_SIZE, and refuses it without DATABASE_URL', () => {
    const pg = { DATABASE_URL: 'postgres://gateway@db.example/tzero' };
    assert.equal(loadConfig({ ...env, ...pg }).databasePoolSize, 20);
    assert.equal(loadConfig({ ...env, ...pg, DATABASE_POOL_SIZE: '5' }).databasePoolSize, 5);
    refused({ ...pg, DATABASE_POOL_SIZE: '0' }, /^DATABASE_POOL_SIZE must be between 1 and 1000, got 0$/);
    refused({ DATABASE_POOL_SIZE: '5' }, /^DATABASE_POOL_SIZE needs DATABASE_URL/);
  });
});

describe('keys', () => {
  it('reads HMAC_KEY as base64 as it always did, and tells the operator when it is not written as such', () => {
    refused({ HMAC_KEY: randomBytes(16).toString('base64') }, /^HMAC_KEY must be base64 of at least 32 bytes/);
    refused({ HMAC_KEY: 'too short' }, /^HMAC_KEY must be base64 of at least 32 bytes/);
    // A deployment with such a key must keep it: changing it ends page links and fingerprints.
    for (const key of [randomBytes(32).toString('hex'), randomBytes(32).toString('base64url')]) {
      const config = loadConfig({ ...env, HMAC_KEY: key });
      assert.deepEqual(config.hmacKey, Buffer.from(key, 'base64'));
      assert.equal(config.notices.length, 1);
      assert.match(config.notices[0]!, /^HMAC_KEY is not written as canonical base64/);
      assert.ok(!config.notices[0]!.includes(key), 'a notice never shows the key');
    }
    assert.deepEqual(loadConfig(env).notices, []);
  });

  it("names the sandbox's key file, not a variable nobody set, when that file is damaged", () => {
    const dir = mkdtempSync(join(tmpdir(), 'tzero-keys-'));
    const file = join(dir, 'sandbox-keys.json');
    for (const damaged of ['{}', 'not json', '{"kek": 1, "hmac_key": "x"}']) {
      writeFileSync(file, damaged);
      assert.throws(() => loadConfig({ DATA_DIR: dir }), (e: Error) => e instanceof ConfigError && e.message === `${file} is unreadable or damaged (it needs "kek" and "hmac_key"); restore it (card data sealed under its keys cannot be read without it) or set VAULT_KEK and HMAC_KEY`, damaged);
    }
    writeFileSync(file, JSON.stringify({ kek: 'sandbox1:short', hmac_key: randomBytes(32).toString('base64') }));
    assert.throws(() => loadConfig({ DATA_DIR: dir }), (e: Error) => e instanceof ConfigError && e.message.startsWith(`"kek" in ${file}: key "sandbox1" must decode to 32 bytes`));
  });
});

/**
 * Processes that load the config on `dir` together: each says it is ready, then spins until
 * the `go` file appears, so their first look at the key file falls within microseconds.
 * Resolves to what each printed: the active KEK, or ERR and the message.
 */
async function loadTogether(dir: string, count: number, withoutHardLinks = false): Promise<string[]> {
  const go = `${dir}.go`;
  const script = `
    import fs, { existsSync } from 'node:fs';
    import { syncBuiltinESMExports } from 'node:module';
    ${withoutHardLinks ? NO_HARD_LINKS : ''}
    import { loadConfig } from ${JSON.stringify(new URL('../../src/config.ts', import.meta.url).href)};
    process.stdout.write('ready\\n');
    while (!existsSync(${JSON.stringify(go)}));
    try { process.stdout.write(loadConfig({ DATA_DIR: ${JSON.stringify(dir)} }).keks.active.key.toString('base64')); }
    catch (e) { process.stdout.write('ERR ' + e.message); }`;
  let ready = 0;
  const done = Array.from({ length: count }, () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let counted = false;
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (!counted && out.startsWith('ready\n')) {
        counted = true;
        if (++ready === count) writeFileSync(go, '');
      }
    });
    return new Promise<string>((resolve) => child.on('close', () => resolve(out.replace(/^ready\n/, '') || `ERR stderr: ${err.slice(0, 300)}`)));
  });
  return Promise.all(done);
}

/** As on exFAT or some network mounts: the file system makes no hard links (EPERM on Linux). */
const NO_HARD_LINKS = `
  fs.linkSync = () => { throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' }); };
  syncBuiltinESMExports();`;

describe('sandbox key file', () => {
  it('is made once when several processes start on a fresh DATA_DIR together, and all of them use it', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = mkdtempSync(join(tmpdir(), 'tzero-keys-race-'));
      const keys = await loadTogether(dir, 4);
      assert.equal(keys.filter((k) => k.startsWith('ERR')).join('\n'), '', `round ${round}`);
      assert.equal(new Set(keys).size, 1, `round ${round}: every process uses the one file's key`);
      assert.deepEqual(readdirSync(dir), ['sandbox-keys.json'], 'no temporary file is left behind');
    }
  });

  it('is made whole, once, on a file system without hard links, by processes starting together', async () => {
    for (let round = 0; round < 3; round++) {
      const dir = mkdtempSync(join(tmpdir(), 'tzero-keys-nolink-'));
      const keys = await loadTogether(dir, 4, true);
      assert.equal(keys.filter((k) => k.startsWith('ERR')).join('\n'), '', `round ${round}`);
      assert.equal(new Set(keys).size, 1, `round ${round}: every process uses the one file's key`);
      assert.deepEqual(readdirSync(dir), ['sandbox-keys.json'], 'no temporary file is left behind');
      const file = join(dir, 'sandbox-keys.json');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.equal(`sandbox1:${keys[0]}`, JSON.parse(readFileSync(file, 'utf8')).kek);
    }
  });

  it('without hard links, a process finding the file still empty waits for its maker to write it', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tzero-keys-empty-'));
    const file = join(dir, 'sandbox-keys.json');
    const kept = { kek: `sandbox1:${randomBytes(32).toString('base64')}`, hmac_key: randomBytes(32).toString('base64') };
    // The maker has created the file ('wx') and writes it 100 ms later, as a slow disk might.
    writeFileSync(file, '');
    const writer = spawn(process.execPath, ['-e', `setTimeout(() => require('fs').writeFileSync(${JSON.stringify(file)}, ${JSON.stringify(JSON.stringify(kept))}), 200)`]);
    try {
      assert.equal(`sandbox1:${loadConfig({ DATA_DIR: dir }).keks.active.key.toString('base64')}`, kept.kek);
    } finally {
      writer.kill();
    }
  });

  it('is made by a gateway alone on a file system without hard links, owner-only, and used again', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tzero-keys-nolink-'));
    const link = fs.linkSync;
    fs.linkSync = () => {
      throw Object.assign(new Error('EPERM: operation not permitted, link'), { code: 'EPERM' });
    };
    syncBuiltinESMExports();
    try {
      const first = loadConfig({ DATA_DIR: dir }).keks.active.key;
      assert.deepEqual(readdirSync(dir), ['sandbox-keys.json']);
      assert.equal(statSync(join(dir, 'sandbox-keys.json')).mode & 0o777, 0o600);
      assert.deepEqual(loadConfig({ DATA_DIR: dir }).keks.active.key, first);
    } finally {
      fs.linkSync = link;
      syncBuiltinESMExports();
    }
  });

  it('without hard links, makes the file again when a process killed before writing it left it empty', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tzero-keys-abandoned-'));
    const file = join(dir, 'sandbox-keys.json');
    // Created ('wx') by a maker killed before its one write: no key was ever read from it.
    writeFileSync(file, '', { mode: 0o600 });
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(file, hourAgo, hourAgo);
    const made = loadConfig({ DATA_DIR: dir }).keks.active.key;
    assert.equal(`sandbox1:${made.toString('base64')}`, JSON.parse(readFileSync(file, 'utf8')).kek);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.deepEqual(loadConfig({ DATA_DIR: dir }).keks.active.key, made);
  });

  it('leaves no temporary file of a process killed while making it: an old one is removed at the next boot', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tzero-keys-stale-'));
    const made = loadConfig({ DATA_DIR: dir }).keks.active.key;
    const stale = join(dir, 'sandbox-keys.json.4242.0123456789ab.tmp');
    const fresh = join(dir, 'sandbox-keys.json.4343.ba9876543210.tmp');
    const other = join(dir, 'notes.tmp');
    for (const f of [stale, fresh, other]) writeFileSync(f, '{"kek":"…"}', { mode: 0o600 });
    const hourAgo = new Date(Date.now() - 3_600_000);
    utimesSync(stale, hourAgo, hourAgo);
    utimesSync(other, hourAgo, hourAgo);
    assert.deepEqual(loadConfig({ DATA_DIR: dir }).keks.active.key, made);
    // One still being linked by a process starting right now is left to it; what is not the key file's, left alone.
    assert.deepEqual(readdirSync(dir).sort(), ['notes.tmp', 'sandbox-keys.json', 'sandbox-keys.json.4343.ba9876543210.tmp']);
  });
});

describe('data directory', () => {
  it('names DATA_DIR, without a stack trace, when it is a file or lies under one', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'tzero-datadir-')), 'a-file');
    writeFileSync(file, '');
    refused({ DATA_DIR: file }, new RegExp(`^DATA_DIR must be a directory the gateway can create and write to; ${file} cannot be used: EEXIST`));
    refused({ DATA_DIR: join(file, 'data') }, /^DATA_DIR must be a directory the gateway can create and write to; .* cannot be used: ENOTDIR/);
  });
});

describe('retry schedule', () => {
  it('refuses a first wait longer than the longest wait', () => {
    refused({ WEBHOOK_RETRY_BASE_SECONDS: '600', WEBHOOK_RETRY_MAX_DELAY_SECONDS: '60' }, /^WEBHOOK_RETRY_BASE_SECONDS must not exceed WEBHOOK_RETRY_MAX_DELAY_SECONDS/);
    assert.equal(loadConfig({ ...env, WEBHOOK_RETRY_BASE_SECONDS: '60', WEBHOOK_RETRY_MAX_DELAY_SECONDS: '60' }).webhookRetryBaseMs, 60_000);
  });
});

describe('proxies', () => {
  it('trusts X-Forwarded-For only from the proxies named in TRUST_PROXY', () => {
    assert.equal(loadConfig(env).trustProxy, false);
    assert.deepEqual(loadConfig({ ...env, TRUST_PROXY: ' 10.0.0.0/8, 127.0.0.1,loopback,fd00::/8 ' }).trustProxy, ['10.0.0.0/8', '127.0.0.1', 'loopback', 'fd00::/8']);
    // Trusting every sender lets any client write the address audits and logs record.
    refused({ TRUST_PROXY: 'true' }, /^TRUST_PROXY lists the addresses .* got "true"/);
    refused({ TRUST_PROXY: '*' }, /^TRUST_PROXY lists/);
    refused({ TRUST_PROXY: '10.0.0.0/33' }, /got "10\.0\.0\.0\/33"/);
    for (const everyone of ['0.0.0.0/0', '::/0', '10.0.0.1/0', '::ffff:0.0.0.0/96']) refused({ TRUST_PROXY: everyone }, /^TRUST_PROXY lists/);
    refused({ TRUST_PROXY: '10.0.0.1,,10.0.0.2' }, /got ""/);
    refused({ TRUST_PROXY: 'proxy.internal' }, /got "proxy\.internal"/);
  });
});

describe('merchant rate limit', () => {
  it('is off unless RATE_LIMIT_PER_SECOND is set; the burst defaults to one second of it and needs the rate', () => {
    assert.equal(loadConfig(env).merchantRateLimit, undefined);
    assert.equal(loadConfig({ ...env, RATE_LIMIT_PER_SECOND: '0' }).merchantRateLimit, undefined);
    assert.deepEqual(loadConfig({ ...env, RATE_LIMIT_PER_SECOND: '50' }).merchantRateLimit, { perSecond: 50, burst: 50 });
    assert.deepEqual(loadConfig({ ...env, RATE_LIMIT_PER_SECOND: '50', RATE_LIMIT_BURST: '200' }).merchantRateLimit, { perSecond: 50, burst: 200 });
    refused({ RATE_LIMIT_BURST: '10' }, /^RATE_LIMIT_BURST needs RATE_LIMIT_PER_SECOND/);
    refused({ RATE_LIMIT_PER_SECOND: '10', RATE_LIMIT_BURST: '0' }, /^RATE_LIMIT_BURST must be between 1 and/);
    refused({ RATE_LIMIT_PER_SECOND: '2.5' }, /^RATE_LIMIT_PER_SECOND must be a whole number/);
  });
});

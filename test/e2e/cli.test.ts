import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { GATEWAY_ACTOR } from '../../src/app/audit.js';
import { loadConfig } from '../../src/config.js';
import { createGateway, ensureSandboxCredentials, sandboxCredentialsFile } from '../../src/server.js';
import { exampleBody, freePort } from '../support/gateway.js';
import { authoriseExampleOn } from '../support/http.js';
import { runCli, type CliResult } from '../support/process.js';

const ok = (r: CliResult, what: string) => assert.equal(r.code, 0, `${what} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
const json = <T = any>(r: CliResult, what: string): T => {
  ok(r, what);
  return JSON.parse(r.stdout) as T;
};

/**
 * Each command runs as its own process, as an operator would run it; commands that do
 * not depend on each other run side by side to keep the suite quick.
 */
describe('operator CLI (npm run cli), text and --json', () => {
  let dataDir: string;
  const cli = (...args: string[]) => runCli(args, { DATA_DIR: dataDir });

  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'tzero-cli-'));
    const migrated = await cli('migrate');
    ok(migrated, 'migrate');
    // Which database, and what was done to it: a fresh one gets every migration.
    assert.match(migrated.stdout, new RegExp(`^applied \\d+ migrations \\(001-[a-z0-9-]+ … \\d{3}-[a-z0-9-]+\\) to sqlite ${join(dataDir, 'gateway.sqlite').replace(/[.]/g, '\\.')}; it is up to date\n$`));
  });
  after(() => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  let merchantId: string;
  let keyA: { id: string; secret_key: string; last4: string };
  let keyB: string;

  it('migrate again (a no-op) and merchant create', async () => {
    const [migrate, text, asJson] = await Promise.all([cli('migrate', '--json'), cli('merchant', 'create', '--name', 'Acme Text Ltd'), cli('merchant', 'create', '--name', 'Acme Ltd', '--json')]);
    assert.deepEqual(json(migrate, 'migrate --json'), { dialect: 'sqlite', database: join(dataDir, 'gateway.sqlite'), applied: [] });
    ok(text, 'merchant create');
    assert.match(text.stdout, /^created merchant mer_[0-9a-f]{32} \(Acme Text Ltd\)\n$/);
    const merchant = json<{ id: string; name: string; created_at: string }>(asJson, 'merchant create --json');
    assert.match(merchant.id, /^mer_[0-9a-f]{32}$/);
    assert.equal(merchant.name, 'Acme Ltd');
    assert.ok(!Number.isNaN(Date.parse(merchant.created_at)));
    merchantId = merchant.id;
  });

  it('channel create with --return-url and --notify-email; key create', async () => {
    const common = ['--merchant', merchantId, '--currency', 'USD,EUR', '--currency', 'GBP'];
    const [text, asJson, keyText, keyJson] = await Promise.all([
      cli('channel', 'create', ...common, '--reference', 'acme-text', '--name', 'Acme Text', '--return-url', 'https://acme.example/text-return', '--notify-email', 'ops@acme.example'),
      cli('channel', 'create', ...common, '--reference', 'acme-web', '--name', 'Acme Web', '--return-url', 'https://acme.example/return', '--return-url', 'https://acme.example/return2', '--notify-email', 'ops@acme.example,finance@acme.example', '--mode', 'live', '--json'),
      cli('key', 'create', '--merchant', merchantId, '--label', 'text'),
      cli('key', 'create', '--merchant', merchantId, '--label', 'primary', '--json'),
    ]);
    ok(text, 'channel create');
    assert.match(text.stdout, /created channel "acme-text" \(ch_[0-9a-f]{32}\)/);
    assert.match(text.stdout, /return URLs: https:\/\/acme\.example\/text-return/);
    assert.match(text.stdout, /return-signing secret: rsk_[0-9a-f]{48}/);

    const channel = json<Record<string, unknown>>(asJson, 'channel create --json');
    assert.equal(channel.reference, 'acme-web');
    assert.equal(channel.merchant_id, merchantId);
    assert.equal(channel.mode, 'live');
    assert.deepEqual(channel.currencies, ['USD', 'EUR', 'GBP']);
    assert.deepEqual(channel.return_urls, ['https://acme.example/return', 'https://acme.example/return2']);
    assert.deepEqual(channel.notify_emails, ['ops@acme.example', 'finance@acme.example']);
    assert.match(String(channel.return_secret), /^rsk_[0-9a-f]{48}$/);

    ok(keyText, 'key create');
    const shown = /^created (key_[0-9a-f]{32}) \(sandbox: acts on sandbox channels and their payments only\)\nsecret key: (sk_test_[0-9a-f]{32})\nThis is the only time/.exec(keyText.stdout);
    assert.ok(shown, keyText.stdout);
    keyB = shown[1]!;
    keyA = json(keyJson, 'key create --json');
    assert.match(keyA.secret_key, /^sk_test_[0-9a-f]{32}$/);
    assert.equal(keyA.last4, keyA.secret_key.slice(-4));
  });

  it('channel update; key list; errors exit non-zero with a message', async () => {
    const [text, asJson, list, taken, missing, lower, withdrawn] = await Promise.all([
      cli('channel', 'update', 'acme-text', '--name', 'Acme Text Renamed', '--return-url', 'https://acme.example/new-return', '--notify-email', 'new@acme.example'),
      cli('channel', 'update', 'acme-web', '--currency', 'JPY', '--customer-receipts', '--json'),
      cli('key', 'list', '--merchant', merchantId),
      cli('channel', 'create', '--merchant', merchantId, '--reference', 'acme-web', '--name', 'Again', '--currency', 'USD', '--return-url', 'https://acme.example/r'),
      cli('channel', 'create', '--merchant', merchantId, '--name', 'No reference'),
      cli('channel', 'update', 'acme-text', '--currency', 'usd'),
      cli('channel', 'update', 'acme-text', '--currency', 'BGN'),
    ]);
    ok(text, 'channel update');
    assert.match(text.stdout, /updated channel "acme-text"/);
    assert.match(text.stdout, /Acme Text Renamed/);
    assert.match(text.stdout, /https:\/\/acme\.example\/new-return/);
    assert.match(text.stdout, /new@acme\.example/);

    const updated = json<Record<string, unknown>>(asJson, 'channel update --json');
    assert.deepEqual(updated.currencies, ['JPY']);
    assert.equal(updated.customer_receipts, true);
    assert.deepEqual(updated.return_urls, ['https://acme.example/return', 'https://acme.example/return2']);

    ok(list, 'key list');
    assert.match(list.stdout, /^id\s+merchant_id\s+mode\s+hint\s+label\s+status/);
    assert.match(list.stdout, new RegExp(`${keyA.id}\\s+${merchantId}\\s+sandbox\\s+sk_test_…${keyA.last4}\\s+primary\\s+active`));
    assert.doesNotMatch(list.stdout, /sk_(?:test_|live_)?[0-9a-f]{32}/);

    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /already assigned/);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--reference is required/);
    assert.match(missing.stderr, /Usage:/);
    // A code in lower case is one, but not as stored and compared: say so, and which one is meant.
    assert.equal(lower.code, 1);
    assert.match(lower.stderr, /"usd" .*upper case.*Did you mean USD\?/);
    assert.equal(withdrawn.code, 1);
    assert.match(withdrawn.stderr, /BGN was withdrawn from ISO 4217; use EUR/);
  });

  it('names a bad setting without the usage text, and never echoes an SMTP password', async () => {
    const [port, smtp] = await Promise.all([runCli(['merchant', 'list'], { DATA_DIR: dataDir, PORT: 'abc' }), runCli(['merchant', 'list'], { DATA_DIR: dataDir, SMTP_URL: 'mail.example:25 pass=hunter2' })]);
    for (const r of [port, smtp]) {
      assert.equal(r.code, 2, r.stderr);
      assert.doesNotMatch(r.stderr, /Usage:/);
      assert.match(r.stderr, /Configuration" in README\.md/);
    }
    assert.match(port.stderr, /^error: PORT /);
    assert.match(smtp.stderr, /^error: SMTP_URL /);
    assert.doesNotMatch(smtp.stderr, /hunter2/);
  });

  it('says which database it could not open, without a stack trace or a password', async () => {
    const down = 'postgres://gateway:hunter2@127.0.0.1:1/payments';
    const [serve, migrate] = await Promise.all([runCli(['serve'], { DATA_DIR: dataDir, DATABASE_URL: down, PORT: '0', PUBLIC_URL: 'http://127.0.0.1:8080' }), runCli(['migrate'], { DATA_DIR: dataDir, DATABASE_URL: down })]);
    for (const r of [serve, migrate]) {
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, /^error: could not open or migrate the database postgres:\/\/gateway@127\.0\.0\.1:1\/payments \(DATABASE_URL\): .*ECONNREFUSED/);
      assert.doesNotMatch(r.stderr, /hunter2|\n\s+at /);
    }
  });

  it('names HOST and PORT, without a stack trace, when the gateway cannot listen there', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as AddressInfo).port;
    try {
      const [inUse, unknownHost] = await Promise.all([
        runCli(['serve'], { DATA_DIR: dataDir, PORT: String(port) }),
        runCli(['serve'], { DATA_DIR: mkdtempSync(join(tmpdir(), 'tzero-cli-host-')), HOST: 'gateway.invalid', PUBLIC_URL: 'http://127.0.0.1:8080', PORT: '0' }),
      ]);
      for (const r of [inUse, unknownHost]) {
        assert.equal(r.code, 2, r.stderr);
        assert.doesNotMatch(r.stderr, /\n\s+at /);
      }
      assert.match(inUse.stderr, new RegExp(`^error: PORT ${port} on HOST 127\\.0\\.0\\.1 cannot be listened on: .*EADDRINUSE`, 'm'));
      assert.match(unknownHost.stderr, /^error: PORT 0 on HOST gateway\.invalid cannot be listened on: .*ENOTFOUND/m);
    } finally {
      taken.close();
    }
  });

  it('refuses an option given the same value twice and a label out of bounds, naming the option', async () => {
    const create = (...extra: string[]) => cli('channel', 'create', '--merchant', merchantId, '--name', 'Twice', '--return-url', 'https://acme.example/r', ...extra);
    const [currency, currencyAcross, returnUrl, email, event, update, longLabel, emptyLabel] = await Promise.all([
      create('--reference', 'twice-currency', '--currency', 'USD,EUR,USD'),
      create('--reference', 'twice-currency-across', '--currency', 'USD', '--currency', 'USD'),
      create('--reference', 'twice-url', '--currency', 'USD', '--return-url', 'https://acme.example/r'),
      create('--reference', 'twice-email', '--currency', 'USD', '--notify-email', 'ops@acme.example,OPS@acme.example'),
      create('--reference', 'twice-event', '--currency', 'USD', '--notify-event', 'payment.captured', '--notify-event', 'payment.captured'),
      cli('channel', 'update', 'acme-web', '--currency', 'JPY,JPY'),
      cli('key', 'create', '--merchant', merchantId, '--label', 'x'.repeat(201)),
      cli('key', 'create', '--merchant', merchantId, '--label', ''),
    ]);
    const refused = (r: CliResult, option: string, value: string) => {
      assert.equal(r.code, 2, `${option}: exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^error: ${option} `));
      assert.ok(r.stderr.includes(value), r.stderr);
    };
    refused(currency, '--currency', '"USD"');
    refused(currencyAcross, '--currency', '"USD"');
    refused(returnUrl, '--return-url', '"https://acme.example/r"');
    refused(email, '--notify-email', '"OPS@acme.example"');
    refused(event, '--notify-event', '"payment.captured"');
    refused(update, '--currency', '"JPY"');
    refused(longLabel, '--label', '200');
    refused(emptyLabel, '--label', '200');
    const [channels, keys] = await Promise.all([cli('channel', 'list', '--json'), cli('key', 'list', '--merchant', merchantId, '--json')]);
    assert.deepEqual(json<Array<{ reference: string }>>(channels, 'channel list').filter((c) => c.reference.startsWith('twice')), []);
    assert.deepEqual(json<Array<{ currencies: string[]; reference: string }>>(channels, 'channel list').find((c) => c.reference === 'acme-web')?.currencies, ['JPY']);
    assert.equal(json<unknown[]>(keys, 'key list').length, 2, 'no key was created');
  });

  it('refuses a card number in a name, label, return URL or address, which would be kept and shown in clear', async () => {
    const create = (...extra: string[]) => cli('channel', 'create', '--merchant', merchantId, '--currency', 'USD', ...extra);
    const attempts = await Promise.all([
      cli('merchant', 'create', '--name', 'Shop 4242 4242 4242 4242'),
      cli('key', 'create', '--merchant', merchantId, '--label', 'for 4242424242424242'),
      create('--reference', 'pan-name', '--name', 'Card 5555-5555-5555-4444', '--return-url', 'https://acme.example/r'),
      create('--reference', 'pan-url', '--name', 'Pan URL', '--return-url', 'https://acme.example/r?c=%34%32%34%32%34%32%34%32%34%32%34%32%34%32%34%32'),
      create('--reference', 'pan-email', '--name', 'Pan e-mail', '--return-url', 'https://acme.example/r', '--notify-email', '4242424242424242@acme.example'),
      cli('channel', 'update', 'acme-text', '--name', 'Amex 378282246310005'),
    ]);
    for (const r of attempts) {
      assert.equal(r.code, 1, `exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /looks like a card number.*\[card_number_in_text\]/);
      assert.doesNotMatch(r.stdout + r.stderr, /4242.?4242|5555.?5555|3782822463|%34%32%34%32/);
    }
    const [merchants, channels, keys] = await Promise.all([cli('merchant', 'list', '--json'), cli('channel', 'list', '--json'), cli('key', 'list', '--merchant', merchantId, '--json')]);
    for (const [r, what] of [[merchants, 'merchant list'], [channels, 'channel list'], [keys, 'key list']] as const) {
      ok(r, what);
      assert.doesNotMatch(r.stdout, /4242.?4242|5555.?5555|3782822463|%34%32%34%32/, what);
    }
  });

  it('prints names and labels without the control and bidi characters a terminal would act on', async () => {
    // Clears the line and retitles the window, a row of its own, a carriage return over the
    // name, and a right-to-left override that would reverse the columns after it.
    const name = 'Evil Ltd\u001b[2K\u001b]0;pwned\u0007\nmer_00000000000000000000000000000000  Trusted Ltd\rHidden \u202e99 \u009b31m';
    const created = await cli('merchant', 'create', '--name', name, '--json');
    const evil = json<{ id: string; name: string }>(created, 'merchant create --json');
    assert.equal(evil.name, name, 'the name is kept as given: only its printing changes');
    const [text, keyed] = await Promise.all([cli('merchant', 'create', '--name', name), cli('key', 'create', '--merchant', evil.id, '--label', name)]);
    ok(keyed, 'key create');
    const [list, keys] = await Promise.all([cli('merchant', 'list'), cli('key', 'list', '--merchant', evil.id)]);
    const escaped = 'Evil Ltd\\u001b[2K\\u001b]0;pwned\\u0007\\u000amer_00000000000000000000000000000000  Trusted Ltd\\u000dHidden \\u202e99 \\u009b31m';
    for (const [r, what] of [[created, 'merchant create --json'], [text, 'merchant create'], [list, 'merchant list'], [keys, 'key list']] as const) {
      ok(r, what);
      assert.doesNotMatch(r.stdout, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/, what);
      if (r !== created) assert.ok(r.stdout.includes(escaped), `${what}: ${r.stdout}`);
    }
    // One line per merchant: the name did not add one.
    assert.equal(list.stdout.split('\n').filter((l) => l.includes('Trusted Ltd')).length, 2, list.stdout);
    assert.ok(list.stdout.split('\n').every((l) => l === '' || /^(id |mer_[0-9a-f]{32} )/.test(l)), list.stdout);
    // JSON escapes are JSON: the same text reads back.
    assert.equal(JSON.parse(created.stdout).name, name);
  });

  it('key revoke, then key list --json and channel list --json show the result', async () => {
    const [text, asJson] = await Promise.all([cli('key', 'revoke', keyA.id), cli('key', 'revoke', keyB, '--json')]);
    ok(text, 'key revoke');
    assert.match(text.stdout, new RegExp(`revoked ${keyA.id}; requests with it now get 401`));
    assert.deepEqual(json(asJson, 'key revoke --json'), { id: keyB, status: 'revoked' });

    const [again, againJson, keys, channels] = await Promise.all([
      cli('key', 'revoke', keyA.id),
      cli('key', 'revoke', keyB, '--json'),
      cli('key', 'list', '--merchant', merchantId, '--json'),
      cli('channel', 'list', '--merchant', merchantId, '--json'),
    ]);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /^error: .*already revoked.* \[\w+\]\n$/, 'the refusal with its code');
    assert.equal(againJson.code, 1);
    const refusal = (JSON.parse(againJson.stderr) as { error: { status: number; code: string; message: string } }).error;
    assert.match(refusal.message, /already revoked/);
    assert.equal(refusal.code, /\[(\w+)\]\n$/.exec(again.stderr)![1]);
    assert.equal(typeof refusal.status, 'number');
    const listed = json<Array<{ id: string; status: string; revoked_at: string | null }>>(keys, 'key list --json');
    assert.deepEqual(listed.map((k) => k.status), ['revoked', 'revoked']);
    assert.ok(listed.every((k) => k.revoked_at));
    assert.doesNotMatch(keys.stdout, /sk_(?:test_|live_)?[0-9a-f]{32}/);
    const renamed = json<Array<Record<string, unknown>>>(channels, 'channel list --json').find((c) => c.reference === 'acme-text')!;
    assert.equal(renamed.name, 'Acme Text Renamed');
    assert.deepEqual(renamed.return_urls, ['https://acme.example/new-return']);
    assert.deepEqual(renamed.notify_emails, ['new@acme.example']);
  });

  it('channel update --mode is refused, naming the option, once the channel has taken a payment', async () => {
    const gateway = await createGateway(loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent', WORKERS: 'false' }), pino({ level: 'silent' }));
    try {
      const key = await gateway.services.merchants.createSecretKey(merchantId);
      await authoriseExampleOn(gateway.app, key.secret_key, 'acme-text');
    } finally {
      await gateway.close();
    }
    const [switched, same, unpaid] = await Promise.all([
      cli('channel', 'update', 'acme-text', '--mode', 'live'),
      cli('channel', 'update', 'acme-text', '--mode', 'sandbox', '--json'),
      cli('channel', 'update', 'acme-web', '--mode', 'sandbox', '--json'),
    ]);
    assert.equal(switched.code, 1, `${switched.stdout}\n${switched.stderr}`);
    assert.match(switched.stderr, /^error: .*mode.*new channel/);
    assert.equal(json<{ mode: string }>(same, 'channel update --mode sandbox (unchanged)').mode, 'sandbox');
    assert.equal(json<{ mode: string }>(unpaid, 'channel update --mode sandbox (no payments)').mode, 'sandbox');
    const channels = json<Array<{ reference: string; mode: string }>>(await cli('channel', 'list', '--json'), 'channel list');
    assert.equal(channels.find((c) => c.reference === 'acme-text')?.mode, 'sandbox');
  });

  it('audits every change to merchants, channels and keys, and every secret shown, as the operating-system user', async () => {
    ok(await cli('channel', 'secret', 'acme-web'), 'channel secret');
    const rows = json<Array<{ actor: string; source: string; action: string; merchant_id: string; target: string; outcome: string; detail: unknown }>>(
      await cli('audit', 'list', '--merchant', merchantId, '--json'),
      'audit list --json',
    );
    // The other rows are the gateway's own: a test above made a key through it.
    const byCli = rows.filter((r) => r.source === 'cli');
    assert.deepEqual(rows.filter((r) => r.source !== 'cli').map((r) => `${r.actor} ${r.action}`), ['system:gateway secret_key.create']);
    const user = userInfo().username;
    assert.ok(byCli.every((r) => r.actor === `operator:cli:${user}` && r.merchant_id === merchantId && r.outcome === 'success'), JSON.stringify(byCli));
    const count = (action: string) => byCli.filter((r) => r.action === action).length;
    assert.deepEqual(
      ['merchant.create', 'channel.create', 'channel.update', 'secret_key.create', 'secret_key.revoke', 'channel.return_secret.reveal'].map(count),
      [1, 2, 4, 2, 2, 1],
    );
    const renamed = byCli.find((r) => r.action === 'channel.update' && (r.detail as { changed: string[] }).changed.includes('name'))!;
    assert.deepEqual(renamed.detail, { reference: 'acme-text', changed: ['name', 'notify_emails', 'return_urls'] });
    const revoked = byCli.filter((r) => r.action === 'secret_key.revoke').map((r) => r.target).sort();
    assert.deepEqual(revoked, [keyA.id, keyB].sort());
    assert.ok(!JSON.stringify(rows).includes('rsk_') && !/sk_(?:test_|live_)?[0-9a-f]{32}/.test(JSON.stringify(rows)), 'no secret in the audit log');
    const text = await cli('audit', 'list');
    ok(text, 'audit list');
    assert.match(text.stdout, /^at\s+actor\s+source\s+action\s+merchant_id\s+target\s+outcome\s+code/);
  });

  it("sets, shows and removes a channel's support address, refusing one that is not one address or holds a card number", async () => {
    const set = await cli('channel', 'update', 'acme-text', '--support-email', 'help@acme.example');
    ok(set, 'channel update --support-email');
    assert.match(set.stdout, /support_email[\s\S]*help@acme\.example/);
    const [notOne, pan] = await Promise.all([
      cli('channel', 'update', 'acme-text', '--support-email', 'Help <help@acme.example>', '--json'),
      cli('channel', 'update', 'acme-text', '--support-email', '4242424242424242@acme.example'),
    ]);
    assert.equal(notOne.code, 1, notOne.stderr);
    const refusal = JSON.parse(notOne.stderr) as { error: { code: string; param?: string; message: string } };
    assert.equal(refusal.error.code, 'invalid_channel');
    assert.match(refusal.error.message, /is not one e-mail address/);
    assert.equal(pan.code, 1, pan.stderr);
    assert.match(pan.stderr, /looks like a card number.*\[card_number_in_text\]/);
    const listed = json<Array<{ reference: string; support_email: string | null }>>(await cli('channel', 'list', '--json'), 'channel list --json');
    assert.equal(listed.find((c) => c.reference === 'acme-text')?.support_email, 'help@acme.example', 'the refusals changed nothing');
    const removed = json<{ support_email: string | null }>(await cli('channel', 'update', 'acme-text', '--support-email', '', '--json'), 'channel update --support-email ""');
    assert.equal(removed.support_email, null);
  });

  it('the gateway honours what the CLI did', async () => {
    const gateway = await createGateway(loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent', WORKERS: 'false' }), pino({ level: 'silent' }));
    try {
      assert.equal(await gateway.services.merchants.authenticate(keyA.secret_key), null);
      const fresh = await gateway.services.merchants.createSecretKey(merchantId);
      assert.equal((await gateway.services.merchants.authenticate(fresh.secret_key))?.merchantId, merchantId);
      assert.equal((await gateway.services.merchants.requireChannelByReference('acme-web')).merchant_id, merchantId);
    } finally {
      await gateway.close();
    }
  });
});

describe('a command line that is not a command', () => {
  let dataDir: string;
  before(() => {
    dataDir = join(mkdtempSync(join(tmpdir(), 'tzero-cli-usage-')), 'data');
  });
  after(() => {
    if (dataDir) rmSync(join(dataDir, '..'), { recursive: true, force: true });
  });

  it('is refused with exit code 2 before any database is opened, created or migrated: a typo, a stray argument, an option the command ignores', async () => {
    const cli = (...args: string[]) => runCli(args, { DATA_DIR: dataDir });
    const cases: Array<[string[], RegExp]> = [
      [['merchnt', 'list'], /^error: unknown command "merchnt list"/],
      [['merchant'], /^error: unknown command "merchant"/],
      // The second key would silently stay active while the operator believes it revoked.
      [['key', 'revoke', 'key_a', 'key_b'], /^error: key revoke takes one argument \(the key id \(key_…\)\), got also "key_b"/],
      // An unquoted name: "Acme" would be saved and "Shop" dropped.
      [['channel', 'update', 'acme', '--name', 'Acme', 'Shop'], /^error: channel update takes one argument \(the channel reference\), got also "Shop"/],
      [['merchant', 'list', 'extra'], /^error: merchant list takes no argument, got "extra"/],
      [['channel', 'list', '--name', 'Acme'], /^error: channel list does not take --name/],
      [['merchant', 'create', '--name', 'Acme', '--label', 'x'], /^error: merchant create does not take --label/],
      [['channel', 'secret'], /^error: channel secret needs the channel reference/],
      [['payment', 'show', '--json'], /^error: payment show needs the payment id \(pay_…\)/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(...args)));
    for (const [i, r] of results.entries()) {
      const [args, message] = cases[i]!;
      assert.equal(r.code, 2, `${args.join(' ')}: exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, message, args.join(' '));
      assert.match(r.stderr, /Usage:/);
    }
    assert.ok(!existsSync(dataDir), 'no data directory, key file or database was made for a command that does not exist');
  });
});

describe('channel rotate-secret (a leaked return-signing secret)', () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'tzero-return-secret-'));
  });
  after(() => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  /** The README's check of a return redirect. */
  const signedWith = (url: URL, secret: string) => {
    const q = Object.fromEntries(url.searchParams);
    return createHmac('sha256', secret).update(`${q.timestamp}.${q.payment_id}.${q.status}.${q.reference ?? ''}`).digest('hex') === q.signature;
  };

  it('signs returns with the new secret at once, in a gateway already running, and keeps the sandbox credentials file current', async () => {
    const gateway = await createGateway(loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent', WORKERS: 'false' }), pino({ level: 'silent' }));
    try {
      const { credentials, file } = await ensureSandboxCredentials(gateway.services);
      const returnAfterPaying = async () => {
        const created = (await authoriseExampleOn(gateway.app, credentials!.secret_key, 'sandbox')).json<{ redirect_url: string }>();
        const view = await gateway.services.checkout.complete(new URL(created.redirect_url).pathname.split('/').pop()!);
        return new URL(await gateway.services.checkout.returnRedirect(view));
      };
      assert.ok(signedWith(await returnAfterPaying(), credentials!.return_secret), 'signed with the secret the sandbox was created with');

      const rotated = await runCli(['channel', 'rotate-secret', 'sandbox'], { DATA_DIR: dataDir });
      ok(rotated, 'channel rotate-secret');
      const secret = rotated.stdout.split('\n')[0]!;
      assert.match(secret, /^rsk_[0-9a-f]{48}$/);
      assert.notEqual(secret, credentials!.return_secret);
      assert.match(rotated.stdout, /in use now/);
      assert.equal(JSON.parse(readFileSync(file, 'utf8')).return_secret, secret);
      assert.equal((await runCli(['channel', 'secret', 'sandbox'], { DATA_DIR: dataDir })).stdout.trim(), secret);

      const after = await returnAfterPaying();
      assert.ok(signedWith(after, secret), 'the running gateway signs with the new secret');
      assert.ok(!signedWith(after, credentials!.return_secret));
      const missing = await runCli(['channel', 'rotate-secret', 'nope'], { DATA_DIR: dataDir });
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /no channel with reference "nope"/);
    } finally {
      await gateway.close();
    }
  });
});

describe('vault rotate (KEK rotation through the CLI)', () => {
  const b64 = () => randomBytes(32).toString('base64');
  const k1 = `k1:${b64()}`;
  const k2 = `k2:${b64()}`;
  const hmac = b64();
  let dataDir: string;

  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'tzero-rotate-'));
  });
  after(() => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  const open = (env: Record<string, string>) =>
    createGateway(loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent', WORKERS: 'false', HMAC_KEY: hmac, ...env }), pino({ level: 'silent' }));

  it('re-wraps cards, channel and webhook secrets so the old KEK can be retired; page URLs never depended on it', async () => {
    const before = await open({ VAULT_KEK: k1 });
    let paymentId: string;
    let redirectUrl: string;
    let webhookSecret: string;
    let returnSecret: string;
    let fingerprint: string;
    try {
      const { credentials } = await ensureSandboxCredentials(before.services);
      returnSecret = credentials!.return_secret;
      const res = await before.app.inject({
        method: 'POST',
        url: '/payment/authorise',
        headers: { 'x-secret-key': credentials!.secret_key, 'content-type': 'application/json' },
        payload: JSON.stringify(await exampleBody()),
      });
      assert.equal(res.statusCode, 201, res.body);
      paymentId = res.json().id;
      redirectUrl = res.json().redirect_url;
      fingerprint = res.json().payment_method.card.fingerprint;
      webhookSecret = JSON.parse((await before.services.webhookEndpoints.create(GATEWAY_ACTOR, credentials!.merchant_id, null, { url: 'http://127.0.0.1:9/hook', events: ['*'] })).body).secret;
    } finally {
      await before.close();
    }

    const rotated = await runCli(['vault', 'rotate', '--json'], { DATA_DIR: dataDir, VAULT_KEK: k2, VAULT_OLD_KEKS: k1, HMAC_KEY: hmac });
    const summary = json<{ rewrapped: number; kek_id: string }>(rotated, 'vault rotate --json');
    assert.equal(summary.kek_id, 'k2');
    // The card, the channel's return secret and the webhook secret; the page token has nothing sealed.
    assert.ok(summary.rewrapped >= 3, `only ${summary.rewrapped} re-wrapped`);

    const after = await open({ VAULT_KEK: k2 });
    try {
      const db = after.services.ctx.database.db;
      const cards = await db.selectFrom('card_secrets').select('kek_id').execute();
      assert.deepEqual(cards.map((c) => c.kek_id), ['k2'], "the open payment's card, re-wrapped");
      const key = JSON.parse(readFileSync(join(dataDir, 'sandbox-credentials.json'), 'utf8')).secret_key;
      const got = await after.app.inject({ method: 'GET', url: `/payment/${paymentId}`, headers: { 'x-secret-key': key } });
      assert.equal(got.statusCode, 200, got.body);
      assert.equal(got.json().payment_method.card.fingerprint, fingerprint);
      assert.equal(got.json().redirect_url, redirectUrl);
      const page = await after.app.inject({ method: 'GET', url: new URL(redirectUrl).pathname });
      assert.equal(page.statusCode, 200);
      assert.equal(await after.services.merchants.revealReturnSecret('sandbox'), returnSecret);
      const endpoint = await db.selectFrom('webhook_endpoints').selectAll().executeTakeFirstOrThrow();
      assert.deepEqual(after.services.webhookEndpoints.signingSecrets(endpoint, Date.now()), [webhookSecret]);
      const again = json<{ rewrapped: number }>(await runCli(['vault', 'rotate', '--json'], { DATA_DIR: dataDir, VAULT_KEK: k2, HMAC_KEY: hmac }), 'second vault rotate');
      assert.equal(again.rewrapped, 0);
    } finally {
      await after.close();
    }
  });

  it('refuses to run a command without a key id the database holds, naming it', async () => {
    const k3 = `k3:${b64()}`;
    const [rotate, list] = await Promise.all([
      runCli(['vault', 'rotate'], { DATA_DIR: dataDir, VAULT_KEK: k3, HMAC_KEY: hmac }),
      runCli(['channel', 'list'], { DATA_DIR: dataDir, VAULT_KEK: k3, VAULT_OLD_KEKS: `k2:${b64()}`, HMAC_KEY: hmac }),
    ]);
    assert.equal(rotate.code, 2, `${rotate.stdout}\n${rotate.stderr}`);
    assert.match(rotate.stderr, /^error: .*"k2".*VAULT_OLD_KEKS/);
    assert.doesNotMatch(rotate.stderr, /"k1"/, 'vault rotate moved everything off k1 and retired it');
    assert.equal(list.code, 2, `${list.stdout}\n${list.stderr}`);
    assert.match(list.stderr, /^error: .*"k2".*cannot open/);
  });

  it('registers a new key only from a command that seals with it', async () => {
    const k4 = `k4:${b64()}`;
    const tried = await runCli(['key', 'list'], { DATA_DIR: dataDir, VAULT_KEK: k4, VAULT_OLD_KEKS: k2, HMAC_KEY: hmac });
    assert.equal(tried.code, 0, tried.stderr);
    // Trying the new key on a read-only command left nothing that the running configuration lacks.
    const back = await runCli(['channel', 'list'], { DATA_DIR: dataDir, VAULT_KEK: k2, HMAC_KEY: hmac });
    assert.equal(back.code, 0, back.stderr);
  });
});

describe('a damaged sandbox credentials file', () => {
  let dataDir: string;
  before(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'tzero-damaged-credentials-'));
    const gateway = await createGateway(loadConfig({ DATA_DIR: dataDir, LOG_LEVEL: 'silent', WORKERS: 'false' }), pino({ level: 'silent' }));
    try {
      await ensureSandboxCredentials(gateway.services);
    } finally {
      await gateway.close();
    }
  });
  after(() => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('stops the boot with one line naming the file and what to do, exit code 2; a secret rotation still shows its secret', async () => {
    const file = sandboxCredentialsFile({ dataDir, databaseUrl: undefined });
    for (const damaged of ['{"merchant_id": "mer_', '["mer_x"]', '{"merchant_id": 5}']) {
      writeFileSync(file, damaged);
      const r = await runCli(['serve'], { DATA_DIR: dataDir, PORT: String(await freePort()) });
      assert.equal(r.code, 2, `${damaged}: exited ${r.code}\n${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`^error: ${file.replace(/[.]/g, '\\.')} is damaged`), damaged);
      assert.doesNotMatch(r.stderr, /\n\s+at /, damaged);
    }
    const rotated = await runCli(['channel', 'rotate-secret', 'sandbox'], { DATA_DIR: dataDir });
    ok(rotated, 'channel rotate-secret');
    assert.match(rotated.stdout, /^rsk_[0-9a-f]{48}\n/);
  });
});

describe('commands started at once on a fresh SQLite data directory', () => {
  let dataDir: string;
  before(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'tzero-first-use-'));
  });
  after(() => {
    if (dataDir) rmSync(dataDir, { recursive: true, force: true });
  });

  it('migrate the database once: the later ones wait for the first and find it up to date', async () => {
    const cli = (...args: string[]) => runCli(args, { DATA_DIR: dataDir });
    const [first, list, second] = await Promise.all([cli('migrate'), cli('merchant', 'list'), cli('migrate')]);
    ok(first, 'migrate');
    ok(list, 'merchant list');
    ok(second, 'the second migrate');
    const applied = [first, second].map((r) => /^applied (\d+) migrations/.exec(r.stdout)?.[1]);
    assert.ok(applied.filter(Boolean).length <= 1, `the migrations were applied once:\n${first.stdout}\n${second.stdout}`);
    assert.match((await cli('migrate')).stdout, /is up to date; no migration to apply/);
  });
});

import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DIALECTS, freePort, readExample } from '../support/gateway.js';
import { freshPostgresDatabase } from '../support/postgres.js';
import { startServer, type ServerProcess } from '../support/process.js';
import { sandboxCredentialsFile } from '../../src/server.js';

const KEY_PATTERN = /sk_(?:test_|live_)?[0-9a-f]{32}/;

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

for (const dialect of DIALECTS) {
  describe(`the gateway as a process: npm start's command (${dialect})`, () => {
    let dataDir: string;
    let env: Record<string, string> & { PORT: string };
    let dropDatabase: (() => Promise<void>) | undefined;
    let server: ServerProcess | undefined;
    let credentials: { merchant_id: string; channel: string; secret_key: string; return_secret: string };
    let paymentId: string;

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'tzero-process-'));
      const pgdb = dialect === 'postgres' ? await freshPostgresDatabase() : null;
      dropDatabase = pgdb?.drop;
      env = { DATA_DIR: dataDir, PORT: String(await freePort()), ...(pgdb ? { DATABASE_URL: pgdb.url } : {}) };
    });
    after(async () => {
      await server?.stop().catch(() => {});
      await dropDatabase?.();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    const api = (path: string, init: RequestInit & { key?: string } = {}) =>
      fetch(`${server!.baseUrl}${path}`, { ...init, headers: { ...(init.key ? { 'x-secret-key': init.key } : {}), ...(init.body ? { 'content-type': 'application/json' } : {}) } });

    it('boots on an empty data directory, creates sandbox credentials and answers health checks', async () => {
      server = await startServer(env);
      const file = sandboxCredentialsFile({ dataDir, databaseUrl: env.DATABASE_URL });
      assert.equal(statSync(file).mode & 0o777, 0o600);
      credentials = JSON.parse(readFileSync(file, 'utf8'));
      assert.match(credentials.merchant_id, /^mer_[0-9a-f]{32}$/);
      assert.equal(credentials.channel, 'sandbox');
      assert.match(credentials.secret_key, /^sk_test_[0-9a-f]{32}$/);
      assert.ok(server.output().includes(credentials.secret_key), 'the first boot prints the key');
      assert.match(server.output(), /created/);

      assert.equal((await api('/healthz')).status, 200);
      const ready = await (await api('/readyz')).json();
      assert.deepEqual(ready, { status: 'ready' });
      const openapi = await api('/openapi.json');
      assert.equal(openapi.status, 200);
      assert.equal((await openapi.json()).openapi, '3.1.0');
    });

    it('answers a wrong key with 401 problem+json and the sandbox key with 201', async () => {
      const body = JSON.stringify(await readExample());
      const wrong = await api('/payment/authorise', { method: 'POST', body, key: 'sk_' + 'f'.repeat(32) });
      assert.equal(wrong.status, 401);
      assert.match(wrong.headers.get('content-type')!, /^application\/problem\+json/);
      assert.equal((await wrong.json()).code, 'unauthorized');

      const ok = await api('/payment/authorise', { method: 'POST', body, key: credentials.secret_key });
      assert.equal(ok.status, 201);
      const payment = await ok.json();
      assert.match(payment.redirect_url, new RegExp(`^${server!.baseUrl}/pay/${payment.id}-[A-Za-z0-9_-]{43}$`));
      paymentId = payment.id;
    });

    it('finishes the payment on its page and returns with a valid signature; then it is captured', async () => {
      const got = await (await api(`/payment/${paymentId}`, { key: credentials.secret_key })).json();
      const page = await fetch(got.redirect_url);
      assert.equal(page.status, 200);
      const cookie = page.headers.get('set-cookie')!.split(';')[0]!;
      const csrf = /name="csrf" value="([^"]+)"/.exec(await page.text())![1]!;
      const confirm = await fetch(`${got.redirect_url}/confirm`, {
        method: 'POST',
        headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ csrf }).toString(),
        redirect: 'manual',
      });
      assert.equal(confirm.status, 303);
      // The form lands on the page, which sends the browser on to the return URL.
      const landing = await (await fetch(new URL(confirm.headers.get('location')!, got.redirect_url))).text();
      const back = new URL(/id="return" href="([^"]+)"/.exec(landing)![1]!.replaceAll('&amp;', '&'));
      assert.equal(back.origin + back.pathname, `${server!.baseUrl}/sandbox/return`);
      assert.equal(back.searchParams.get('status'), 'captured');
      assert.match(await (await fetch(back)).text(), /data-verdict="valid"/);
      assert.equal((await (await api(`/payment/${paymentId}`, { key: credentials.secret_key })).json()).status, 'captured');
    });

    it('keeps merchants, keys and payments across a restart, reusing the credentials', async () => {
      assert.equal(await server!.stop(), 0);
      server = await startServer(env);
      assert.match(server.output(), /reusing/);
      assert.ok(!server.output().includes(credentials.secret_key) && !server.output().includes(credentials.return_secret), 'a later boot prints no secret');
      assert.deepEqual(JSON.parse(readFileSync(sandboxCredentialsFile({ dataDir, databaseUrl: env.DATABASE_URL }), 'utf8')).secret_key, credentials.secret_key);
      const got = await api(`/payment/${paymentId}`, { key: credentials.secret_key });
      assert.equal(got.status, 200);
      assert.equal((await got.json()).id, paymentId);
      const again = await api('/payment/authorise', { method: 'POST', body: JSON.stringify(await readExample()), key: credentials.secret_key });
      assert.equal(again.status, 201);
      assert.equal((await api('/payment/pay_x', { key: 'sk_' + '0'.repeat(32) })).status, 401);
    });

    it('leaves no secret key (but in its sandbox credentials file) and no card number in the data directory; files are owner-only', async () => {
      assert.equal(await server!.stop(), 0);
      server = undefined;
      const files = filesUnder(dataDir);
      if (dialect === 'sqlite') assert.ok(files.some((f) => f.endsWith('gateway.sqlite')), files.join(', '));
      for (const file of files) {
        const name = file.slice(dataDir.length + 1);
        assert.equal(statSync(file).mode & 0o077, 0, `${name} is readable by others`);
        if (file === sandboxCredentialsFile({ dataDir, databaseUrl: env.DATABASE_URL })) continue;
        const text = readFileSync(file).toString('latin1');
        assert.ok(!text.includes('4242424242424242'), `${name} holds the card number`);
        assert.ok(!text.includes(credentials.secret_key), `${name} holds the secret key`);
        assert.doesNotMatch(text, KEY_PATTERN, `${name} holds something shaped like a secret key`);
      }
      assert.equal(statSync(dataDir).mode & 0o077, 0, 'the data directory is readable by others');
    });
  });
}

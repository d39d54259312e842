import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { KyselyPlugin } from 'kysely';
import { LookupCache } from '../../src/app/lookup-cache.js';
import { formatId } from '../../src/domain/ids.js';
import { storedJson, unpackJson } from '../../src/adapters/storage/packed-json.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { paidPayment, waitFor } from '../webhooks/support.js';

function emlFiles(dir: string): string[] {
  return existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith('.eml')) : [];
}

for (const dialect of DIALECTS) {
  describe(`sandbox mail without SMTP (${dialect})`, () => {
    let t: TestGateway;
    let mailDir: string;
    before(async () => {
      t = await startTestGateway({ dialect, workers: true, env: { DISPATCH_POLL_MS: '50' } });
      mailDir = join(t.dataDir, 'mail');
    });
    after(() => t.close());

    it('writes each notification as an .eml file under DATA_DIR/mail', async () => {
      const paymentId = await paidPayment(t, { reference: 'eml-1' });
      await waitFor('two .eml files (authorised and captured)', () => emlFiles(mailDir).length >= 2);
      const files = emlFiles(mailDir);
      assert.ok(files.every((f) => /^del_[0-9a-f]{32}\.eml$/.test(f)), files.join(','));
      const raw = files.map((f) => readFileSync(join(mailDir, f), 'utf8'));
      const captured = raw.find((r) => /^Subject: .*captured/m.test(r));
      assert.ok(captured, 'a captured notification');
      assert.match(captured, /^To: merchant@sandbox\.test$/m);
      assert.match(captured, /^Message-ID: <del_[0-9a-f]{32}@tzero-pay>$/m);
      assert.match(captured, /Content-Type: multipart\/alternative/);
      assert.ok(captured.includes(paymentId));
      assert.ok(!captured.includes('4242424242424242'));

      // The delivery's record points the merchant at the inbox page, not at the server's disk.
      const [event] = (await t.request({ method: 'GET', url: `/events?payment=${paymentId}&type=payment.captured` })).json().data as Array<{ id: string }>;
      type Delivery = { id: string; kind: string; attempts: Array<{ response_body: string | null }> };
      const emailDelivery = async () => ((await t.request({ method: 'GET', url: `/events/${event!.id}` })).json().deliveries as Delivery[]).find((d) => d.kind === 'email');
      await waitFor('the e-mail attempt to be recorded', async () => ((await emailDelivery())?.attempts.length ?? 0) > 0);
      const email = (await emailDelivery())!;
      assert.equal(email.attempts[0]!.response_body, `saved as ${email.id}.eml in the gateway's mail folder (a sandbox gateway shows it at /sandbox/inbox/${email.id}.eml)`);
      assert.ok(files.includes(`${email.id}.eml`));
    });

    it('lists the messages in the sandbox inbox page and shows one', async () => {
      await waitFor('mail to exist', () => emlFiles(mailDir).length >= 2);
      const page = await t.request({ method: 'GET', url: '/sandbox/inbox' });
      assert.equal(page.statusCode, 200);
      assert.match(page.headers['content-type'] as string, /text\/html/);
      assert.match(page.headers['content-security-policy'] as string, /default-src 'none'/);
      assert.ok(page.body.includes('[Sandbox Shop] Sandbox payment was captured: USD 1.00 (eml-1)'), page.body);
      assert.ok(page.body.includes('merchant@sandbox.test'));
      const link = /href="\/sandbox\/inbox\/(del_[0-9a-f]{32}\.eml)">\[Sandbox Shop\] Sandbox payment was captured/.exec(page.body);
      assert.ok(link, 'a link to the captured message');

      const one = await t.request({ method: 'GET', url: `/sandbox/inbox/${link[1]}` });
      assert.equal(one.statusCode, 200);
      assert.ok(one.body.includes('Visa •••• 4242'));
      assert.ok(one.body.includes('USD 1.00'));
      const raw = await t.request({ method: 'GET', url: `/sandbox/inbox/${link[1]}/raw` });
      assert.equal(raw.statusCode, 200);
      assert.match(raw.body, /^Message-ID: /m);

      assert.equal((await t.request({ method: 'GET', url: '/sandbox/inbox/del_00000000000000000000000000000000.eml' })).statusCode, 404);
      assert.equal((await t.request({ method: 'GET', url: '/sandbox/inbox/..%2Fgateway.sqlite' })).statusCode, 400);
    });

    it("shows a merchant its own e-mails only, and a stranger none (decision 0031)", async () => {
      // A hosted sandbox: another merchant on the same gateway, whose channel notifies its own address.
      const merchants = t.gateway.services.merchants;
      const other = await merchants.createMerchant('Other Shop');
      await merchants.createChannel(other.id, { reference: 'other-shop', name: 'Other Shop', mode: 'sandbox', currencies: ['USD'], returnUrls: ['https://other.example/return'], notifyEmails: ['ops@other.example'] });
      const otherKey = (await merchants.createSecretKey(other.id, 'inbox')).secret_key;
      const pay = await t.app.inject({ method: 'POST', url: '/payment/authorise', headers: { 'x-secret-key': otherKey, 'content-type': 'application/json' }, payload: JSON.stringify(await exampleBody({ channel: 'other-shop', reference: 'other-1' })) });
      assert.equal(pay.statusCode, 201, pay.body);
      await t.gateway.services.checkout.complete(new URL(pay.json().redirect_url).pathname.split('/').pop()!);
      t.gateway.services.outbox.notify();
      const othersFile = async () => {
        const deliveries = t.gateway.services.ctx.database.db.selectFrom('deliveries').select('id').where('merchant_id', '=', other.id).where('kind', '=', 'email');
        return (await deliveries.execute()).map((d) => `${d.id}.eml`).find((name) => emlFiles(mailDir).includes(name));
      };
      await waitFor("the other merchant's e-mail", async () => (await othersFile()) !== undefined);
      const theirs = (await othersFile())!;
      const ours = emlFiles(mailDir).find((name) => readFileSync(join(mailDir, name), 'utf8').includes('merchant@sandbox.test'))!;

      // Without a key: a browser is asked for one, and nobody's mail is shown.
      for (const url of ['/sandbox/inbox', `/sandbox/inbox/${ours}`, `/sandbox/inbox/${ours}/raw`]) {
        const stranger = await t.app.inject({ method: 'GET', url });
        assert.equal(stranger.statusCode, 401, url);
        assert.match(String(stranger.headers['www-authenticate']), /^Basic realm="[^"]+"/);
        assert.equal(stranger.json().code, 'unauthorized');
        assert.match(stranger.json().detail, /sandbox-credentials\.json/, 'the answer says where the key is');
        for (const secret of ['merchant@sandbox.test', 'ops@other.example', 'captured']) assert.ok(!stranger.body.includes(secret), `${url} shows ${secret}`);
        const wrong = await t.app.inject({ method: 'GET', url, headers: { authorization: `Basic ${Buffer.from(`me:sk_test_${'0'.repeat(32)}`).toString('base64')}` } });
        assert.equal(wrong.statusCode, 401, url);
      }

      // The browser's way: the secret key as the password (any user name), or as the user name.
      const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });
      const mine = await t.app.inject({ method: 'GET', url: '/sandbox/inbox', headers: basic('me', t.credentials.secret_key) });
      assert.equal(mine.statusCode, 200, mine.body);
      assert.ok(mine.body.includes('merchant@sandbox.test'));
      assert.ok(!mine.body.includes('ops@other.example'), "another merchant's mail is not listed");
      assert.ok(!mine.body.includes(theirs));
      assert.equal((await t.app.inject({ method: 'GET', url: '/sandbox/inbox', headers: basic(t.credentials.secret_key, '') })).statusCode, 200);

      const otherPage = await t.app.inject({ method: 'GET', url: '/sandbox/inbox', headers: { 'x-secret-key': otherKey } });
      assert.equal(otherPage.statusCode, 200);
      assert.ok(otherPage.body.includes('ops@other.example'));
      assert.ok(otherPage.body.includes(theirs));
      assert.ok(!otherPage.body.includes('merchant@sandbox.test'));
      // Another merchant's message is not found, as a missing one.
      for (const url of [`/sandbox/inbox/${ours}`, `/sandbox/inbox/${ours}/raw`]) {
        const res = await t.app.inject({ method: 'GET', url, headers: { 'x-secret-key': otherKey } });
        assert.equal(res.statusCode, 404, url);
        assert.ok(!res.body.includes('merchant@sandbox.test'));
      }
      assert.equal((await t.app.inject({ method: 'GET', url: `/sandbox/inbox/${theirs}`, headers: { 'x-secret-key': otherKey } })).statusCode, 200);

      // A key sees its own mode's mail (decision 0028): a live key, none of the sandbox channel's.
      const live = (await merchants.createSecretKey(t.credentials.merchant_id, 'live', 'live')).secret_key;
      const livePage = await t.app.inject({ method: 'GET', url: '/sandbox/inbox', headers: { 'x-secret-key': live } });
      assert.equal(livePage.statusCode, 200);
      assert.ok(!livePage.body.includes('merchant@sandbox.test'));
      assert.equal((await t.app.inject({ method: 'GET', url: `/sandbox/inbox/${ours}`, headers: { 'x-secret-key': live } })).statusCode, 404);
    });

    it("lists a merchant's inbox in one query however much mail other merchants have", async () => {
      await waitFor('mail to exist', () => emlFiles(mailDir).length >= 2);
      const { merchants, ctx } = t.gateway.services;
      const { db } = ctx.database;
      const busy = await merchants.createMerchant('Busy Shop');
      const { channel } = await merchants.createChannel(busy.id, { reference: 'busy-shop', name: 'Busy Shop', mode: 'sandbox', currencies: ['USD'], returnUrls: ['https://busy.example/return'], notifyEmails: ['ops@busy.example'] });
      const busyKey = (await merchants.createSecretKey(busy.id, 'inbox')).secret_key;
      // A hosted sandbox's busy neighbour: 450 e-mails newer than ours, and 50 newer still that
      // never became files (sent while SMTP_URL was set).
      const model = await db.selectFrom('events').selectAll().where('merchant_id', '=', t.credentials.merchant_id).executeTakeFirstOrThrow();
      const eventId = ctx.newId('event');
      await db.insertInto('events').values({ ...model, body: model.body as string, id: eventId, merchant_id: busy.id, channel_id: channel.id }).execute();
      const delivery = await db.selectFrom('deliveries').selectAll().where('merchant_id', '=', t.credentials.merchant_id).where('kind', '=', 'email').executeTakeFirstOrThrow();
      const eml = readFileSync(join(mailDir, `${delivery.id}.eml`), 'utf8').replaceAll('merchant@sandbox.test', 'ops@busy.example');
      const start = Date.now() + 60_000;
      const ids = Array.from({ length: 500 }, (_, i) => formatId('delivery', start + i, randomBytes(10)));
      const rows = ids.map((id, i) => ({ ...delivery, id, event_id: eventId, merchant_id: busy.id, target: `notification:ops${i}@busy.example` }));
      for (let i = 0; i < rows.length; i += 50) await db.insertInto('deliveries').values(rows.slice(i, i + 50)).execute();
      for (const id of ids.slice(0, 450)) writeFileSync(join(mailDir, `${id}.eml`), eml);

      // Count the queries that read deliveries while the page is built.
      let deliveryQueries = 0;
      const counting: KyselyPlugin = {
        transformQuery: ({ node }) => {
          if (JSON.stringify(node).includes('"deliveries"')) deliveryQueries++;
          return node;
        },
        transformResult: async ({ result }) => result,
      };
      const database = ctx.database as { db: typeof db };
      database.db = db.withPlugin(counting);
      try {
        const ours = await t.app.inject({ method: 'GET', url: '/sandbox/inbox', headers: { 'x-secret-key': t.credentials.secret_key } });
        assert.equal(ours.statusCode, 200);
        assert.ok(ours.body.includes('merchant@sandbox.test'));
        assert.ok(!ours.body.includes('ops@busy.example'));
        assert.equal(deliveryQueries, 1, "one query, not one per 200 of the other merchant's files");
      } finally {
        database.db = db;
      }

      // The busy merchant sees its newest 200 files, newest first, the fileless ones passed over.
      const theirs = await t.app.inject({ method: 'GET', url: '/sandbox/inbox', headers: { 'x-secret-key': busyKey } });
      assert.equal(theirs.statusCode, 200);
      const listed = [...theirs.body.matchAll(/href="\/sandbox\/inbox\/(del_[0-9a-f]{32}\.eml)"/g)].map((m) => m[1]);
      assert.deepEqual(listed, ids.slice(250, 450).reverse().map((id) => `${id}.eml`));
    });

    it('sends nothing to a notification address an earlier version took that is not one address, and says why', async () => {
      // Stored before e-mail addresses refused RFC 5322 specials: the mailer reads these as a
      // display name and a group, and writes to another address than the one recorded, or to none.
      const stored = ['Ops<ops@x.example>', 'ops:jane@x.example;', 'plain@x.example'];
      const { ctx } = t.gateway.services;
      const channel = ctx.database.db.updateTable('channels').where('reference', '=', 'sandbox');
      await channel.set({ notify_emails: JSON.stringify(stored) }).execute();
      LookupCache.of(ctx).drop();
      try {
        const paymentId = await paidPayment(t, { reference: 'eml-old-addresses' });
        const [event] = (await t.request({ method: 'GET', url: `/events?payment=${paymentId}&type=payment.captured` })).json().data as Array<{ id: string }>;
        type Delivery = { id: string; kind: string; recipient: string; status: string; last_error: string | null; attempt_count: number };
        const emails = async () => ((await t.request({ method: 'GET', url: `/events/${event!.id}` })).json().deliveries as Delivery[]).filter((d) => d.kind === 'email');
        await waitFor('every e-mail delivery to finish', async () => (await emails()).length === 3 && (await emails()).every((d) => d.status !== 'pending'));
        const byRecipient = new Map((await emails()).map((d) => [d.recipient, d]));
        assert.equal(byRecipient.get('plain@x.example')!.status, 'succeeded');
        for (const recipient of stored.slice(0, 2)) {
          const d = byRecipient.get(recipient)!;
          assert.equal(d.status, 'cancelled', recipient);
          assert.equal(d.attempt_count, 0);
          assert.match(d.last_error!, /not one e-mail address/);
          assert.match(d.last_error!, /channel update/);
          assert.ok(!existsSync(join(mailDir, `${d.id}.eml`)), recipient);
        }
      } finally {
        await channel.set({ notify_emails: JSON.stringify(['merchant@sandbox.test']) }).execute();
        LookupCache.of(ctx).drop();
      }
    });

    it('records a receipt for a customer address an earlier version took as cancelled, saying why, instead of dropping it unseen', async () => {
      const { ctx } = t.gateway.services;
      const channel = ctx.database.db.updateTable('channels').where('reference', '=', 'sandbox');
      await channel.set({ customer_receipts: 1 }).execute();
      LookupCache.of(ctx).drop();
      try {
        const res = await t.request({ method: 'POST', url: '/payment/authorise', payload: await exampleBody({ reference: 'eml-old-customer', capture: 'manual' }) });
        assert.equal(res.statusCode, 201, res.body);
        const { id, redirect_url } = res.json() as { id: string; redirect_url: string };
        // The customer's address as a version that took display names stored it.
        const row = await ctx.database.db.selectFrom('payments').select('details').where('id', '=', id).executeTakeFirstOrThrow();
        const details = JSON.parse(unpackJson(row.details as unknown as string | Uint8Array)) as { customer: { email: string } };
        details.customer.email = 'Jane<jane@x.example>';
        const packed = storedJson(ctx.database.dialect, 'payments', 'details', JSON.stringify(details));
        await ctx.database.db.updateTable('payments').set({ details: packed as string }).where('id', '=', id).execute();
        await t.gateway.services.checkout.complete(new URL(redirect_url).pathname.split('/').pop()!);
        t.gateway.services.outbox.notify();

        const [event] = (await t.request({ method: 'GET', url: `/events?payment=${id}&type=payment.authorised` })).json().data as Array<{ id: string }>;
        type Delivery = { recipient: string; status: string; last_error: string | null };
        const receipt = async () => ((await t.request({ method: 'GET', url: `/events/${event!.id}` })).json().deliveries as Delivery[]).find((d) => d.recipient === 'Jane<jane@x.example>');
        await waitFor('the receipt delivery to finish', async () => (await receipt())?.status === 'cancelled');
        assert.match((await receipt())!.last_error!, /not one e-mail address.*no receipt is sent/);
      } finally {
        await channel.set({ customer_receipts: 0 }).execute();
        LookupCache.of(ctx).drop();
      }
    });
  });
}

// Live mode requires PostgreSQL.
if (DIALECTS.includes('postgres')) describe('sandbox inbox outside the sandbox', () => {
  it('does not exist in live mode', async () => {
    const live = await startTestGateway({ dialect: 'postgres', env: { GATEWAY_MODE: 'live', ACQUIRER: 'sandbox', PUBLIC_URL: 'https://pay.example.com', VAULT_KEK: `live1:${randomBytes(32).toString('base64')}`, HMAC_KEY: randomBytes(32).toString('base64') } });
    try {
      assert.equal((await live.app.inject({ method: 'GET', url: '/sandbox/inbox' })).statusCode, 404);
    } finally {
      await live.close();
    }
  });
});

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { createGateway } from '../../src/server.js';
import { DIALECTS, exampleBody, startTestGateway, type TestGateway } from '../support/gateway.js';
import { assertProblem, createMerchant, postAuthorise } from '../support/http.js';

const HOUR = 3_600_000;

for (const dialect of DIALECTS) {
  describe(`Idempotency-Key on POST /payment/authorise (${dialect})`, () => {
    let t: TestGateway;
    let body: Record<string, unknown>;
    let keySeq = 0;
    const newKey = () => `order-${dialect}-${++keySeq}-${Date.now()}`;

    before(async () => {
      t = await startTestGateway({ dialect });
      // Rows as earlier versions stored them (the key as sent) belong to keys from before modes:
      // the sandbox key is made one. A key with a mode keeps its rows under its mode (decision 0028).
      await t.gateway.services.ctx.database.db.updateTable('secret_keys').set({ mode: null }).where('merchant_id', '=', t.credentials.merchant_id).execute();
      body = await exampleBody();
    });
    after(() => t?.close());

    const db = () => t.gateway.services.ctx.database.db;
    const paymentsWithReference = async (reference: string) =>
      (await db().selectFrom('payments').select('id').where('reference', '=', reference).execute()).map((r) => r.id);
    const eventCount = async (paymentId: string) =>
      Number((await db().selectFrom('events').select((eb) => eb.fn.countAll().as('n')).where('payment_id', '=', paymentId).executeTakeFirstOrThrow()).n);

    it('replays the stored response for the same key and body, creating one payment', async () => {
      const key = newKey();
      const payload = { ...body, reference: key };
      const first = await postAuthorise(t, payload, { 'idempotency-key': key });
      assert.equal(first.statusCode, 201, first.body);
      assert.equal(first.headers['idempotent-replayed'], undefined);

      const second = await postAuthorise(t, payload, { 'idempotency-key': key });
      assert.equal(second.statusCode, 201);
      assert.equal(second.headers['idempotent-replayed'], 'true');
      assert.equal(second.body, first.body);
      assert.deepEqual([first.headers.location, second.headers.location], [`/payment/${first.json().id}`, `/payment/${first.json().id}`]);
      assert.deepEqual(await paymentsWithReference(key), [first.json().id]);
      assert.equal(await eventCount(first.json().id), 1);
    });

    it('keeps the stored row in the same commit as the payment it describes', async () => {
      const key = newKey();
      const res = await postAuthorise(t, { ...body, reference: key }, { 'idempotency-key': key });
      const row = await db().selectFrom('idempotency_keys').selectAll().where('merchant_id', '=', t.credentials.merchant_id).where('key', '=', key).executeTakeFirstOrThrow();
      assert.equal(row.response_status, 201);
      // Sealed at rest: the stored response holds the page URL, a bearer token.
      assert.ok(!row.response_body.includes(res.json().redirect_url.split('/').pop()));
      assert.equal(t.gateway.services.ctx.vault.openString(`idempotency:${t.credentials.merchant_id}:${key}`, row.response_body), res.body);
      assert.ok(row.expires_at - row.created_at >= 24 * HOUR);
    });

    it('refuses the same key with another body (422) and changes nothing', async () => {
      const key = newKey();
      const first = await postAuthorise(t, { ...body, reference: key }, { 'idempotency-key': key });
      assert.equal(first.statusCode, 201);
      const other = await postAuthorise(t, { ...body, reference: key, amount: 999 }, { 'idempotency-key': key });
      assertProblem(other, 422, 'idempotency_key_reused', '/headers/idempotency-key');
      assert.deepEqual(await paymentsWithReference(key), [first.json().id]);
    });

    it('keeps nothing of the CVC, not even in the hash a retry is compared by: a retry differing in it alone is the same request', async () => {
      const key = newKey();
      const withCvc = (cvc: string) => ({ ...body, reference: key, payment_method: { ...(body.payment_method as object), cvc } });
      const first = await postAuthorise(t, withCvc('123'), { 'idempotency-key': key });
      assert.equal(first.statusCode, 201, first.body);
      const retried = await postAuthorise(t, withCvc('987'), { 'idempotency-key': key });
      assert.equal(retried.statusCode, 201, retried.body);
      assert.equal(retried.headers['idempotent-replayed'], 'true');
      assert.deepEqual(await paymentsWithReference(key), [first.json().id]);
    });

    it('compares a key stored before the CVC was left out by the whole body, until it expires', async () => {
      const key = newKey();
      const payload = { ...body, reference: key };
      assert.equal((await postAuthorise(t, payload, { 'idempotency-key': key })).statusCode, 201);
      // As such a key was stored: the keyed hash of the endpoint and the whole body, CVC included.
      const { createHmac, hkdfSync } = await import('node:crypto');
      const hashKey = Buffer.from(hkdfSync('sha256', t.config.hmacKey, Buffer.alloc(0), 'tzero idempotency request v1', 32));
      const whole = createHmac('sha256', hashKey).update('POST /payment/authorise').update('\n').update(JSON.stringify(payload)).digest('hex');
      const stored = db().updateTable('idempotency_keys').set({ request_hash: whole }).where('merchant_id', '=', t.credentials.merchant_id).where('key', '=', key);
      assert.equal(Number((await stored.executeTakeFirst()).numUpdatedRows), 1);
      const retried = await postAuthorise(t, payload, { 'idempotency-key': key });
      assert.equal(retried.statusCode, 201, retried.body);
      assert.equal(retried.headers['idempotent-replayed'], 'true');
      assertProblem(await postAuthorise(t, { ...payload, amount: 999 }, { 'idempotency-key': key }), 422, 'idempotency_key_reused');
    });

    it('compares a key stored before retries were compared by content by its bytes, the CVC left out, until it expires', async () => {
      const key = newKey();
      const payload = { ...body, reference: key };
      assert.equal((await postAuthorise(t, payload, { 'idempotency-key': key })).statusCode, 201);
      // As such a key was stored: the keyed hash of the endpoint and the body as sent, its CVC's value blanked.
      const { createHmac, hkdfSync } = await import('node:crypto');
      const hashKey = Buffer.from(hkdfSync('sha256', t.config.hmacKey, Buffer.alloc(0), 'tzero idempotency request v1', 32));
      const sent = JSON.stringify(payload).replace(/("cvc":)"[^"]*"/, '$1""');
      const bytes = createHmac('sha256', hashKey).update('POST /payment/authorise').update('\n').update(sent).digest('hex');
      const stored = db().updateTable('idempotency_keys').set({ request_hash: bytes }).where('merchant_id', '=', t.credentials.merchant_id).where('key', '=', key);
      assert.equal(Number((await stored.executeTakeFirst()).numUpdatedRows), 1);
      const retried = await postAuthorise(t, payload, { 'idempotency-key': key });
      assert.equal(retried.statusCode, 201, retried.body);
      assert.equal(retried.headers['idempotent-replayed'], 'true');
      assertProblem(await postAuthorise(t, { ...payload, amount: 999 }, { 'idempotency-key': key }), 422, 'idempotency_key_reused');
    });

    it('replays a key holding a card number that an earlier version stored, and refuses it for a new request', async () => {
      const stored = newKey();
      const payload = { ...body, reference: stored };
      const first = await postAuthorise(t, payload, { 'idempotency-key': stored });
      assert.equal(first.statusCode, 201, first.body);
      // As a version that took such keys stored it: the key as sent, the response sealed under it.
      const cardKey = `order-4242424242424242-${dialect}`;
      const { vault } = t.gateway.services.ctx;
      const merchant = t.credentials.merchant_id;
      const row = await db().selectFrom('idempotency_keys').select('response_body').where('merchant_id', '=', merchant).where('key', '=', stored).executeTakeFirstOrThrow();
      const response_body = vault.sealString(`idempotency:${merchant}:${cardKey}`, vault.openString(`idempotency:${merchant}:${stored}`, row.response_body));
      await db().updateTable('idempotency_keys').set({ key: cardKey, response_body }).where('merchant_id', '=', merchant).where('key', '=', stored).execute();

      // A retry across the upgrade is the same request: refused, it would tempt a second payment under a new key.
      const retried = await postAuthorise(t, payload, { 'idempotency-key': cardKey });
      assert.equal(retried.statusCode, 201, retried.body);
      assert.equal(retried.headers['idempotent-replayed'], 'true');
      assert.equal(retried.body, first.body);
      assertProblem(await postAuthorise(t, { ...payload, amount: 999 }, { 'idempotency-key': cardKey }), 422, 'idempotency_key_reused');
      assertProblem(await postAuthorise(t, payload, { 'idempotency-key': `order-4242424242424242-${dialect}-2` }), 400, 'card_number_in_text', '/headers/idempotency-key');
      assert.deepEqual(await paymentsWithReference(stored), [first.json().id]);
    });

    it('does not remember a rejected request: the fixed body goes through under the same key', async () => {
      const key = newKey();
      const bad = await postAuthorise(t, { ...body, reference: key, amount: 0 }, { 'idempotency-key': key });
      assertProblem(bad, 400, 'out_of_range');
      const good = await postAuthorise(t, { ...body, reference: key }, { 'idempotency-key': key });
      assert.equal(good.statusCode, 201, good.body);
      assert.equal(good.headers['idempotent-replayed'], undefined);
    });

    it('tells a duplicate of a request still under way when to try again', async () => {
      const key = newKey();
      const payload = { ...body, reference: key };
      const database = t.gateway.services.ctx.database;
      const insert = database.insert;
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let reached!: () => void;
      const writing = new Promise<void>((resolve) => (reached = resolve));
      database.insert = async (rows) => {
        reached();
        await held;
        return insert.call(database, rows);
      };
      try {
        const first = postAuthorise(t, payload, { 'idempotency-key': key });
        await writing;
        const duplicate = await postAuthorise(t, payload, { 'idempotency-key': key });
        assertProblem(duplicate, 409, 'idempotency_key_in_use', '/headers/idempotency-key');
        assert.equal(duplicate.headers['retry-after'], '1');
        release();
        assert.equal((await first).statusCode, 201);
      } finally {
        database.insert = insert;
        release();
      }
      const retried = await postAuthorise(t, payload, { 'idempotency-key': key });
      assert.equal(retried.headers['idempotent-replayed'], 'true');
    });

    it('creates exactly one payment from ten concurrent duplicates', async () => {
      const key = newKey();
      const payload = { ...body, reference: key };
      const answers = await Promise.all(Array.from({ length: 10 }, () => postAuthorise(t, payload, { 'idempotency-key': key })));
      const created = answers.filter((r) => r.statusCode === 201 && r.headers['idempotent-replayed'] === undefined);
      const replayed = answers.filter((r) => r.statusCode === 201 && r.headers['idempotent-replayed'] === 'true');
      const inFlight = answers.filter((r) => r.statusCode === 409);
      assert.equal(created.length, 1, answers.map((r) => `${r.statusCode} ${r.headers['idempotent-replayed'] ?? ''}`).join(', '));
      assert.equal(created.length + replayed.length + inFlight.length, 10);
      for (const r of inFlight) assertProblem(r, 409, 'idempotency_key_in_use', '/headers/idempotency-key');
      for (const r of replayed) assert.equal(r.body, created[0]!.body);
      const ids = await paymentsWithReference(key);
      assert.deepEqual(ids, [created[0]!.json().id]);
      // Once the winner has committed, every retry is a replay.
      const later = await postAuthorise(t, payload, { 'idempotency-key': key });
      assert.equal(later.headers['idempotent-replayed'], 'true');
      assert.equal(later.body, created[0]!.body);
    });

    if (dialect === 'postgres') {
      it('creates exactly one payment when duplicates reach two gateway nodes at once', async () => {
        const second = await createGateway(t.config, pino({ level: 'silent' }), { clock: t.clock });
        try {
          const key = newKey();
          const payload = JSON.stringify({ ...body, reference: key });
          const answers = await Promise.all(
            Array.from({ length: 10 }, (_, i) =>
              (i % 2 ? second.app : t.app).inject({
                method: 'POST',
                url: '/payment/authorise',
                headers: { 'x-secret-key': t.credentials.secret_key, 'content-type': 'application/json', 'idempotency-key': key },
                payload,
              }),
            ),
          );
          const statuses = answers.map((r) => `${r.statusCode}${r.headers['idempotent-replayed'] ? ' replay' : ''}`);
          assert.equal(statuses.filter((s) => s === '201').length, 1, statuses.join(', '));
          assert.ok(statuses.every((s) => s === '201' || s === '201 replay' || s === '409'), statuses.join(', '));
          assert.equal((await paymentsWithReference(key)).length, 1);
        } finally {
          await second.close();
        }
      });
    }

    it('scopes keys per merchant: another merchant may use the same key', async () => {
      const b = await createMerchant(t, `idem-${dialect}`);
      const key = newKey();
      const a1 = await postAuthorise(t, { ...body, reference: key }, { 'idempotency-key': key });
      const b1 = await postAuthorise(t, { ...body, reference: key, channel: b.channel.reference }, { 'idempotency-key': key, 'x-secret-key': b.key.secret_key });
      assert.equal(a1.statusCode, 201);
      assert.equal(b1.statusCode, 201, b1.body);
      assert.equal(b1.headers['idempotent-replayed'], undefined);
      assert.notEqual(a1.json().id, b1.json().id);
      // Merchant B's replay is B's payment, never A's.
      const b2 = await postAuthorise(t, { ...body, reference: key, channel: b.channel.reference }, { 'idempotency-key': key, 'x-secret-key': b.key.secret_key });
      assert.equal(b2.json().id, b1.json().id);
      assert.equal((await paymentsWithReference(key)).length, 2);
    });

    it('keeps a key for IDEMPOTENCY_TTL (24 h by default) and forgets it afterwards', async () => {
      assert.equal(t.config.idempotencyTtlMs, 24 * HOUR);
      const key = newKey();
      const payload = { ...body, reference: key };
      const first = await postAuthorise(t, payload, { 'idempotency-key': key });
      t.clock.advance(24 * HOUR - 1);
      const within = await postAuthorise(t, payload, { 'idempotency-key': key });
      assert.equal(within.headers['idempotent-replayed'], 'true');
      assert.equal(within.json().id, first.json().id);

      t.clock.advance(1);
      const afterTtl = await postAuthorise(t, payload, { 'idempotency-key': key });
      assert.equal(afterTtl.statusCode, 201, afterTtl.body);
      assert.equal(afterTtl.headers['idempotent-replayed'], undefined);
      assert.notEqual(afterTtl.json().id, first.json().id);
      assert.equal((await paymentsWithReference(key)).length, 2);
    });

    it('purges expired keys in the sweeper without touching live ones', async () => {
      const live = newKey();
      await postAuthorise(t, { ...body, reference: live }, { 'idempotency-key': live });
      const stale = newKey();
      await postAuthorise(t, { ...body, reference: stale }, { 'idempotency-key': stale });
      await db().updateTable('idempotency_keys').set({ expires_at: t.clock.now() - 1 }).where('key', '=', stale).execute();
      assert.ok((await t.gateway.services.idempotency.purgeExpired()) >= 1);
      const keys = (await db().selectFrom('idempotency_keys').select('key').where('key', 'in', [live, stale]).execute()).map((r) => r.key);
      assert.deepEqual(keys, [live]);
    });

    it('does not apply across endpoints or without a key', async () => {
      const a = await postAuthorise(t, body);
      const b = await postAuthorise(t, body);
      assert.notEqual(a.json().id, b.json().id);
    });
  });
}

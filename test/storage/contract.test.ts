import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import { loadConfig } from '../../src/config.js';
import { migrate, openDatabase, type Database } from '../../src/adapters/storage/database.js';
import { createGateway, ensureSandboxCredentials } from '../../src/server.js';
import { hashSecretKey } from '../../src/app/merchants.js';
import { isUniqueViolation } from '../../src/app/idempotency.js';
import { type RowInsert, compileInsert, statementOf } from '../../src/adapters/storage/compiled.js';
import { ManualClock } from '../../src/ports/clock.js';
import { SensitiveCard, Vault } from '../../src/adapters/vault/envelope.js';
import { randomBytes } from 'node:crypto';
import { DIALECTS, type Dialect } from '../support/gateway.js';
import { authoriseExampleOn } from '../support/http.js';
import { DomainError } from '../../src/domain/errors.js';
import { freshPostgresDatabase } from '../support/postgres.js';

/** One place to keep data between "process lifetimes": a data dir, and for PostgreSQL a database. */
interface Store {
  dataDir: string;
  databaseUrl: string | undefined;
  drop(): Promise<void>;
}

async function newStore(dialect: Dialect): Promise<Store> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tzero-contract-'));
  const pgdb = dialect === 'postgres' ? await freshPostgresDatabase() : null;
  return {
    dataDir,
    databaseUrl: pgdb?.url,
    async drop() {
      await pgdb?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const env = (s: Store) => ({ DATA_DIR: s.dataDir, LOG_LEVEL: 'silent', WORKERS: 'false', ...(s.databaseUrl ? { DATABASE_URL: s.databaseUrl } : {}) });
const silent = pino({ level: 'silent' });

for (const dialect of DIALECTS) {
  describe(`storage contract (${dialect})`, () => {
    let store: Store;
    let database: Database;
    const kek = { id: 'contract1', key: randomBytes(32) };

    before(async () => {
      store = await newStore(dialect);
      database = await openDatabase({ dataDir: store.dataDir, databaseUrl: store.databaseUrl, writerThread: true, cardKek: kek });
    });
    after(async () => {
      await database?.close();
      await store?.drop();
    });

    const count = async (table: 'merchants' | 'channels' | 'secret_keys' | 'payments') =>
      Number((await database.db.selectFrom(table).select((eb) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()).n);

    it('reports its dialect and capabilities', () => {
      assert.equal(database.dialect, dialect);
      assert.equal(database.caps.rowLocks, dialect === 'postgres');
    });

    it('applies migrations once; running them again is a no-op', async () => {
      assert.deepEqual(await migrate(database.db), []);
      const again = await openDatabase({ dataDir: store.dataDir, databaseUrl: store.databaseUrl });
      await again.close();
      const tables = await database.db.introspection.getTables();
      for (const name of ['merchants', 'channels', 'secret_keys', 'payments', 'card_secrets', 'checkout_sessions', 'idempotency_keys', 'events']) {
        assert.ok(tables.some((t) => t.name === name), `table ${name} is missing`);
      }
    });

    it('round-trips epoch milliseconds and minor units as numbers', async () => {
      const ms = Date.UTC(2099, 11, 31, 23, 59, 59, 999);
      await database.db.insertInto('merchants').values({ id: 'mer_roundtrip', name: 'Round trip', created_at: ms }).execute();
      const row = await database.db.selectFrom('merchants').selectAll().where('id', '=', 'mer_roundtrip').executeTakeFirstOrThrow();
      assert.equal(row.created_at, ms);
      assert.equal(typeof row.created_at, 'number');
    });

    it('commits a group of concurrent writes, leaving nothing of the ones that threw', async () => {
      const before = await count('merchants');
      const attempts = Array.from({ length: 50 }, (_, i) => i);
      const fails = (i: number) => i % 7 === 3;
      const results = await Promise.allSettled(
        attempts.map((i) =>
          database.write(async (trx) => {
            await trx.insertInto('merchants').values({ id: `mer_group_${i}`, name: `group ${i}`, created_at: i }).execute();
            // A failing unit writes first, so a lost savepoint would leave its row behind.
            if (fails(i)) throw new Error(`unit ${i} fails`);
            return i;
          }),
        ),
      );
      for (const [i, r] of results.entries()) {
        if (fails(i)) assert.equal(r.status, 'rejected', `unit ${i}`);
        else assert.deepEqual(r, { status: 'fulfilled', value: i });
      }
      const rows = await database.db.selectFrom('merchants').select('id').where('id', 'like', 'mer_group_%').execute();
      const expected = attempts.filter((i) => !fails(i)).map((i) => `mer_group_${i}`);
      assert.deepEqual(rows.map((r) => r.id).sort(), expected.sort());
      assert.equal(await count('merchants'), before + expected.length);
    });

    it('keeps a unit whose SQL fails from spoiling the others in its group', async () => {
      await database.db.insertInto('merchants').values({ id: 'mer_taken', name: 'taken', created_at: 0 }).execute();
      const results = await Promise.allSettled([
        database.write((trx) => trx.insertInto('merchants').values({ id: 'mer_sql_a', name: 'a', created_at: 0 }).execute()),
        database.write((trx) => trx.insertInto('merchants').values({ id: 'mer_taken', name: 'duplicate', created_at: 0 }).execute()),
        database.write((trx) => trx.insertInto('merchants').values({ id: 'mer_sql_b', name: 'b', created_at: 0 }).execute()),
      ]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
      const rows = await database.db.selectFrom('merchants').select(['id', 'name']).where('id', 'in', ['mer_sql_a', 'mer_sql_b', 'mer_taken']).orderBy('id').execute();
      assert.deepEqual(rows, [
        { id: 'mer_sql_a', name: 'a' },
        { id: 'mer_sql_b', name: 'b' },
        { id: 'mer_taken', name: 'taken' },
      ]);
    });

    it('commits insert-only units together (SQLite: on the writer thread), failing only the unit that breaks a constraint', async () => {
      const merchant = (id: string): RowInsert => ({ table: 'merchants', row: { id, name: id, created_at: 1 } });
      await database.insert([merchant('mer_ins_taken')]);
      const results = await Promise.allSettled([
        database.insert([merchant('mer_ins_a'), merchant('mer_ins_a2')]),
        database.insert([merchant('mer_ins_b'), merchant('mer_ins_taken')]),
        database.insert([merchant('mer_ins_c')]),
      ]);
      assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled']);
      // The violation keeps its SQL error code, which idempotency relies on to spot a lost race.
      assert.ok(isUniqueViolation((results[1] as PromiseRejectedResult).reason), String((results[1] as PromiseRejectedResult).reason));
      const rows = await database.db.selectFrom('merchants').select('id').where('id', 'like', 'mer_ins_%').orderBy('id').execute();
      assert.deepEqual(rows.map((r) => r.id), ['mer_ins_a', 'mer_ins_a2', 'mer_ins_c', 'mer_ins_taken']);
    });

    it('commits many insert-only units arriving at once (PostgreSQL: several to a statement), failing only those that break a constraint', async () => {
      const merchant = (id: string): RowInsert => ({ table: 'merchants', row: { id, name: id, created_at: 3 } });
      await database.insert([merchant('mer_many_taken')]);
      const fails = (i: number) => i % 9 === 4;
      const results = await Promise.allSettled(
        // All of one shape, so that failing units share statements with the others.
        Array.from({ length: 60 }, (_, i) => database.insert([merchant(fails(i) ? 'mer_many_taken' : `mer_many_${String(i).padStart(2, '0')}`)])),
      );
      results.forEach((r, i) => {
        if (fails(i)) assert.ok(r.status === 'rejected' && isUniqueViolation(r.reason), `unit ${i}: ${r.status}`);
        else assert.equal(r.status, 'fulfilled', `unit ${i}: ${(r as PromiseRejectedResult).reason}`);
      });
      const rows = await database.db.selectFrom('merchants').select('id').where('id', 'like', 'mer_many_%').where('id', '!=', 'mer_many_taken').orderBy('id').execute();
      assert.deepEqual(
        rows.map((r) => r.id),
        Array.from({ length: 60 }, (_, i) => i)
          .filter((i) => !fails(i))
          .map((i) => `mer_many_${String(i).padStart(2, '0')}`),
      );
    });

    it('applies compiled inserts and updates as one unit, skipping rows the unique key already holds when asked to', async () => {
      const merchant = (id: string, name: string): RowInsert => ({ table: 'merchants', row: { id, name, created_at: 2 }, onConflictDoNothing: ['id'] });
      await database.insert([merchant('mer_apply_old', 'kept')]);
      const rename = statementOf(database.db.updateTable('merchants').set({ name: 'renamed' }).where('id', '=', 'mer_apply_ren').compile());
      await database.apply([
        compileInsert(database.db, merchant('mer_apply_ren', 'new')),
        compileInsert(database.db, merchant('mer_apply_old', 'overwritten?')),
        rename,
      ]);
      const rows = await database.db.selectFrom('merchants').select(['id', 'name']).where('id', 'like', 'mer_apply_%').orderBy('id').execute();
      assert.deepEqual(rows, [
        { id: 'mer_apply_old', name: 'kept' },
        { id: 'mer_apply_ren', name: 'renamed' },
      ]);
      // Without the conflict clause the same row fails its unit, and nothing of the unit stays.
      await assert.rejects(database.apply([compileInsert(database.db, { table: 'merchants', row: { id: 'mer_apply_new', name: 'x', created_at: 2 } }), compileInsert(database.db, { table: 'merchants', row: { id: 'mer_apply_old', name: 'x', created_at: 2 } })]), (e) => isUniqueViolation(e));
      assert.equal(await database.db.selectFrom('merchants').select('id').where('id', '=', 'mer_apply_new').executeTakeFirst(), undefined);
    });

    it('seals a card as it writes its row (SQLite: on the writer thread), so that only the vault opens it', async () => {
      const cards = Array.from({ length: 12 }, (_, i) => ({ id: `pay_sealed_${i}`, pan: `42424242424242${String(i).padStart(2, '0')}`, cvc: i % 3 === 0 ? undefined : `${100 + i}` }));
      await Promise.all(cards.map((c) => database.insert([{ table: 'card_secrets', paymentId: c.id, card: new SensitiveCard(c.pan, c.cvc) }])));
      const rows = await database.db.selectFrom('card_secrets').selectAll().where('payment_id', 'like', 'pay_sealed_%').orderBy('payment_id').execute();
      assert.equal(rows.length, cards.length);
      const vault = new Vault({ active: kek, all: new Map([[kek.id, kek.key]]) }, randomBytes(32));
      for (const c of cards) {
        const row = rows.find((r) => r.payment_id === c.id)!;
        assert.equal(row.kek_id, kek.id);
        assert.ok(!JSON.stringify(row).includes(c.pan), 'the PAN is stored in clear');
        assert.equal(row.cvc_ct === null, c.cvc === undefined);
        const opened = vault.openCard(c.id, row);
        assert.deepEqual([opened.pan, opened.cvc], [c.pan, c.cvc]);
      }
      // Sealed under its own id: a row moved to another payment no longer opens.
      assert.throws(() => vault.openCard('pay_sealed_1', rows.find((r) => r.payment_id === 'pay_sealed_2')!));
    });

    it('refuses a card to seal when it was opened without the key-encrypting key, writing nothing of its unit', async () => {
      const keyless = await openDatabase({ dataDir: store.dataDir, databaseUrl: store.databaseUrl, writerThread: true });
      try {
        await assert.rejects(
          keyless.insert([
            { table: 'merchants', row: { id: 'mer_keyless', name: 'x', created_at: 0 } },
            { table: 'card_secrets', paymentId: 'pay_keyless', card: new SensitiveCard('4242424242424242', '123') },
          ]),
          /without the key-encrypting key|has no key-encrypting key/,
        );
      } finally {
        await keyless.close();
      }
      assert.equal(await database.db.selectFrom('merchants').select('id').where('id', '=', 'mer_keyless').executeTakeFirst(), undefined);
    });

    it('keeps inserts and read-modify-write transactions in order when both arrive at once', async () => {
      await database.insert([{ table: 'merchants', row: { id: 'mer_turns', name: 'v0', created_at: 0 } }]);
      const work: Promise<unknown>[] = [];
      for (let i = 1; i <= 20; i++) {
        work.push(database.insert([{ table: 'merchants', row: { id: `mer_turns_${i}`, name: 'x', created_at: i } }]));
        work.push(
          database.transaction(async (trx) => {
            const row = await trx
              .selectFrom('merchants')
              .select('name')
              .where('id', '=', 'mer_turns')
              .$if(database.caps.rowLocks, (q) => q.forUpdate())
              .executeTakeFirstOrThrow();
            await trx.updateTable('merchants').set({ name: `v${Number(row.name.slice(1)) + 1}` }).where('id', '=', 'mer_turns').execute();
          }),
        );
      }
      await Promise.all(work);
      const row = await database.db.selectFrom('merchants').select('name').where('id', '=', 'mer_turns').executeTakeFirstOrThrow();
      assert.equal(row.name, 'v20');
      const inserted = await database.db.selectFrom('merchants').select('id').where('id', 'like', 'mer_turns_%').execute();
      assert.equal(inserted.length, 20);
    });

    it('rolls a transaction back as a whole', async () => {
      await assert.rejects(
        database.transaction(async (trx) => {
          await trx.insertInto('merchants').values({ id: 'mer_rolled_back', name: 'x', created_at: 0 }).execute();
          throw new Error('boom');
        }),
        /boom/,
      );
      assert.equal(await database.db.selectFrom('merchants').select('id').where('id', '=', 'mer_rolled_back').executeTakeFirst(), undefined);
    });

    it('reports its size on disk', async () => {
      assert.ok((await database.sizeBytes()) > 0);
    });
  });

  describe(`merchants, channels and keys across restarts (${dialect})`, () => {
    let store: Store;
    before(async () => {
      store = await newStore(dialect);
    });
    after(() => store?.drop());

    const open = async () => {
      const clock = new ManualClock(Date.UTC(2030, 0, 1));
      return createGateway(loadConfig(env(store)), silent, { clock });
    };

    it('keeps merchants, channels and keys after close and reopen, and stores keys as SHA-256 only', async () => {
      const first = await open();
      const { created, credentials } = await ensureSandboxCredentials(first.services);
      assert.equal(created, true);
      const m = first.services.merchants;
      const merchant = await m.createMerchant('Persistent Ltd');
      const { channel } = await m.createChannel(merchant.id, {
        reference: 'persist-1',
        name: 'Persistent shop',
        mode: 'sandbox',
        currencies: ['EUR', 'USD'],
        returnUrls: ['https://persist.example/back'],
        notifyEmails: ['ops@persist.example'],
      });
      const key = await m.createSecretKey(merchant.id, 'primary');
      const revoked = await m.createSecretKey(merchant.id, 'old');
      await m.revokeSecretKey(revoked.id);

      const stored = await first.services.ctx.database.db.selectFrom('secret_keys').selectAll().execute();
      for (const row of stored) {
        assert.match(row.key_hash, /^[0-9a-f]{64}$/);
        assert.ok(!Object.values(row).some((v) => typeof v === 'string' && /sk_(?:test_|live_)?[0-9a-f]{32}/.test(v)), 'a clear key is stored');
      }
      assert.equal(stored.find((r) => r.id === key.id)?.key_hash, hashSecretKey(key.secret_key));
      await first.close();

      const second = await open();
      try {
        const again = await ensureSandboxCredentials(second.services);
        assert.equal(again.created, false);
        assert.deepEqual(again.credentials, credentials);
        const m2 = second.services.merchants;
        assert.deepEqual(await m2.authenticate(key.secret_key), { merchantId: merchant.id, keyId: key.id, suspended: false, mode: 'sandbox' });
        assert.equal(await m2.authenticate(revoked.secret_key), null);
        assert.equal((await m2.authenticate(credentials!.secret_key))?.merchantId, credentials!.merchant_id);
        const [reloaded] = await m2.listChannels(merchant.id);
        assert.deepEqual(reloaded, channel);
        assert.equal((await m2.listMerchants()).filter((x) => x.id === merchant.id).length, 1);
      } finally {
        await second.close();
      }
    });

    it("removes at boot the credentials file's temporary copy that a process killed while writing it left", async () => {
      const gw = await open();
      try {
        const { file } = await ensureSandboxCredentials(gw.services);
        const stale = `${file}.4242.tmp`;
        const fresh = `${file}.4343.tmp`;
        const other = `${file}.notes.tmp`;
        for (const f of [stale, fresh, other]) writeFileSync(f, '{"secret_key":"…"}', { mode: 0o600 });
        const hourAgo = new Date(Date.now() - 3_600_000);
        utimesSync(stale, hourAgo, hourAgo);
        utimesSync(other, hourAgo, hourAgo);
        await ensureSandboxCredentials(gw.services);
        // A young one may be another gateway's write under way; what is not such a copy is left alone.
        const left = readdirSync(store.dataDir).filter((n) => n.endsWith('.tmp')).sort();
        assert.deepEqual(left, [basename(fresh), basename(other)].sort());
      } finally {
        await gw.close();
      }
    });

    it('keeps channel references unique across merchants', async () => {
      const gw = await open();
      try {
        const m = gw.services.merchants;
        const a = await m.createMerchant('A');
        const b = await m.createMerchant('B');
        const input = { reference: 'unique-ref', name: 'Shop', mode: 'sandbox' as const, currencies: ['USD'], returnUrls: ['https://a.example/r'], notifyEmails: [] };
        await m.createChannel(a.id, input);
        await assert.rejects(m.createChannel(b.id, input), (e: { status?: number; code?: string }) => e.status === 409 && e.code === 'channel_reference_taken');
        // The database enforces it too, for writers that race past the check.
        const db = gw.services.ctx.database.db;
        const row = await db.selectFrom('channels').selectAll().where('reference', '=', 'unique-ref').executeTakeFirstOrThrow();
        await assert.rejects(db.insertInto('channels').values({ ...row, id: 'ch_dup', merchant_id: b.id }).execute());
      } finally {
        await gw.close();
      }
    });

    it('names the settings an earlier version saved that channel update refuses now, and still updates the channel around them', async () => {
      const gw = await open();
      try {
        const m = gw.services.merchants;
        const merchant = await m.createMerchant('Upgraded');
        await m.createChannel(merchant.id, { reference: 'upgraded', name: 'Shop', mode: 'sandbox', currencies: ['USD'], returnUrls: ['https://a.example/r'], notifyEmails: ['ops@a.example'] });
        assert.deepEqual((await m.settingsOutOfRule()).filter((n) => n.includes('"upgraded"')), []);
        // As a version that took display names and BGN saved them.
        await gw.services.ctx.database.db
          .updateTable('channels')
          .set({ currencies: JSON.stringify(['USD', 'BGN']), notify_emails: JSON.stringify(['Ops<ops@a.example>', 'ops@a.example']) })
          .where('reference', '=', 'upgraded')
          .execute();
        const notices = (await m.settingsOutOfRule()).filter((n) => n.includes('"upgraded"'));
        assert.equal(notices.length, 2, notices.join('\n'));
        assert.match(notices[0]!, /notify-email "Ops<ops@a\.example>" is not one e-mail address.*channel update upgraded --notify-email/);
        assert.match(notices[1]!, /currency BGN is withdrawn.*channel update upgraded --currency/);
        const renamed = await m.updateChannel('upgraded', { name: 'Renamed' });
        assert.deepEqual([renamed.name, renamed.currencies, renamed.notify_emails], ['Renamed', ['USD', 'BGN'], ['Ops<ops@a.example>', 'ops@a.example']]);
      } finally {
        await gw.close();
      }
    });

    it('checks channel input', async () => {
      const gw = await open();
      try {
        const m = gw.services.merchants;
        const merchant = await m.createMerchant('Checks');
        const base = { reference: 'checks', name: 'Shop', mode: 'live' as const, currencies: ['USD'], returnUrls: ['https://a.example/r'], notifyEmails: [] };
        const refused = async (patch: object, param: string) =>
          assert.rejects(m.createChannel(merchant.id, { ...base, ...patch }), (e: { status?: number; param?: string }) => e.status === 400 && e.param === param);
        await refused({ reference: 'has space' }, '/reference');
        await refused({ currencies: ['XXX'] }, '/currencies');
        await refused({ currencies: [] }, '/currencies');
        await refused({ returnUrls: ['http://a.example/r'] }, '/return_urls');
        await refused({ returnUrls: ['/sandbox/return'] }, '/return_urls');
        await refused({ returnUrls: ['https://user:pw@a.example/r'] }, '/return_urls');
        await refused({ notifyEmails: ['nobody'] }, '/notify_emails');
        const updated = await (async () => {
          await m.createChannel(merchant.id, base);
          return m.updateChannel('checks', { name: 'Renamed', returnUrls: ['https://a.example/r2', 'https://b.example/r'], notifyEmails: ['a@b.example'] });
        })();
        assert.equal(updated.name, 'Renamed');
        assert.deepEqual(updated.return_urls, ['https://a.example/r2', 'https://b.example/r']);
        await assert.rejects(m.updateChannel('checks', { mode: 'live', returnUrls: ['http://plain.example'] }), (e: { status?: number }) => e.status === 400);
      } finally {
        await gw.close();
      }
    });

    it("fixes a channel's mode once the channel has taken a payment", async () => {
      const gw = await open();
      try {
        const m = gw.services.merchants;
        const merchant = await m.createMerchant('Going live');
        const base = { name: 'Shop', mode: 'sandbox' as const, currencies: ['USD'], returnUrls: ['https://live.example/r'], notifyEmails: [] };
        await m.createChannel(merchant.id, { ...base, reference: 'mode-paid' });
        await m.createChannel(merchant.id, { ...base, reference: 'mode-unpaid' });
        const key = await m.createSecretKey(merchant.id);
        await authoriseExampleOn(gw.app, key.secret_key, 'mode-paid');

        await assert.rejects(m.updateChannel('mode-paid', { mode: 'live', name: 'Renamed' }), (e: unknown) => {
          assert.ok(e instanceof DomainError, String(e));
          assert.deepEqual([e.status, e.code, e.param], [409, 'channel_mode_fixed', '/mode']);
          assert.match(e.message, /new channel/);
          return true;
        });
        // A sandbox channel's relative return URL would not do in live mode either: the mode is what to be told.
        await m.createChannel(merchant.id, { ...base, reference: 'mode-relative', returnUrls: ['/sandbox/return'] });
        await authoriseExampleOn(gw.app, key.secret_key, 'mode-relative');
        await assert.rejects(m.updateChannel('mode-relative', { mode: 'live' }), (e: unknown) => e instanceof DomainError && e.code === 'channel_mode_fixed');
        const db = gw.services.ctx.database.db;
        const row = () => db.selectFrom('channels').select(['mode', 'name']).where('reference', '=', 'mode-paid').executeTakeFirstOrThrow();
        assert.deepEqual(await row(), { mode: 'sandbox', name: 'Shop' }, 'nothing of the refused update was written');

        const same = await m.updateChannel('mode-paid', { mode: 'sandbox', name: 'Renamed' });
        assert.deepEqual([same.mode, same.name], ['sandbox', 'Renamed']);
        assert.deepEqual(await row(), { mode: 'sandbox', name: 'Renamed' });

        // Another channel of the same merchant has taken none: it may still go live.
        assert.equal((await m.updateChannel('mode-unpaid', { mode: 'live' })).mode, 'live');
        assert.equal((await db.selectFrom('channels').select('mode').where('reference', '=', 'mode-unpaid').executeTakeFirstOrThrow()).mode, 'live');
      } finally {
        await gw.close();
      }
    });

    it('answers readiness from the database', async () => {
      const gw = await open();
      try {
        const res = await gw.app.inject({ method: 'GET', url: '/readyz' });
        assert.equal(res.statusCode, 200);
        assert.deepEqual(res.json(), { status: 'ready' });
      } finally {
        await gw.close();
      }
    });
  });
}

if (DIALECTS.includes('postgres')) {
  describe('sandbox credentials in one data directory', () => {
    it('keeps a SQLite and a PostgreSQL sandbox each to its own credentials, and shows none of another database', async () => {
      const sqlite = await newStore('sqlite');
      const postgres = await newStore('postgres');
      const boot = async (databaseUrl: string | undefined) => {
        const gw = await createGateway(loadConfig(env({ ...sqlite, databaseUrl })), silent);
        try {
          const kept = await ensureSandboxCredentials(gw.services);
          const merchant = kept.credentials && (await gw.services.merchants.authenticate(kept.credentials.secret_key))?.merchantId;
          return { ...kept, merchant };
        } finally {
          await gw.close();
        }
      };
      try {
        const lite = await boot(undefined);
        const pg = await boot(postgres.databaseUrl);
        assert.deepEqual([lite.created, pg.created], [true, true]);
        assert.notEqual(lite.file, pg.file);
        assert.equal(lite.file, join(sqlite.dataDir, 'sandbox-credentials.json'));
        const [liteAgain, pgAgain] = [await boot(undefined), await boot(postgres.databaseUrl)];
        assert.deepEqual([liteAgain.created, liteAgain.credentials, liteAgain.merchant], [false, lite.credentials, lite.credentials!.merchant_id]);
        assert.deepEqual([pgAgain.created, pgAgain.credentials, pgAgain.merchant], [false, pg.credentials, pg.credentials!.merchant_id]);

        // A file whose merchant this database does not have (another database's) is not offered as its own.
        writeFileSync(lite.file, JSON.stringify(pg.credentials));
        const stale = await boot(undefined);
        assert.deepEqual([stale.created, stale.credentials], [false, null]);
      } finally {
        await sqlite.drop();
        await postgres.drop();
      }
    });
  });
}

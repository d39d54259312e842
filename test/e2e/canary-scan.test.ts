import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import pino from 'pino';
import type { Browser } from 'playwright-core';
import { loadConfig } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import { createGateway, ensureSandboxCredentials, type Gateway } from '../../src/server.js';
import { luhnValid } from '../../src/domain/card.js';
import { findTestCard } from '../../src/adapters/acquirers/sandbox/test-cards.js';
import { ManualClock } from '../../src/ports/clock.js';
import { DIALECTS, exampleBody, freePort } from '../support/gateway.js';
import { freshPostgresDatabase } from '../support/postgres.js';
import { launchBrowser, openTab, returnPageOutcome } from '../support/browser.js';
import { unpackJson } from '../../src/adapters/storage/packed-json.js';

/** A Luhn-valid number that is in no test table, so finding it anywhere means it leaked from here. */
function canaryPan(prefix: string, length: number): string {
  for (;;) {
    let body = prefix;
    while (body.length < length - 1) body += String(randomInt(10));
    for (let d = 0; d <= 9; d++) {
      const pan = body + d;
      if (luhnValid(pan) && !findTestCard(pan)) return pan;
    }
  }
}

/** CVCs whose digits appear nowhere else in the flow's fixed data. */
const canaryCvc = (length: number) => Array.from({ length }, () => String(randomInt(1, 10))).join('');

interface Canary {
  pan: string;
  cvc: string;
  challenge: boolean;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/**
 * Where a CVC could hide: 3-4 digits match random bytes everywhere, so the scan looks for
 * them the way they would be written: quoted, or as a JSON/form/log value of a cvc field.
 */
function cvcForms(cvc: string): string[] {
  return [`"${cvc}"`, `'${cvc}'`, `cvc=${cvc}`, `cvc: ${cvc}`, `cvc:${cvc}`, `"cvc":${cvc}`];
}

function findLeaks(where: string, bytes: Buffer, canaries: Canary[]): string[] {
  const text = bytes.toString('latin1');
  const leaks: string[] = [];
  for (const c of canaries) {
    if (text.includes(c.pan)) leaks.push(`${where}: PAN ${c.pan.slice(0, 6)}…`);
    if (bytes.includes(Buffer.from(c.pan, 'utf16le'))) leaks.push(`${where}: PAN (UTF-16) ${c.pan.slice(0, 6)}…`);
    for (const form of cvcForms(c.cvc)) if (text.includes(form)) leaks.push(`${where}: CVC as ${form}`);
  }
  return leaks;
}

let browser: Browser;
before(async () => {
  browser = await launchBrowser();
});
after(() => browser?.close());

for (const dialect of DIALECTS) {
  describe(`canary scan: no card number or CVC outlives its use (${dialect})`, () => {
    let gateway: Gateway;
    let dataDir: string;
    let logFile: string;
    let dropDatabase: (() => Promise<void>) | undefined;
    let secretKey: string;
    const outputs: Array<[string, Buffer]> = [];
    const canaries: Canary[] = [
      { pan: canaryPan('4', 16), cvc: canaryCvc(3), challenge: false },
      { pan: canaryPan('51', 16), cvc: canaryCvc(3), challenge: false },
      { pan: canaryPan('37', 15), cvc: canaryCvc(4), challenge: false },
      { pan: canaryPan('6011', 16), cvc: canaryCvc(3), challenge: false },
      { pan: '4000000000003220', cvc: canaryCvc(3), challenge: true },
    ];
    /** Refused requests carry canaries too: error messages must not echo them. */
    const rejected: Canary = { pan: canaryPan('4', 16), cvc: canaryCvc(3), challenge: false };
    /**
     * Each canary's sealed card values (number, CVC, wrapped data key) as SQLite writes them:
     * the IV and the GCM tag side by side (stored-values.ts), 28 random bytes no other value has.
     */
    const sealedFootprints: Buffer[] = [];
    const footprintsOf = async (paymentId: string) => {
      const row = await gateway.services.ctx.database.db.selectFrom('card_secrets').selectAll().where('payment_id', '=', paymentId).executeTakeFirstOrThrow();
      const sealed = Object.values(row).filter((v): v is string => typeof v === 'string' && /^[A-Za-z0-9+/]{16}\.[A-Za-z0-9+/]*={0,2}\.[A-Za-z0-9+/]{22}==$/.test(v));
      assert.ok(sealed.length >= 3, `expected a sealed number, CVC and data key, got ${sealed.length}`);
      return sealed.map((v) => {
        const [iv, , tag] = v.split('.');
        return Buffer.concat([Buffer.from(iv!, 'base64'), Buffer.from(tag!, 'base64')]);
      });
    };

    before(async () => {
      dataDir = mkdtempSync(join(tmpdir(), 'tzero-canary-'));
      logFile = join(dataDir, 'gateway.log');
      const pgdb = dialect === 'postgres' ? await freshPostgresDatabase() : null;
      dropDatabase = pgdb?.drop;
      const port = await freePort();
      const config = loadConfig({
        DATA_DIR: dataDir,
        PORT: String(port),
        PUBLIC_URL: `http://127.0.0.1:${port}`,
        WORKERS: 'false',
        ...(pgdb ? { DATABASE_URL: pgdb.url } : {}),
      });
      // The gateway's own logger at its most talkative, writing synchronously to a file.
      const log = createLogger('trace', pino.destination({ dest: logFile, sync: true }));
      gateway = await createGateway(config, log, { clock: new ManualClock(Date.now()) });
      secretKey = (await ensureSandboxCredentials(gateway.services)).credentials!.secret_key;
      await gateway.app.listen({ host: '127.0.0.1', port });

      for (const c of canaries) {
        const body = await exampleBody({ payment_method: { number: c.pan, cvc: c.cvc } });
        const res = await gateway.app.inject({ method: 'POST', url: '/payment/authorise', headers: { 'x-secret-key': secretKey, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
        outputs.push([`authorise ${res.statusCode}`, res.rawPayload]);
        assert.equal(res.statusCode, 201, res.body);
        const { id, redirect_url: url } = res.json();
        if (dialect === 'sqlite') sealedFootprints.push(...(await footprintsOf(id)));
        const tab = await openTab(browser);
        tab.page.on('response', async (r) => {
          const buf = await r.body().catch(() => null);
          // Headers too (Location carries the return URL), minus lengths that could pass for a CVC.
          const headers = Object.entries(r.headers()).filter(([k]) => k !== 'content-length').map(([k, v]) => `${k}: ${v}\n`).join('');
          if (buf) outputs.push([`page ${r.status()} ${new URL(r.url()).pathname}`, Buffer.concat([Buffer.from(headers), buf])]);
        });
        try {
          await tab.page.goto(url);
          if (c.challenge) {
            await tab.page.locator('input[name="otp"]').fill('1234');
            await tab.page.getByRole('button', { name: /verify/i }).click();
          }
          assert.equal((await returnPageOutcome(tab.page)).status, 'captured');
          await tab.page.goto(url);
          await tab.page.waitForLoadState('load');
        } finally {
          await tab.close();
        }
        const got = await gateway.app.inject({ method: 'GET', url: `/payment/${id}`, headers: { 'x-secret-key': secretKey } });
        outputs.push([`get ${got.statusCode}`, got.rawPayload]);
      }

      const badBodies = [
        await exampleBody({ payment_method: { number: rejected.pan, cvc: rejected.cvc, expiry_month: 13 } }),
        await exampleBody({ payment_method: { number: rejected.pan, cvc: rejected.cvc + '9' } }),
        await exampleBody({ payment_method: { number: Number(rejected.pan), cvc: rejected.cvc } }),
        await exampleBody({ payment_method: { number: rejected.pan, cvc: rejected.cvc, pin: rejected.cvc } }),
        { ...(await exampleBody({ payment_method: { number: rejected.pan, cvc: rejected.cvc } })), currency: 'XXX' },
      ];
      for (const body of badBodies) {
        const res = await gateway.app.inject({ method: 'POST', url: '/payment/authorise', headers: { 'x-secret-key': secretKey, 'content-type': 'application/json' }, payload: JSON.stringify(body) });
        assert.equal(res.statusCode, 400, res.body);
        outputs.push([`rejected ${res.statusCode}`, res.rawPayload]);
      }
      const broken = JSON.stringify(await exampleBody({ payment_method: { number: rejected.pan, cvc: rejected.cvc } })).replace('"currency"', 'currency');
      const res = await gateway.app.inject({ method: 'POST', url: '/payment/authorise', headers: { 'x-secret-key': secretKey, 'content-type': 'application/json' }, payload: broken });
      assert.equal(res.statusCode, 400);
      outputs.push([`broken json ${res.statusCode}`, res.rawPayload]);
    });

    after(async () => {
      await gateway?.close().catch(() => {});
      await dropDatabase?.();
      if (dataDir) rmSync(dataDir, { recursive: true, force: true });
    });

    const all = () => [...canaries, rejected];

    it('the flows really ran: captured payments and a chatty log', async () => {
      const rows = await gateway.services.ctx.database.db.selectFrom('payments').select(['status', 'card_last4']).execute();
      assert.equal(rows.length, canaries.length);
      assert.ok(rows.every((r) => r.status === 'captured'));
      assert.deepEqual(rows.map((r) => r.card_last4).sort(), canaries.map((c) => c.pan.slice(-4)).sort());
      const log = readFileSync(logFile, 'utf8');
      assert.ok(log.split('\n').length > 20, 'the log is nearly empty');
      assert.match(log, /"url":"\/pay\/\[token\]/);
    });

    it('no HTTP response or page carries a PAN or CVC', () => {
      assert.ok(outputs.length > canaries.length * 4);
      assert.deepEqual(outputs.flatMap(([where, bytes]) => findLeaks(where, bytes, all())), []);
    });

    it('the log carries no PAN or CVC', () => {
      assert.deepEqual(findLeaks('log', readFileSync(logFile), all()), []);
    });

    it('no database cell holds a PAN or a CVC, and every CVC is erased', async () => {
      const db = gateway.services.ctx.database.db;
      const tables = (await db.introspection.getTables()).map((t) => t.name).filter((n) => !n.startsWith('kysely_'));
      assert.ok(tables.includes('card_secrets'));
      const leaks: string[] = [];
      for (const table of tables) {
        const rows = await db.selectFrom(table as 'payments').selectAll().execute();
        for (const row of rows) {
          for (const [column, value] of Object.entries(row)) {
            if (value === null || value === undefined) continue;
            // Packed JSON columns (SQLite) are compressed: a PAN in them would not show in
            // the file's bytes, so the cells are read back as the JSON they hold.
            const text = value instanceof Uint8Array ? unpackJson(value) : String(value);
            for (const c of all()) {
              if (text.includes(c.pan)) leaks.push(`${table}.${column}: PAN`);
              if (text === c.cvc || cvcForms(c.cvc).some((f) => text.includes(f))) leaks.push(`${table}.${column}: CVC`);
            }
          }
        }
      }
      assert.deepEqual(leaks, []);
      // Every canary payment has finished: none keeps its card.
      assert.deepEqual(await db.selectFrom('card_secrets').select(['cvc_ct', 'pan_ct']).execute(), []);
    });

    if (dialect === 'sqlite') {
      /** Files of the data directory holding any canary's sealed values. */
      const holdingSealed = () =>
        filesUnder(dataDir).flatMap((f) => {
          const bytes = readFileSync(f);
          return sealedFootprints.some((footprint) => bytes.includes(footprint)) ? [f.slice(dataDir.length + 1)] : [];
        });

      it("no file keeps an erased card's sealed number, CVC or data key for more than about a second", async () => {
        assert.equal(sealedFootprints.length, canaries.length * 3);
        let holding = holdingSealed();
        for (const started = Date.now(); holding.length > 0 && Date.now() - started < 5000; holding = holdingSealed()) {
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
        assert.deepEqual(holding, []);
      });

      it('no file of the data directory (database, WAL, keys) holds a PAN or CVC, open or closed', async () => {
        const scan = () => {
          const files = filesUnder(dataDir);
          assert.ok(files.some((f) => f.endsWith('gateway.sqlite')));
          return files.flatMap((f) => findLeaks(f.slice(dataDir.length + 1), readFileSync(f), all()));
        };
        assert.ok(filesUnder(dataDir).some((f) => f.endsWith('-wal')), 'expected a WAL file while open');
        assert.deepEqual(scan(), []);
        await gateway.close();
        assert.deepEqual(scan(), []);
        assert.deepEqual(holdingSealed(), []);
      });
    }
  });
}

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import SQLite from 'better-sqlite3';
import { bulkLoad } from '../../bench/lib/million.js';
import { APPROVING_CARDS } from '../../bench/lib/bodies.js';
import { removeDir, startGateway, tempDir } from '../../bench/lib/processes.js';
import { readRow } from '../../src/adapters/storage/stored-values.js';

/**
 * The benchmark's million-payment loader builds its rows with the gateway's own private
 * code (Authorise.prepare); this catches the day that code changes shape under it, which
 * the benchmark would otherwise only report as "not measured" after minutes of running.
 */
describe('benchmark bulk loader', () => {
  let dataDir: string;
  let ids: string[];

  before(async () => {
    dataDir = tempDir('tzero-test-bulk-');
    await (await startGateway({ dataDir })).stop();
    ({ ids } = await bulkLoad(dataDir, 300, 'test'));
  });
  after(() => removeDir(dataDir));

  it('writes finished payments the gateway serves, keeping no card, as the gateway keeps none once a page ends', async () => {
    const db = new SQLite(join(dataDir, 'gateway.sqlite'), { readonly: true });
    try {
      const count = (table: string) => (db.prepare(`select count(*) as n from ${table}`).get() as { n: number }).n;
      assert.deepEqual([count('payments'), count('card_secrets'), count('checkout_sessions'), count('events')], [300, 0, 300, 900]);
      const payment = readRow(db.prepare('select * from payments where id = ?').get(Buffer.from(`48${ids[0]!.slice(4)}`, 'hex'))) as Record<string, unknown>;
      assert.equal(payment.status, 'captured');
      assert.ok(!APPROVING_CARDS.some((c) => JSON.stringify(payment).includes(c.number)), 'a card number is stored in clear');
    } finally {
      db.close();
    }
    const gw = await startGateway({ dataDir });
    try {
      const res = await fetch(`${gw.url}/payment/${ids[0]}`, { headers: { 'x-secret-key': gw.secretKey } });
      assert.equal(res.status, 200);
      const payment = (await res.json()) as { id: string; status: string; amount_captured: number; amount: number };
      assert.deepEqual([payment.id, payment.status, payment.amount_captured], [ids[0], 'captured', payment.amount]);
    } finally {
      await gw.stop();
    }
  });
});

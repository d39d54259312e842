import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { ComplianceGate } from '../../src/app/compliance.js';
import { DIALECTS, type TestGateway, exampleBody, startTestGateway } from '../support/gateway.js';
import { assertProblem, postAuthorise } from '../support/http.js';
import pino from 'pino';
import { LIVE_CHANNEL, OPERATOR_TOKEN, dateDaysAgo, declareVolume, expectStatus, pdf, startComplianceGateway, upload } from './fixtures.js';

const run = promisify(execFile);
const ROOT = new URL('../../', import.meta.url).pathname;

/** The operator CLI as an operator runs it: a separate process on the same database. */
async function cli(t: TestGateway, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', DATA_DIR: t.dataDir, LOG_LEVEL: 'silent', WORKERS: 'false' };
  if (t.config.databaseUrl) env.DATABASE_URL = t.config.databaseUrl;
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: ROOT, env, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

for (const dialect of DIALECTS) {
  describe(`compliance operator CLI (${dialect})`, () => {
    let t: TestGateway;
    let merchant: string;
    before(async () => {
      t = await startComplianceGateway(dialect);
      merchant = t.credentials.merchant_id;
      await expectStatus(declareVolume(t, 5000), 200);
      await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 20) }), 201);
      await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 2), file: pdf('cli-copy') }), 201);
    });
    after(() => t.close());

    it('lists the pending submission and shows it', async () => {
      const list = await cli(t, 'compliance', 'list', '--json');
      assert.equal(list.code, 0, list.stderr);
      const rows = JSON.parse(list.stdout) as Array<{ merchant_id: string; documents: Array<{ type: string }> }>;
      assert.deepEqual(rows.map((r) => r.merchant_id), [merchant]);
      assert.deepEqual(rows[0]!.documents.map((d) => d.type).sort(), ['asv_scan', 'saq']);

      const show = await cli(t, 'compliance', 'show', merchant, '--json');
      assert.equal(show.code, 0, show.stderr);
      const view = JSON.parse(show.stdout);
      assert.equal(view.status, 'pending');
      assert.ok(view.audit_log.length >= 3);
    });

    it('writes a document to a file with its digest', async () => {
      const view = await t.gateway.services.compliance.status(merchant);
      const saq = view.documents.find((d) => d.type === 'saq')!;
      const out = join(t.dataDir, 'saq-copy.pdf');
      const res = await cli(t, 'compliance', 'download', saq.id, '--out', out, '--json');
      assert.equal(res.code, 0, res.stderr);
      assert.ok(readFileSync(out).equals(pdf('cli-copy')));
      assert.equal(JSON.parse(res.stdout).sha256, saq.sha256);
    });

    it('needs --reason to reject', async () => {
      const res = await cli(t, 'compliance', 'reject', merchant);
      assert.equal(res.code, 2);
      assert.match(res.stderr, /--reason is required/);
    });

    it('refuses to approve or reject when the documents waiting are no longer those named with --documents', async () => {
      const list = await cli(t, 'compliance', 'list', '--json');
      const seen = (JSON.parse(list.stdout) as Array<{ documents: Array<{ id: string }> }>)[0]!.documents.map((d) => d.id);
      const replaced = (await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 1), file: pdf('cli-copy') }), 201)).json();
      for (const args of [['approve', merchant], ['reject', merchant, '--reason', 'unsigned']]) {
        const res = await cli(t, 'compliance', ...args, '--documents', seen.join(','));
        assert.equal(res.code, 1, res.stdout);
        assert.match(res.stderr, new RegExp(`submission changed since it was reviewed: .*${replaced.id}`));
        // A script reviews what waits now from the refusal, as an API client does from the 409.
        const asJson = await cli(t, 'compliance', ...args, '--documents', seen.join(','), '--json');
        assert.equal(asJson.code, 1, asJson.stdout);
        const refusal = (JSON.parse(asJson.stderr) as { error: { code: string; pending_documents?: string[] } }).error;
        assert.equal(refusal.code, 'submission_changed');
        assert.ok(refusal.pending_documents?.includes(replaced.id), asJson.stderr);
      }
      const view = await t.gateway.services.compliance.status(merchant);
      assert.equal(view.status, 'pending');
      assert.equal(view.last_review, null);
    });

    it('approves, and the running gateway accepts live card data within the gate cache TTL', async () => {
      assertProblem(await postAuthorise(t, await exampleBody({ channel: LIVE_CHANNEL })), 403, 'compliance_required');
      const pending = (await t.gateway.services.compliance.status(merchant)).documents.filter((d) => d.status === 'pending').map((d) => d.id);
      const res = await cli(t, 'compliance', 'approve', merchant, '--documents', pending.join(','), '--json');
      assert.equal(res.code, 0, res.stderr);
      assert.equal(JSON.parse(res.stdout).status, 'approved');
      t.clock.advance(ComplianceGate.TTL_MS);
      const paid = await postAuthorise(t, await exampleBody({ channel: LIVE_CHANNEL }));
      assert.equal(paid.statusCode, 201, paid.body);
    });

    it('rejects a renewal with a reason and leaves the current approval in force', async () => {
      await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1) }), 201);
      const res = await cli(t, 'compliance', 'reject', merchant, '--reason', 'Scan report is for another domain', '--json');
      assert.equal(res.code, 0, res.stderr);
      const view = JSON.parse(res.stdout);
      assert.equal(view.status, 'approved');
      assert.equal(view.last_review.reason, 'Scan report is for another domain');
      const nothing = await cli(t, 'compliance', 'approve', merchant);
      assert.equal(nothing.code, 1);
      assert.match(nothing.stderr, /no complete submission/);
    });

    it('audits CLI actions as the operating-system user, from the cli', async () => {
      const rows = await t.gateway.services.ctx.database.db.selectFrom('audit_log').selectAll().where('source', '=', 'cli').orderBy('id').execute();
      const who = `operator:cli:${userInfo().username}`;
      const actions = rows.map((r) => `${r.action}:${r.outcome}`);
      for (const a of ['compliance.document.download:success', 'compliance.review.approve:success', 'compliance.review.reject:success', 'compliance.review.approve:refused', 'audit_log.read:success']) {
        assert.ok(actions.includes(a), `missing ${a} in ${actions.join(', ')}`);
      }
      assert.ok(rows.every((r) => r.actor === who && r.merchant_id === merchant));
    });
  });

  describe(`refused operator requests (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startComplianceGateway(dialect);
    });
    after(() => t.close());

    it('audits ten a minute one by one and counts the rest in the log: nobody can grow the audit table', async () => {
      const db = t.gateway.services.ctx.database.db;
      const refusals = async () => (await db.selectFrom('audit_log').select('id').where('action', '=', 'operator.authenticate').execute()).length;
      const guess = (i: number) => t.app.inject({ method: 'GET', url: '/operator/compliance/submissions', headers: { authorization: `Bearer guess-${i}` } });
      for (let i = 0; i < 50; i++) assertProblem(await guess(i), 401, 'unauthorized');
      assert.equal(await refusals(), 10);
      t.clock.advance(60_000);
      assertProblem(await guess(50), 401, 'unauthorized');
      assert.equal(await refusals(), 11, 'a new minute audits again');
    });

    it('writes the count of refusals not audited when the gateway stops within their minute', async () => {
      const lines: Array<{ msg: string; refused?: number }> = [];
      const log = pino({ level: 'warn' }, { write: (line: string) => lines.push(JSON.parse(line)) });
      const stopping = await startTestGateway({ dialect, env: { OPERATOR_TOKEN }, log });
      for (let i = 0; i < 13; i++) {
        assertProblem(await stopping.app.inject({ method: 'GET', url: '/operator/compliance/submissions', headers: { authorization: `Bearer guess-${i}` } }), 401, 'unauthorized');
      }
      await stopping.close();
      assert.deepEqual(lines.filter((l) => /beyond the audit budget/.test(l.msg)).map((l) => l.refused), [3]);
    });

    it("records the client's address behind a trusted proxy, and the sender's when it is not trusted", async () => {
      const lines: Array<{ msg: string; remote_address?: string }> = [];
      const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
      for (const [trust, expected] of [['127.0.0.1', '203.0.113.9'], ['10.0.0.0/8', '127.0.0.1']] as const) {
        lines.length = 0;
        const proxied = await startTestGateway({ dialect, env: { OPERATOR_TOKEN, TRUST_PROXY: trust }, log });
        try {
          const refusedRequest = await proxied.app.inject({ method: 'GET', url: '/operator/compliance/submissions', remoteAddress: '127.0.0.1', headers: { authorization: 'Bearer guess', 'x-forwarded-for': '203.0.113.9' } });
          assertProblem(refusedRequest, 401, 'unauthorized');
          const audit = await proxied.gateway.services.ctx.database.db.selectFrom('audit_log').select('source').where('action', '=', 'operator.authenticate').execute();
          assert.deepEqual(audit.map((r) => r.source), [`ip:${expected}`], trust);
          assert.deepEqual(lines.filter((l) => l.msg === 'request completed').map((l) => l.remote_address), [expected], trust);
        } finally {
          await proxied.close();
        }
      }
    });

    it('records the forwarding hop when X-Forwarded-For names no address: a card number there is not kept', async () => {
      const lines: Array<{ msg: string; remote_address?: string }> = [];
      const log = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
      const proxied = await startTestGateway({ dialect, env: { OPERATOR_TOKEN, TRUST_PROXY: 'loopback' }, log });
      try {
        for (const forwarded of ['4242 4242 4242 4242', '4242424242424242', '10.1.2.3, 5555-5555-5555-4444']) {
          const refused = await proxied.app.inject({ method: 'GET', url: '/operator/compliance/submissions', remoteAddress: '127.0.0.1', headers: { authorization: 'Bearer guess', 'x-forwarded-for': forwarded } });
          assertProblem(refused, 401, 'unauthorized');
        }
        const endpoint = await proxied.request({ method: 'POST', url: '/webhook-endpoints', remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '4242424242424242' }, payload: { url: 'http://127.0.0.1:9/x', events: ['*'] } });
        assert.equal(endpoint.statusCode, 201, endpoint.body);
        const audit = await proxied.gateway.services.ctx.database.db.selectFrom('audit_log').select('source').where('action', 'in', ['operator.authenticate', 'webhook_endpoint.create']).orderBy('id').execute();
        assert.deepEqual(audit.map((r) => r.source), ['ip:127.0.0.1', 'ip:127.0.0.1', 'ip:127.0.0.1', 'ip:127.0.0.1']);
        assert.deepEqual(lines.filter((l) => l.msg === 'request completed').map((l) => l.remote_address), ['127.0.0.1', '127.0.0.1', '127.0.0.1', '127.0.0.1']);
      } finally {
        await proxied.close();
      }
    });
  });

  describe(`operator API switched off (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startTestGateway({ dialect });
    });
    after(() => t.close());

    it('answers 404 on operator routes when OPERATOR_TOKEN is not set', async () => {
      assert.deepEqual(t.config.operatorTokens, []);
      for (const url of ['/operator/compliance/submissions', `/operator/compliance/merchants/${t.credentials.merchant_id}`]) {
        const res = await t.app.inject({ method: 'GET', url, headers: { authorization: 'Bearer anything' } });
        assertProblem(res, 404, 'route_not_found');
      }
      const merchantSide = await t.request({ method: 'GET', url: '/merchant/compliance' });
      assert.equal(merchantSide.statusCode, 200);
    });
  });
}

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { KEPT_SUPERSEDED_DOCUMENTS } from '../../src/app/compliance.js';
import { MAX_DOCUMENT_BYTES } from '../../src/domain/compliance.js';
import { DIALECTS, type TestGateway } from '../support/gateway.js';
import { assertProblem, createMerchant } from '../support/http.js';
import { dateDaysAgo, declareVolume, expectStatus, multipart, operator, pdf, startComplianceGateway, upload } from './fixtures.js';

function bigPdf(size: number): Buffer {
  const b = Buffer.alloc(size, 0x20);
  b.write('%PDF-1.4\n', 0);
  b.write('%%EOF\n', size - 6);
  return b;
}

for (const dialect of DIALECTS) {
  describe(`compliance documents (${dialect})`, () => {
    let t: TestGateway;
    before(async () => {
      t = await startComplianceGateway(dialect);
    });
    after(() => t.close());

    describe('upload checks', () => {
      it('refuses content that is not a PDF, even when declared application/pdf', async () => {
        const res = await upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1), file: Buffer.from('just some text, not a pdf %%EOF'), contentType: 'application/pdf' });
        const p = assertProblem(res, 415, 'document_not_pdf', '/file');
        assert.match(p.detail, /not a PDF/);
      });

      it('refuses a file declared as another type', async () => {
        const res = await upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1), file: pdf(), filename: 'scan.png', contentType: 'image/png' });
        assert.match(assertProblem(res, 415, 'document_not_pdf').detail, /image\/png/);
      });

      it('keeps a PDF named as something else from opening as it: the name always ends in .pdf', async () => {
        const res = await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1), file: pdf(), filename: 'scan.html' }), 201);
        const doc = res.json();
        assert.equal(doc.filename, 'scan.html.pdf');
        const download = await t.request({ method: 'GET', url: `/merchant/compliance/documents/${doc.id}` });
        assert.equal(download.headers['content-disposition'], 'attachment; filename="scan.html.pdf"');
      });

      it('refuses a file named with a card number, which would be stored and shown as sent', async () => {
        for (const filename of ['4242424242424242.pdf', 'card 5555 5555 5555 4444.pdf', 'receipt-378282246310005.pdf']) {
          const res = await upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1), file: pdf(), filename });
          assertProblem(res, 400, 'card_number_in_text', '/file/filename');
          assert.ok(!/4242424242|5555 5555|3782822463/.test(res.body), res.body);
        }
        // Dates and reference numbers in a name are kept.
        const res = await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1), file: pdf(), filename: 'asv 2026-11-01 ref 1732750000009.pdf' }), 201);
        assert.equal(res.json().filename, 'asv 2026-11-01 ref 1732750000009.pdf');
      });

      it('refuses a truncated PDF', async () => {
        const res = await upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1), file: Buffer.from('%PDF-1.4\n1 0 obj\n<<') });
        assertProblem(res, 422, 'document_incomplete', '/file');
      });

      it('refuses a document over 10 MiB with 413', async () => {
        const res = await upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 1), file: bigPdf(MAX_DOCUMENT_BYTES + 1) });
        assert.match(assertProblem(res, 413, 'document_too_large').detail, /10 MiB/);
      });

      it('refuses a body far over the limit from its Content-Length, before reading it', async () => {
        const form = multipart([{ name: 'file', value: Buffer.alloc(16), filename: 'x.pdf' }]);
        const res = await t.request({
          method: 'POST',
          url: '/merchant/compliance/documents',
          headers: { 'content-type': form.contentType, 'content-length': String(MAX_DOCUMENT_BYTES * 3) },
          payload: form.payload,
        });
        assertProblem(res, 413, 'document_too_large');
      });

      it('accepts exactly 10 MiB', async () => {
        const res = await upload(t, { type: 'saq', date: dateDaysAgo(t, 1), file: bigPdf(MAX_DOCUMENT_BYTES) });
        assert.equal(res.statusCode, 201, res.body);
        assert.equal(res.json().size_bytes, MAX_DOCUMENT_BYTES);
      });

      it('refuses an ASV scan older than 90 days and accepts one exactly 90 days old', async () => {
        const old = await upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 91) });
        assert.match(assertProblem(old, 422, 'asv_scan_too_old', '/document_date').detail, /at most 90 days/);
        const ok = await upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 90) });
        assert.equal(ok.statusCode, 201, ok.body);
      });

      it('names the field for a bad document type, a missing date, an unknown field and a JSON body', async () => {
        assertProblem(await upload(t, { type: 'pci', date: dateDaysAgo(t, 1) }), 400, 'invalid_document_type', '/document_type');
        const noDate = multipart([{ name: 'document_type', value: 'saq' }, { name: 'file', value: pdf(), filename: 'a.pdf' }]);
        assertProblem(await t.request({ method: 'POST', url: '/merchant/compliance/documents', headers: { 'content-type': noDate.contentType }, payload: noDate.payload }), 400, 'missing_field', '/document_date');
        const extra = multipart([{ name: 'document_type', value: 'saq' }, { name: 'comment', value: 'hi' }]);
        assertProblem(await t.request({ method: 'POST', url: '/merchant/compliance/documents', headers: { 'content-type': extra.contentType }, payload: extra.payload }), 400, 'unknown_field', '/comment');
        // param is a JSON pointer (RFC 6901): "/" and "~" in a name are escaped, as in JSON bodies.
        const slashed = multipart([{ name: 'document_type', value: 'saq' }, { name: 'notes/~1', value: 'hi' }]);
        assertProblem(await t.request({ method: 'POST', url: '/merchant/compliance/documents', headers: { 'content-type': slashed.contentType }, payload: slashed.payload }), 400, 'unknown_field', '/notes~1~01');
        const json = await t.request({ method: 'POST', url: '/merchant/compliance/documents', headers: { 'content-type': 'application/json' }, payload: '{"document_type":"saq"}' });
        assertProblem(json, 415, 'unsupported_media_type');
      });

      it('keeps a card number sent in a refused form out of the answer and out of the audit log', async () => {
        const db = t.gateway.services.ctx.database.db;
        const before = (await db.selectFrom('audit_log').select('id').where('action', '=', 'compliance.document.upload').execute()).length;
        const named = multipart([{ name: 'document_type', value: 'saq' }, { name: '4111 1111 1111 1111', value: 'x' }]);
        const declared = multipart([
          { name: 'document_type', value: 'saq' },
          { name: 'document_date', value: dateDaysAgo(t, 1) },
          { name: 'file', value: pdf(), filename: 'a.pdf', contentType: 'application/x-4111111111111111' },
        ]);
        const header = { contentType: 'multipart/form-data; boundary=abc', payload: Buffer.from('--abc\r\n4111111111111111\r\n\r\nv\r\n--abc--') };
        for (const [form, status, code] of [[named, 400, 'unknown_field'], [declared, 415, 'document_not_pdf'], [header, 400, 'invalid_multipart']] as const) {
          const res = await t.request({ method: 'POST', url: '/merchant/compliance/documents', headers: { 'content-type': form.contentType }, payload: form.payload });
          assertProblem(res, status, code);
          assert.doesNotMatch(res.body, /4111.?1111.?1111.?1111/);
        }
        const rows = await db.selectFrom('audit_log').select(['code', 'detail']).where('action', '=', 'compliance.document.upload').orderBy('id').execute();
        const refused = rows.slice(before);
        assert.deepEqual(refused.map((r) => r.code), ['unknown_field', 'document_not_pdf', 'invalid_multipart']);
        for (const r of refused) {
          assert.doesNotMatch(r.detail ?? '', /4111.?1111.?1111.?1111/, `a card number in the audit log: ${r.detail}`);
          assert.match(r.detail ?? '', /\[card number\]/);
        }
      });

      it('answers malformed multipart with 400, never 500', async () => {
        const cases: Array<[string, Buffer]> = [
          ['multipart/form-data', Buffer.from('--x\r\n\r\nno name\r\n--x--')],
          ['multipart/form-data; boundary=abc', Buffer.from('no boundary here')],
          ['multipart/form-data; boundary=abc', Buffer.from('--abc\r\nContent-Disposition: form-data; name="file"\r\n\r\nnever closed')],
          ['multipart/form-data; boundary=abc', Buffer.from('--abc\r\nX-Nothing: 1\r\n\r\nv\r\n--abc--')],
        ];
        for (const [contentType, payload] of cases) {
          const res = await t.request({ method: 'POST', url: '/merchant/compliance/documents', headers: { 'content-type': contentType }, payload });
          assert.equal(res.statusCode, 400, `${contentType}: ${res.body}`);
        }
      });
    });

    describe('replaced documents', () => {
      it('keeps the newest replaced ones only; the audit log keeps every upload', async () => {
        const other = await createMerchant(t, 'loop-' + randomBytes(3).toString('hex'));
        const headers = { 'x-secret-key': other.key.secret_key };
        const ids: string[] = [];
        for (let i = 0; i < KEPT_SUPERSEDED_DOCUMENTS + 3; i++) {
          ids.push((await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 2), file: pdf(`upload ${i}`) }, headers), 201)).json().id);
        }
        const view = (await expectStatus(t.request({ method: 'GET', url: '/merchant/compliance', headers }), 200)).json();
        const listed = (view.documents as Array<{ id: string; status: string }>).map((d) => `${d.id}:${d.status}`);
        const expected = ids.slice(2).reverse().map((id, n) => `${id}:${n === 0 ? 'pending' : 'superseded'}`);
        assert.deepEqual(listed, expected, 'the waiting one and the newest replaced ones, newest first');
        for (const [n, id] of ids.entries()) {
          const res = await t.request({ method: 'GET', url: `/merchant/compliance/documents/${id}`, headers });
          assert.equal(res.statusCode, n < 2 ? 404 : 200, `upload ${n}`);
          if (n >= 2) assert.ok(res.rawPayload.equals(pdf(`upload ${n}`)));
        }
        const audited = await t.gateway.services.ctx.database.db
          .selectFrom('audit_log')
          .select('target')
          .where('merchant_id', '=', other.merchantId)
          .where('action', '=', 'compliance.document.upload')
          .where('outcome', '=', 'success')
          .execute();
        assert.deepEqual(audited.map((r) => r.target).sort(), [...ids].sort());
      });

      it('never forgets a document an approval rested on, however many uploads replace others after it', async () => {
        const other = await createMerchant(t, 'renewed-' + randomBytes(3).toString('hex'));
        const headers = { 'x-secret-key': other.key.secret_key };
        const approve = () => expectStatus(operator(t, 'POST', `/operator/compliance/merchants/${other.merchantId}/approve`), 200);
        await expectStatus(declareVolume(t, 1000, headers), 200);
        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 10) }, headers), 201);
        const first = (await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 5), file: pdf('first approval') }, headers), 201)).json().id as string;
        await approve();
        // A renewal with a newer SAQ: the first one is superseded, having been approved.
        await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 2) }, headers), 201);
        await approve();
        for (let i = 0; i <= KEPT_SUPERSEDED_DOCUMENTS; i++) await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 1), file: pdf(`draft ${i}`) }, headers), 201);
        const view = (await expectStatus(t.request({ method: 'GET', url: '/merchant/compliance', headers }), 200)).json();
        const listed = (view.documents as Array<{ id: string; status: string; reviewed_at: string | null }>).find((d) => d.id === first);
        assert.equal(listed?.status, 'superseded', 'the first approval\'s SAQ is still listed');
        assert.ok(listed?.reviewed_at, 'with when it was reviewed');
        const download = await t.request({ method: 'GET', url: `/merchant/compliance/documents/${first}`, headers });
        assert.equal(download.statusCode, 200, download.body);
        assert.ok(download.rawPayload.equals(pdf('first approval')));
        const superseded = (view.documents as Array<{ status: string; reviewed_at: string | null }>).filter((d) => d.status === 'superseded' && d.reviewed_at === null);
        assert.equal(superseded.length, KEPT_SUPERSEDED_DOCUMENTS, 'replaced drafts nobody reviewed are still capped');
      });
    });

    describe('storage and access', () => {
      const marker = 'TZERO-SECRET-' + randomBytes(8).toString('hex');
      const filenameMarker = 'visible-name-' + randomBytes(4).toString('hex');
      let docId: string;
      let plaintext: Buffer;

      before(async () => {
        plaintext = pdf(marker);
        const res = await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 2), file: plaintext, filename: `${filenameMarker}.pdf` }), 201);
        docId = res.json().id;
        assert.equal(res.json().sha256, createHash('sha256').update(plaintext).digest('hex'));
      });

      it('stores the document encrypted: the database holds no plaintext', async () => {
        const row = await t.gateway.services.ctx.database.db.selectFrom('compliance_documents').selectAll().where('id', '=', docId).executeTakeFirstOrThrow();
        assert.ok(!row.content_ct.includes(marker));
        // iv.ciphertext.tag, each base64: none of them decodes to the plaintext.
        for (const segment of row.content_ct.split('.')) assert.ok(!Buffer.from(segment, 'base64').includes(marker));
        assert.equal(row.kek_id, t.gateway.services.ctx.vault.activeKekId);
        assert.notEqual(row.wrapped_dek, '');
        if (dialect === 'sqlite') {
          // The raw database files, as someone who copied them would read them.
          const files = ['gateway.sqlite', 'gateway.sqlite-wal'].map((f) => join(t.dataDir, f)).filter((f) => existsSync(f));
          const raw = Buffer.concat(files.map((f) => readFileSync(f)));
          assert.ok(raw.includes(filenameMarker), 'control: plaintext columns are visible in the raw file');
          assert.ok(!raw.includes(marker), 'the document content is readable in the database file');
          assert.ok(!raw.includes(plaintext.subarray(0, 40)), 'the PDF header is readable in the database file');
        } else {
          const db = t.gateway.services.ctx.database.db;
          const hits = await db.selectFrom('compliance_documents').select('id').where('content_ct', 'like', `%${marker}%`).execute();
          assert.equal(hits.length, 0);
          const control = await db.selectFrom('compliance_documents').select('id').where('filename', 'like', `%${filenameMarker}%`).execute();
          assert.equal(control.length, 1, 'control: the same search finds the filename, stored in the clear');
        }
      });

      it('gives the merchant its document back byte for byte, with its digest', async () => {
        const res = await t.request({ method: 'GET', url: `/merchant/compliance/documents/${docId}` });
        assert.equal(res.statusCode, 200);
        assert.equal(res.headers['content-type'], 'application/pdf');
        assert.match(String(res.headers['content-disposition']), new RegExp(`attachment; filename="${filenameMarker}.pdf"`));
        assert.equal(res.headers['repr-digest'], `sha-256=:${createHash('sha256').update(plaintext).digest('base64')}:`);
        assert.ok(res.rawPayload.equals(plaintext));
      });

      it('hides it from another merchant (404, like a missing one)', async () => {
        const other = await createMerchant(t, 'other-' + randomBytes(3).toString('hex'));
        const headers = { 'x-secret-key': other.key.secret_key };
        const res = await t.request({ method: 'GET', url: `/merchant/compliance/documents/${docId}`, headers });
        assertProblem(res, 404, 'document_not_found');
        const missing = await t.request({ method: 'GET', url: '/merchant/compliance/documents/doc_00000000000000000000000000000000', headers });
        assert.equal(missing.statusCode, 404);
        assert.equal(res.json().detail.replace(docId, 'X'), missing.json().detail.replace('doc_00000000000000000000000000000000', 'X'));
        const theirs = (await expectStatus(t.request({ method: 'GET', url: '/merchant/compliance', headers }), 200)).json();
        assert.deepEqual(theirs.documents, []);
      });

      it('lets the operator download it with the operator token', async () => {
        const res = await operator(t, 'GET', `/operator/compliance/documents/${docId}`);
        assert.equal(res.statusCode, 200);
        assert.ok(res.rawPayload.equals(plaintext));
      });

      it('needs the secret key', async () => {
        const res = await t.app.inject({ method: 'GET', url: `/merchant/compliance/documents/${docId}` });
        assertProblem(res, 401, 'unauthorized');
      });
    });

    describe('review', () => {
      it('rejects with a reason the merchant sees, and needs a reason', async () => {
        await expectStatus(declareVolume(t, 1000), 200);
        await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 3) }), 201);
        const url = `/operator/compliance/merchants/${t.credentials.merchant_id}/reject`;
        assertProblem(await operator(t, 'POST', url, { reason: '' }), 400, undefined, '/reason');
        assertProblem(await operator(t, 'POST', url, {}), 400, 'missing_field', '/reason');
        const list = (await expectStatus(operator(t, 'GET', '/operator/compliance/submissions'), 200)).json();
        assert.ok(list.data.some((s: { merchant_id: string }) => s.merchant_id === t.credentials.merchant_id), 'the complete submission is listed');
        await expectStatus(operator(t, 'POST', url, { reason: 'The ASV report is not signed by the vendor.' }), 200);
        const view = (await expectStatus(t.request({ method: 'GET', url: '/merchant/compliance' }), 200)).json();
        assert.equal(view.status, 'missing');
        assert.deepEqual(view.last_review, { outcome: 'rejected', reason: 'The ASV report is not signed by the vendor.', reviewed_at: view.last_review.reviewed_at });
        assert.ok(view.documents.filter((d: { status: string }) => d.status === 'rejected').length >= 2);
        assertProblem(await operator(t, 'POST', url, { reason: 'again' }), 409, 'nothing_to_review');
        assertProblem(await operator(t, 'POST', `/operator/compliance/merchants/mer_00000000000000000000000000000000/approve`), 404, 'merchant_not_found');
      });
    });

    describe('operator credential', () => {
      it('refuses a merchant secret key in every form, and a wrong token', async () => {
        const url = '/operator/compliance/submissions';
        const key = t.credentials.secret_key;
        for (const headers of [{ 'x-secret-key': key }, { authorization: `Bearer ${key}` }, { authorization: 'Bearer wrong' }, {}]) {
          const res = await t.app.inject({ method: 'GET', url, headers });
          assertProblem(res, 401, 'unauthorized', '/headers/authorization');
        }
        const approve = await t.app.inject({ method: 'POST', url: `/operator/compliance/merchants/${t.credentials.merchant_id}/approve`, headers: { 'x-secret-key': key } });
        assertProblem(approve, 401, 'unauthorized');
      });

      it('keeps operator routes out of the public API reference', async () => {
        const res = await t.app.inject({ method: 'GET', url: '/openapi.json' });
        assert.equal(res.statusCode, 200);
        assert.ok(!res.body.includes('/operator/'));
        assert.ok(res.body.includes('/merchant/compliance/documents'));
      });
    });

    describe('audit log', () => {
      it('holds who, what, when, from where and the outcome of every action', async () => {
        const rows = await t.gateway.services.ctx.database.db.selectFrom('audit_log').selectAll().orderBy('id').execute();
        const seen = new Set(rows.map((r) => `${r.action}:${r.outcome}`));
        for (const expected of [
          'compliance.document.upload:success',
          'compliance.document.upload:refused',
          'compliance.volume.declare:success',
          'compliance.document.download:success',
          'compliance.document.download:refused',
          'compliance.review.reject:success',
          'compliance.review.reject:refused',
          'compliance.review.approve:refused',
          'operator.authenticate:refused',
        ]) {
          assert.ok(seen.has(expected), `no audit row for ${expected}; have ${[...seen].join(', ')}`);
        }
        const merchant = t.credentials.merchant_id;
        const keys = await t.gateway.services.ctx.database.db.selectFrom('secret_keys').select('id').where('merchant_id', '=', merchant).execute();
        assert.equal(keys.length, 1);
        const merchantKey = `merchant:${merchant}/${keys[0]!.id}`;
        const reject = rows.find((r) => r.action === 'compliance.review.reject' && r.outcome === 'success')!;
        assert.equal(reject.actor, 'operator:api:alice');
        assert.equal(reject.source, 'ip:127.0.0.1');
        assert.equal(reject.merchant_id, merchant);
        assert.equal(typeof reject.at, 'number');
        const uploadOk = rows.find((r) => r.action === 'compliance.document.upload' && r.outcome === 'success')!;
        assert.equal(uploadOk.actor, merchantKey, 'the row names the key that acted');
        assert.match(uploadOk.target ?? '', /^doc_/);
        const tooOld = rows.find((r) => r.code === 'asv_scan_too_old')!;
        assert.equal(tooOld.outcome, 'refused');
        assert.equal(tooOld.actor, merchantKey);
        const operatorDownload = rows.find((r) => r.action === 'compliance.document.download' && r.actor === 'operator:api:alice')!;
        assert.equal(operatorDownload.merchant_id, merchant);
        assert.ok(rows.some((r) => r.action === 'compliance.document.upload' && r.code === 'document_too_large'), 'the 413 from the body limit is recorded');
        for (const r of rows) assert.ok(r.detail === null || !r.detail.includes('/Catalog'), 'audit details never carry document content');
      });
    });
  });
}

import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { DAY_MS } from '../../src/domain/compliance.js';
import { DIALECTS, type TestGateway } from '../support/gateway.js';
import { assertProblem } from '../support/http.js';
import { dateDaysAgo, declareVolume, expectStatus, operator, pdf, startComplianceGateway, upload } from './fixtures.js';

interface Doc {
  id: string;
  type: string;
  status: string;
}

for (const dialect of DIALECTS) {
  describe(`a review decision names the documents reviewed (${dialect})`, () => {
    let t: TestGateway;
    let base: string;
    beforeEach(async () => {
      t = await startComplianceGateway(dialect);
      base = `/operator/compliance/merchants/${t.credentials.merchant_id}`;
      await expectStatus(declareVolume(t, 1000), 200);
      await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 10) }), 201);
      await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 5), file: pdf('first saq') }), 201);
    });
    afterEach(() => t.close());

    async function reviewedIds(): Promise<string[]> {
      const list = (await expectStatus(operator(t, 'GET', '/operator/compliance/submissions'), 200)).json();
      return list.data[0].documents.map((d: Doc) => d.id);
    }

    async function merchantView() {
      return (await expectStatus(t.request({ method: 'GET', url: '/merchant/compliance' }), 200)).json();
    }

    it('refuses to approve a submission the merchant changed after the operator looked at it', async () => {
      const seen = await reviewedIds();
      const replaced = (await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 1), file: pdf('second saq, never reviewed') }), 201)).json();

      const refused = assertProblem(await operator(t, 'POST', `${base}/approve`, { documents: seen }), 409, 'submission_changed', '/documents');
      assert.match(refused.detail, new RegExp(replaced.id));
      assert.ok((refused.pending_documents as string[]).includes(replaced.id));
      let view = await merchantView();
      assert.equal(view.status, 'pending', 'nothing was approved');
      assert.equal(view.documents.find((d: Doc) => d.id === replaced.id).status, 'pending');

      // Nor rejected with a reason written about documents the merchant has since replaced.
      assertProblem(await operator(t, 'POST', `${base}/reject`, { reason: 'The SAQ is unsigned.', documents: seen }), 409, 'submission_changed', '/documents');
      assert.equal((await merchantView()).last_review, null);

      const approved = (await expectStatus(operator(t, 'POST', `${base}/approve`, { documents: await reviewedIds() }), 200)).json();
      assert.equal(approved.status, 'approved');
      view = await merchantView();
      assert.equal(view.documents.find((d: Doc) => d.id === replaced.id).status, 'approved');

      const audit = await t.gateway.services.ctx.database.db.selectFrom('audit_log').select(['action', 'outcome', 'code']).where('action', 'like', 'compliance.review.%').orderBy('id').execute();
      assert.deepEqual(
        audit.map((r) => `${r.action} ${r.outcome} ${r.code ?? ''}`.trim()),
        ['compliance.review.approve refused submission_changed', 'compliance.review.reject refused submission_changed', 'compliance.review.approve success'],
      );
    });

    it('takes a renewal named as the list shows it, with the documents carried over from the approval', async () => {
      await expectStatus(operator(t, 'POST', `${base}/approve`), 200);
      t.clock.advance(30 * DAY_MS);
      const renewal = (await expectStatus(upload(t, { type: 'saq', date: dateDaysAgo(t, 1), file: pdf('renewal saq') }), 201)).json();
      const listed = await reviewedIds();
      assert.ok(listed.length === 3 && listed.includes(renewal.id), 'the new SAQ beside the approved scan and SAQ');
      const view = (await expectStatus(operator(t, 'POST', `${base}/approve`, { documents: listed }), 200)).json();
      assert.equal(view.documents.find((d: Doc) => d.id === renewal.id).status, 'approved');
    });

    it('refuses a rejection reason quoting a card number, which callbacks, the API and the audit log would carry in clear', async () => {
      const refused = assertProblem(await operator(t, 'POST', `${base}/reject`, { reason: 'The SAQ shows a test card 4242 4242 4242 4242 in a screenshot.' }), 400, 'card_number_in_text', '/reason');
      assert.doesNotMatch(JSON.stringify(refused), /4242 4242/);
      assert.equal((await merchantView()).last_review, null, 'nothing was rejected');
      const audit = await t.gateway.services.ctx.database.db.selectFrom('audit_log').selectAll().where('action', '=', 'compliance.review.reject').execute();
      assert.equal(audit.length, 1);
      assert.doesNotMatch(JSON.stringify(audit), /4242 ?4242/);
    });

    it('rejects exactly the documents named, and names a bad list as the field', async () => {
      assertProblem(await operator(t, 'POST', `${base}/approve`, { documents: 'doc_1' }), 400, undefined, '/documents');
      assertProblem(await operator(t, 'POST', `${base}/approve`, { documents: [] }), 400, undefined, '/documents');
      assertProblem(await operator(t, 'POST', `${base}/approve`, { documents: ['doc_unknown'] }), 409, 'submission_changed');
      const rejected = (await expectStatus(operator(t, 'POST', `${base}/reject`, { reason: 'The ASV report is for another domain.', documents: await reviewedIds() }), 200)).json();
      assert.equal(rejected.last_review.outcome, 'rejected');
      // Decided already: nothing waits, which is not a changed submission.
      assertProblem(await operator(t, 'POST', `${base}/approve`, { documents: ['doc_unknown'] }), 409, 'nothing_to_review');
    });
  });
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { DomainError } from '../../src/domain/errors.js';
import {
  AOC_GRACE_PERIOD_DAYS,
  type ComplianceFacts,
  DAY_MS,
  MAX_DOCUMENT_BYTES,
  SAQ_MAX_ANNUAL_TRANSACTIONS,
  aocNowRequired,
  approvalValidUntil,
  attestationFor,
  cardDataRefusal,
  checkDocumentDate,
  checkPdf,
  complianceState,
  reminderDue,
  requiredDocuments,
} from '../../src/domain/compliance.js';

const NOW = Date.UTC(2025, 5, 15, 13, 30);
const daysAgo = (n: number) => new Date(NOW - n * DAY_MS).toISOString().slice(0, 10);

function refusedWith(fn: () => unknown, status: number, code: string): DomainError {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof DomainError, `expected a DomainError, got ${String(error)}`);
    assert.equal(error.status, status, error.message);
    assert.equal(error.code, code, error.message);
    return error;
  }
  assert.fail(`expected ${code}`);
}

describe('required documents by annual transactions', () => {
  it('asks for an SAQ up to and including 6,000,000 and an AOC from 6,000,001', () => {
    assert.equal(SAQ_MAX_ANNUAL_TRANSACTIONS, 6_000_000);
    assert.deepEqual(requiredDocuments(0), ['asv_scan', 'saq']);
    assert.deepEqual(requiredDocuments(5_999_999), ['asv_scan', 'saq']);
    assert.deepEqual(requiredDocuments(6_000_000), ['asv_scan', 'saq']);
    assert.deepEqual(requiredDocuments(6_000_001), ['asv_scan', 'aoc']);
  });

  it('always includes the ASV scan and exactly one attestation', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 40 }), (n) => {
        const docs = requiredDocuments(n);
        assert.equal(docs[0], 'asv_scan');
        assert.equal(docs.length, 2);
        assert.equal(docs[1], n > 6_000_000 ? 'aoc' : 'saq');
        assert.equal(attestationFor(n), docs[1]);
      }),
    );
  });
});

describe('document dates', () => {
  it('accepts an ASV scan 90 days old and refuses one 91 days old', () => {
    assert.doesNotThrow(() => checkDocumentDate('asv_scan', daysAgo(90), NOW));
    const e = refusedWith(() => checkDocumentDate('asv_scan', daysAgo(91), NOW), 422, 'asv_scan_too_old');
    assert.match(e.message, /91 days ago.*at most 90 days/);
    assert.equal(e.param, '/document_date');
  });

  it('lets an SAQ or AOC be used until its year ends, the day an approval resting on it would end', () => {
    assert.doesNotThrow(() => checkDocumentDate('saq', daysAgo(364), NOW));
    // Signed on this calendar day last year: its year ended at midnight, so no review could approve it.
    const e = refusedWith(() => checkDocumentDate('saq', daysAgo(365), NOW), 422, 'document_too_old');
    assert.match(e.message, /until 2025-06-15/);
    assert.equal(approvalValidUntil(NOW, [Date.parse(daysAgo(365))]) <= NOW, true, 'the approval would have ended before it began');
    refusedWith(() => checkDocumentDate('aoc', daysAgo(366), NOW), 422, 'document_too_old');
  });

  it('counts the year in calendar days across 29 February', () => {
    // Signed on 29 February: current through 27 February next year, until that day has ended in UTC-12.
    assert.doesNotThrow(() => checkDocumentDate('saq', '2024-02-29', Date.UTC(2025, 1, 28, 11, 59)));
    refusedWith(() => checkDocumentDate('saq', '2024-02-29', Date.UTC(2025, 1, 28, 12)), 422, 'document_too_old');
    // A year spanning 29 February has 366 days: signed on 1 March, current through the next 29 February.
    assert.doesNotThrow(() => checkDocumentDate('aoc', '2023-03-01', Date.UTC(2024, 2, 1, 11, 59)));
    refusedWith(() => checkDocumentDate('aoc', '2023-03-01', Date.UTC(2024, 2, 1, 12)), 422, 'document_too_old');
  });

  it('takes a date as the merchant wrote it, in its own time zone: a date has ended once it has ended in UTC-12', () => {
    // Scanned on 2025-03-17; its 90th day is 2025-06-15, which ends in UTC-12 at 2025-06-16 12:00 UTC.
    // A merchant in UTC-8 uploading late on its 90th day finds UTC already on the 91st.
    assert.doesNotThrow(() => checkDocumentDate('asv_scan', '2025-03-17', Date.UTC(2025, 5, 16, 7, 59)));
    assert.doesNotThrow(() => checkDocumentDate('asv_scan', '2025-03-17', Date.UTC(2025, 5, 16, 11, 59, 59, 999)));
    const scan = refusedWith(() => checkDocumentDate('asv_scan', '2025-03-17', Date.UTC(2025, 5, 16, 12)), 422, 'asv_scan_too_old');
    assert.match(scan.message, /91 days ago/);
    // An SAQ signed on 2025-05-10 is current through 2026-05-09, wherever that day is the merchant's.
    assert.doesNotThrow(() => checkDocumentDate('saq', '2025-05-10', Date.UTC(2026, 4, 10, 11, 59, 59, 999)));
    const saq = refusedWith(() => checkDocumentDate('saq', '2025-05-10', Date.UTC(2026, 4, 10, 12)), 422, 'document_too_old');
    assert.match(saq.message, /until 2026-05-10 12:00 UTC/);
  });

  it('refuses future dates beyond the time-zone day and impossible dates', () => {
    assert.doesNotThrow(() => checkDocumentDate('saq', daysAgo(-1), NOW));
    refusedWith(() => checkDocumentDate('saq', daysAgo(-2), NOW), 422, 'document_date_in_future');
    for (const bad of ['2025-02-30', '2025-13-01', '15/06/2025', '2025-6-1', '']) refusedWith(() => checkDocumentDate('asv_scan', bad, NOW), 400, 'invalid_document_date');
  });
});

describe('PDF content check', () => {
  const pdf = (body: string) => Buffer.from(`%PDF-1.7\n${body}\n%%EOF\n`);

  it('accepts a file with the PDF magic and an end-of-file marker', () => {
    assert.doesNotThrow(() => checkPdf(pdf('1 0 obj << >> endobj')));
  });

  it('refuses other content whatever it is called', () => {
    refusedWith(() => checkPdf(Buffer.from('PK\u0003\u0004 a zip file %%EOF')), 415, 'document_not_pdf');
    refusedWith(() => checkPdf(Buffer.from('<html>%PDF-1.4</html>')), 415, 'document_not_pdf');
    refusedWith(() => checkPdf(Buffer.alloc(0)), 422, 'document_empty');
  });

  it('refuses a truncated PDF (no %%EOF near the end)', () => {
    const truncated = Buffer.concat([Buffer.from('%PDF-1.4\n%%EOF\n'), Buffer.alloc(4096, 0x20)]);
    refusedWith(() => checkPdf(truncated), 422, 'document_incomplete');
    refusedWith(() => checkPdf(Buffer.from('%PDF-1.4\n1 0 obj')), 422, 'document_incomplete');
  });

  it('refuses more than 10 MiB', () => {
    const big = Buffer.alloc(MAX_DOCUMENT_BYTES + 1, 0x20);
    big.write('%PDF-1.4\n', 0);
    big.write('%%EOF\n', big.length - 6);
    refusedWith(() => checkPdf(big), 413, 'document_too_large');
    const exact = Buffer.alloc(MAX_DOCUMENT_BYTES, 0x20);
    exact.write('%PDF-1.4\n', 0);
    exact.write('%%EOF\n', exact.length - 6);
    assert.doesNotThrow(() => checkPdf(exact));
  });
});

describe('validity', () => {
  it('lasts one calendar year from approval', () => {
    assert.equal(approvalValidUntil(Date.UTC(2025, 2, 10, 8)), Date.UTC(2026, 2, 10, 8));
    assert.equal(approvalValidUntil(Date.UTC(2024, 1, 29, 12)), Date.UTC(2025, 1, 28, 12));
  });

  it("ends when the attestation's last day has ended in every time zone, as an upload of it would be refused", () => {
    const approvedAt = Date.UTC(2025, 4, 20, 9);
    const signed = Date.UTC(2025, 4, 10);
    assert.equal(approvalValidUntil(approvedAt, [signed]), Date.UTC(2026, 4, 10, 12));
    assert.doesNotThrow(() => checkDocumentDate('saq', '2025-05-10', approvalValidUntil(approvedAt, [signed]) - 1));
    refusedWith(() => checkDocumentDate('saq', '2025-05-10', approvalValidUntil(approvedAt, [signed])), 422, 'document_too_old');
  });

  it('ends no later than a year after the attestation it rests on was signed', () => {
    const approvedAt = Date.UTC(2026, 10, 28, 3);
    assert.equal(approvalValidUntil(approvedAt, [Date.UTC(2025, 10, 29)]), Date.UTC(2026, 10, 29, 12));
    assert.equal(approvalValidUntil(approvedAt, [Date.UTC(2026, 10, 20), Date.UTC(2026, 5, 1)]), Date.UTC(2027, 5, 1, 12));
    // Signed on the day of approval: a year from approval ends first.
    assert.equal(approvalValidUntil(approvedAt, [Date.UTC(2026, 10, 28)]), Date.UTC(2027, 10, 28, 3));
  });
});

describe('card data on live channels', () => {
  const approvedUntil = NOW + 10 * DAY_MS;

  it('needs an approval, refuses at the instant it expires', () => {
    assert.equal(cardDataRefusal(null, NOW)?.code, 'compliance_required');
    assert.equal(cardDataRefusal({ validUntil: null, aocRequiredSince: null }, NOW)?.code, 'compliance_required');
    assert.equal(cardDataRefusal({ validUntil: approvedUntil, aocRequiredSince: null }, approvedUntil - 1), null);
    assert.equal(cardDataRefusal({ validUntil: approvedUntil, aocRequiredSince: null }, approvedUntil)?.code, 'compliance_expired');
  });

  it('keeps an outgrown SAQ approval for the grace period only', () => {
    const since = NOW - 5 * DAY_MS;
    const graceEnd = since + AOC_GRACE_PERIOD_DAYS * DAY_MS;
    const facts = { validUntil: NOW + 300 * DAY_MS, aocRequiredSince: since };
    assert.equal(cardDataRefusal(facts, graceEnd - 1), null);
    const refusal = cardDataRefusal(facts, graceEnd);
    assert.equal(refusal?.code, 'compliance_required');
    assert.match(refusal!.message, /Attestation of Compliance/);
  });

  it('requires an AOC once an SAQ-based approval is outgrown, declared or counted', () => {
    assert.equal(aocNowRequired('saq', 6_000_000, 6_000_000), false);
    assert.equal(aocNowRequired('saq', 6_000_001, null), true);
    assert.equal(aocNowRequired('saq', 100, 6_000_001), true);
    assert.equal(aocNowRequired('aoc', 9_000_000, 9_000_000), false);
    assert.equal(aocNowRequired(null, 9_000_000, 9_000_000), false);
  });
});

describe('status', () => {
  const base: ComplianceFacts = { declaredTransactions: null, approval: null, aocRequiredSince: null, documents: [] };

  it('lists the volume and every document as missing at first', () => {
    const s = complianceState(base, NOW);
    assert.equal(s.status, 'missing');
    assert.deepEqual(s.missing, ['annual_transactions', 'asv_scan']);
    assert.equal(s.required, null);
  });

  it('is pending once a complete set waits for review, and an AOC covers the SAQ', () => {
    const partial = complianceState({ ...base, declaredTransactions: 1000, documents: [{ type: 'asv_scan', status: 'pending', document_date: daysAgo(5) }] }, NOW);
    assert.equal(partial.status, 'missing');
    assert.deepEqual(partial.missing, ['saq']);
    const complete = complianceState({ ...base, declaredTransactions: 1000, documents: [{ type: 'asv_scan', status: 'pending', document_date: daysAgo(5) }, { type: 'aoc', status: 'pending', document_date: daysAgo(5) }] }, NOW);
    assert.equal(complete.status, 'pending');
    assert.equal(complete.reviewPending, true);
    assert.deepEqual(complete.missing, []);
  });

  it('does not let an SAQ stand in for an AOC above 6,000,000', () => {
    const s = complianceState({ ...base, declaredTransactions: 6_000_001, documents: [{ type: 'asv_scan', status: 'pending', document_date: daysAgo(5) }, { type: 'saq', status: 'pending', document_date: daysAgo(5) }] }, NOW);
    assert.equal(s.status, 'missing');
    assert.deepEqual(s.missing, ['aoc']);
  });

  it('is approved while current, expired after, and expired documents no longer count', () => {
    const facts: ComplianceFacts = {
      ...base,
      declaredTransactions: 1000,
      approval: { approvedAt: NOW - DAY_MS, validUntil: NOW + DAY_MS, basis: 'saq' },
      documents: [{ type: 'asv_scan', status: 'approved', document_date: daysAgo(5) }, { type: 'saq', status: 'approved', document_date: daysAgo(5) }],
    };
    assert.equal(complianceState(facts, NOW).status, 'approved');
    const later = complianceState(facts, NOW + DAY_MS);
    assert.equal(later.status, 'expired');
    assert.deepEqual(later.missing, ['asv_scan', 'saq']);
    assert.equal(later.refusal?.code, 'compliance_expired');
  });

  it('counts a document only within its age, so a renewal beside an aged ASV scan is not complete', () => {
    const facts: ComplianceFacts = {
      ...base,
      declaredTransactions: 1000,
      approval: { approvedAt: NOW - 100 * DAY_MS, validUntil: NOW + 200 * DAY_MS, basis: 'saq' },
      documents: [
        { type: 'saq', status: 'pending', document_date: daysAgo(1) },
        { type: 'asv_scan', status: 'approved', document_date: daysAgo(91) },
        { type: 'saq', status: 'approved', document_date: daysAgo(101) },
      ],
    };
    const s = complianceState(facts, NOW);
    assert.equal(s.status, 'approved', 'the approval itself stands');
    assert.deepEqual(s.missing, ['asv_scan']);
    assert.equal(s.reviewPending, false);
    const waited = complianceState({ ...base, declaredTransactions: 1000, documents: [{ type: 'asv_scan', status: 'pending', document_date: daysAgo(91) }, { type: 'saq', status: 'pending', document_date: daysAgo(1) }] }, NOW);
    assert.equal(waited.status, 'missing');
    assert.deepEqual(waited.missing, ['asv_scan']);
  });

  it('shows the AOC as missing during the grace period without refusing yet', () => {
    const s = complianceState(
      {
        declaredTransactions: 6_000_001,
        approval: { approvedAt: NOW - DAY_MS, validUntil: NOW + 300 * DAY_MS, basis: 'saq' },
        aocRequiredSince: NOW,
        documents: [{ type: 'asv_scan', status: 'approved', document_date: daysAgo(5) }, { type: 'saq', status: 'approved', document_date: daysAgo(5) }],
      },
      NOW + DAY_MS,
    );
    assert.equal(s.status, 'approved');
    assert.deepEqual(s.missing, ['aoc']);
    assert.equal(s.aocGraceEndsAt, NOW + AOC_GRACE_PERIOD_DAYS * DAY_MS);
  });
});

describe('expiry reminders', () => {
  const expiry = NOW + 100 * DAY_MS;

  it('sends the 30-day reminder, then the 7-day one, each once', () => {
    assert.equal(reminderDue(expiry, expiry - 31 * DAY_MS, new Set()), null);
    assert.equal(reminderDue(expiry, expiry - 30 * DAY_MS, new Set()), 30);
    assert.equal(reminderDue(expiry, expiry - 20 * DAY_MS, new Set([30])), null);
    assert.equal(reminderDue(expiry, expiry - 7 * DAY_MS, new Set([30])), 7);
    assert.equal(reminderDue(expiry, expiry - 1 * DAY_MS, new Set([30, 7])), null);
    assert.equal(reminderDue(expiry, expiry, new Set()), null);
  });

  it('sends only the 7-day reminder when both are due at once', () => {
    assert.equal(reminderDue(expiry, expiry - 3 * DAY_MS, new Set()), 7);
  });
});

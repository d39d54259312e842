import { DomainError } from './errors.js';

/**
 * PCI DSS validation rules (seed step 1): which documents a merchant owes, how old they
 * may be, how long an approval lasts, and whether raw card data may be accepted now.
 * Pure functions of their inputs and `now` (epoch ms).
 */

export const DOCUMENT_TYPES = ['asv_scan', 'saq', 'aoc'] as const;
export type DocumentType = (typeof DOCUMENT_TYPES)[number];

export const DOCUMENT_LABELS: Record<DocumentType, string> = {
  asv_scan: 'ASV scan report',
  saq: 'Self-Assessment Questionnaire (SAQ)',
  aoc: 'Attestation of Compliance (AOC) signed by a QSA',
};

/** pending → approved | rejected; any of them → superseded when a newer one of the same type is approved. */
export type DocumentStatus = 'pending' | 'approved' | 'rejected' | 'superseded';

export type ComplianceStatus = 'approved' | 'expired' | 'pending' | 'missing';

/** Up to and including this many card transactions a year an SAQ suffices; above it an AOC is needed. */
export const SAQ_MAX_ANNUAL_TRANSACTIONS = 6_000_000;
export const ASV_SCAN_MAX_AGE_DAYS = 90;
/** Time to obtain an AOC once volume outgrows an SAQ-based approval, before card data is refused. */
export const AOC_GRACE_PERIOD_DAYS = 90;
export const REMINDER_DAYS_BEFORE_EXPIRY = [30, 7] as const;
export const MAX_DOCUMENT_BYTES = 10 * 1024 * 1024;
export const MAX_ANNUAL_TRANSACTIONS = 1_000_000_000_000;

export const DAY_MS = 86_400_000;

/** Outbox events about a merchant's compliance; each is also e-mailed to the merchant, whatever its channel's `notify_events`. */
export const COMPLIANCE_EVENT_TYPES = ['compliance.approved', 'compliance.rejected', 'compliance.expiring', 'compliance.expired', 'compliance.aoc_required'] as const;
export type ComplianceEventType = (typeof COMPLIANCE_EVENT_TYPES)[number];

export function isComplianceEvent(type: string): boolean {
  return type.startsWith('compliance.');
}

export function isDocumentType(v: string): v is DocumentType {
  return (DOCUMENT_TYPES as readonly string[]).includes(v);
}

export function attestationFor(annualTransactions: number): 'saq' | 'aoc' {
  return annualTransactions <= SAQ_MAX_ANNUAL_TRANSACTIONS ? 'saq' : 'aoc';
}

/** The ASV scan always; then an SAQ up to 6,000,000 transactions a year, an AOC above. */
export function requiredDocuments(annualTransactions: number): DocumentType[] {
  return ['asv_scan', attestationFor(annualTransactions)];
}

export function checkAnnualTransactions(n: unknown): number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > MAX_ANNUAL_TRANSACTIONS) {
    // The route's schema refuses it first, as out_of_range: the same code for the same rule.
    throw new DomainError(400, 'out_of_range', `annual_transactions must be a whole number of card transactions per year between 0 and ${MAX_ANNUAL_TRANSACTIONS}`, '/annual_transactions');
  }
  return n;
}

/** One calendar year later (UTC); 29 February falls back to 28 February. */
function aYearAfter(at: number): number {
  const d = new Date(at);
  const month = d.getUTCMonth();
  d.setUTCFullYear(d.getUTCFullYear() + 1);
  if (d.getUTCMonth() !== month) d.setUTCDate(0);
  return d.getTime();
}

/**
 * A document's date is written in the merchant's time zone, which we do not know: the day
 * it names has ended everywhere only twelve hours after the next UTC midnight, in the
 * westernmost zone (UTC-12). Ages are counted to then, so a merchant in the Americas is not
 * refused in its own afternoon because UTC has already moved on to the next day.
 */
const WESTERNMOST_ZONE_LAG_MS = 12 * 3_600_000;

/** The instant the calendar day starting at `dayStart` (UTC midnight) has ended in every time zone. */
function dayEndedEverywhere(dayStart: number): number {
  return dayStart + DAY_MS + WESTERNMOST_ZONE_LAG_MS;
}

/** An SAQ or AOC is current through the day before its anniversary, wherever that day is the merchant's. */
function attestationEnds(signedOn: number): number {
  return dayEndedEverywhere(aYearAfter(signedOn) - DAY_MS);
}

/** The last instant a scan dated `scannedOn` is at most 90 days old somewhere: its 90th day has then ended in UTC-12. */
function scanEnds(scannedOn: number): number {
  return dayEndedEverywhere(scannedOn + ASV_SCAN_MAX_AGE_DAYS * DAY_MS);
}

/**
 * A year from approval, but never beyond the year of the attestation (SAQ or AOC) it rests
 * on: validation is annual, and an SAQ signed 364 days before its review would otherwise
 * have carried card data for almost two years. The attestation's year ends as its upload
 * does (attestationEnds), so a document accepted at upload can be approved.
 */
export function approvalValidUntil(approvedAt: number, attestedOn: readonly number[] = []): number {
  return Math.min(aYearAfter(approvedAt), ...attestedOn.map(attestationEnds));
}

const iso = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const isoMinute = (ms: number) => `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;

const ISO_DATE = /^(\d{4})-(\d{2})-(\d{2})$/;

/** `YYYY-MM-DD` as midnight UTC, or null when it is not a real calendar date. */
export function parseDocumentDate(s: string): number | null {
  const m = ISO_DATE.exec(s);
  if (!m) return null;
  const ms = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
  return new Date(ms).toISOString().slice(0, 10) === s ? ms : null;
}

function startOfUtcDay(ms: number): number {
  return Math.floor(ms / DAY_MS) * DAY_MS;
}

/**
 * The date printed on the document: the scan's completion date for an ASV report, the
 * signature date for an SAQ or AOC. A scan is taken through its 90th day after the scan
 * and refused from its 91st, an SAQ or AOC (an annual attestation) through the day before
 * the same calendar day a year after its signature: one whose year has ended could only
 * ever be refused at review. Either day lasts until it has ended in every time zone
 * (dayEndedEverywhere). A date one day ahead of UTC is tolerated because the merchant's
 * time zone may already be there.
 */
export function checkDocumentDate(type: DocumentType, date: string, now: number): number {
  const day = parseDocumentDate(date);
  if (day === null) throw new DomainError(400, 'invalid_document_date', 'document_date must be a calendar date written YYYY-MM-DD, e.g. 2025-03-31', '/document_date');
  const problem = datedProblem(type, date, day, now);
  if (problem) throw problem;
  return day;
}

/** Whether a document still counts towards an approval made at `now`: the ages hold on the day of review too. */
export function documentCurrent(type: DocumentType, date: string, now: number): boolean {
  const day = parseDocumentDate(date);
  return day !== null && datedProblem(type, date, day, now) === null;
}

function datedProblem(type: DocumentType, date: string, day: number, now: number): DomainError | null {
  if (day > startOfUtcDay(now) + DAY_MS) return new DomainError(422, 'document_date_in_future', `document_date ${date} is in the future`, '/document_date');
  // The age as read in UTC-12, the zone where the date lasts longest, as the limits are.
  const ageDays = Math.max(0, Math.floor((now - WESTERNMOST_ZONE_LAG_MS - day) / DAY_MS));
  if (type === 'asv_scan' && now >= scanEnds(day)) {
    return new DomainError(
      422,
      'asv_scan_too_old',
      `the ASV scan report is dated ${date}, ${ageDays} days ago; it must be at most ${ASV_SCAN_MAX_AGE_DAYS} days old when submitted. Run a new scan with your Approved Scanning Vendor and upload that report`,
      '/document_date',
    );
  }
  if (type !== 'asv_scan' && attestationEnds(day) <= now) {
    return new DomainError(
      422,
      'document_too_old',
      `the ${DOCUMENT_LABELS[type]} is dated ${date}, ${ageDays} days ago; it was current for annual validation through ${iso(aYearAfter(day) - DAY_MS)}, until ${isoMinute(attestationEnds(day))} when that day had ended in every time zone. Upload one signed within the last year`,
      '/document_date',
    );
  }
  return null;
}

const PDF_MAGIC = Buffer.from('%PDF-');
const PDF_EOF = Buffer.from('%%EOF');
/** Writers may append whitespace or a little garbage after the last %%EOF; readers look back about 1 KiB. */
const EOF_WINDOW = 1024;

/** A PDF starts with `%PDF-` and ends with an `%%EOF` marker; the declared content type proves nothing. */
export function checkPdf(bytes: Uint8Array): void {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buf.length === 0) throw new DomainError(422, 'document_empty', 'the uploaded file is empty; attach the PDF in the "file" field', '/file');
  if (buf.length > MAX_DOCUMENT_BYTES) {
    throw new DomainError(413, 'document_too_large', `the document is ${buf.length} bytes; the limit is ${MAX_DOCUMENT_BYTES} bytes (10 MiB)`, '/file');
  }
  if (!buf.subarray(0, PDF_MAGIC.length).equals(PDF_MAGIC)) {
    throw new DomainError(415, 'document_not_pdf', 'the file is not a PDF (it does not start with "%PDF-"); only PDF documents are accepted', '/file');
  }
  if (buf.subarray(Math.max(0, buf.length - EOF_WINDOW)).indexOf(PDF_EOF) === -1) {
    throw new DomainError(422, 'document_incomplete', 'the PDF has no "%%EOF" trailer: the file looks truncated; upload the complete document', '/file');
  }
}

export interface Approval {
  approvedAt: number;
  validUntil: number;
  basis: 'saq' | 'aoc';
}

/** What the live-channel gate needs: one row per merchant. */
export interface GateFacts {
  validUntil: number | null;
  aocRequiredSince: number | null;
}

export interface Refusal {
  code: 'compliance_required' | 'compliance_expired';
  message: string;
}

export function aocGraceEndsAt(aocRequiredSince: number | null): number | null {
  return aocRequiredSince === null ? null : aocRequiredSince + AOC_GRACE_PERIOD_DAYS * DAY_MS;
}

/**
 * Whether raw card data may be accepted on a live channel now. Decided against `now`
 * every time, so an expiry takes effect at its instant even if the facts were cached.
 */
export function cardDataRefusal(facts: GateFacts | null, now: number): Refusal | null {
  const next = 'submit your documents with POST /merchant/compliance/documents and check GET /merchant/compliance';
  if (!facts || facts.validUntil === null) {
    return { code: 'compliance_required', message: `card data can be sent on live channels only once your PCI DSS compliance is approved; ${next}. Sandbox channels work meanwhile` };
  }
  if (facts.validUntil <= now) {
    return { code: 'compliance_expired', message: `your PCI DSS compliance validation expired on ${iso(facts.validUntil)}; annual validation is required: ${next}` };
  }
  const graceEnds = aocGraceEndsAt(facts.aocRequiredSince);
  if (graceEnds !== null && now >= graceEnds) {
    return {
      code: 'compliance_required',
      message: `your annual card transactions exceed ${SAQ_MAX_ANNUAL_TRANSACTIONS.toLocaleString('en-US')}, so an Attestation of Compliance signed by a QSA is required; the ${AOC_GRACE_PERIOD_DAYS}-day grace period ended on ${iso(graceEnds)}: ${next}`,
    };
  }
  return null;
}

/**
 * An SAQ-based approval stops sufficing once the merchant declares, or is counted at,
 * more than 6,000,000 transactions over twelve months.
 */
export function aocNowRequired(basis: 'saq' | 'aoc' | null, declared: number | null, counted: number | null): boolean {
  if (basis !== 'saq') return false;
  return (declared ?? 0) > SAQ_MAX_ANNUAL_TRANSACTIONS || (counted ?? 0) > SAQ_MAX_ANNUAL_TRANSACTIONS;
}

export type MissingItem = 'annual_transactions' | DocumentType;

export interface ComplianceFacts {
  declaredTransactions: number | null;
  /** Live authorisations of the last 12 months as last counted (a declaration cannot hide them). */
  countedTransactions?: number | null;
  approval: Approval | null;
  aocRequiredSince: number | null;
  documents: ReadonlyArray<{ type: DocumentType; status: DocumentStatus; document_date: string }>;
}

export interface ComplianceState {
  status: ComplianceStatus;
  /** Null until the annual volume is declared. */
  required: DocumentType[] | null;
  missing: MissingItem[];
  /** A complete set of documents awaits the operator's review (also during a current approval, for renewal). */
  reviewPending: boolean;
  refusal: Refusal | null;
  aocGraceEndsAt: number | null;
}

/**
 * Approved documents count only while their approval is current: annual validation
 * needs fresh documents once it lapses. Any document counts only while it is within its
 * age, as an approval requires: an approved ASV scan older than 90 days is missing from a
 * renewal, which would otherwise look complete to the merchant and yet never be approvable.
 * An AOC satisfies an SAQ requirement (it is the stronger attestation), never the reverse.
 */
export function complianceState(f: ComplianceFacts, now: number): ComplianceState {
  const current = f.approval !== null && f.approval.validUntil > now;
  const present = new Set(
    f.documents.filter((d) => (d.status === 'pending' || (current && d.status === 'approved')) && documentCurrent(d.type, d.document_date, now)).map((d) => d.type),
  );
  const needsAoc = Math.max(f.declaredTransactions ?? 0, f.countedTransactions ?? 0) > SAQ_MAX_ANNUAL_TRANSACTIONS || f.aocRequiredSince !== null;
  const required: DocumentType[] | null = f.declaredTransactions === null ? null : ['asv_scan', needsAoc ? 'aoc' : 'saq'];
  const missing: MissingItem[] = [];
  if (f.declaredTransactions === null) missing.push('annual_transactions');
  for (const type of required ?? ['asv_scan']) {
    const satisfied = present.has(type) || (type === 'saq' && present.has('aoc'));
    if (!satisfied) missing.push(type);
  }
  const reviewPending = missing.length === 0 && f.documents.some((d) => d.status === 'pending');
  const refusal = cardDataRefusal({ validUntil: f.approval?.validUntil ?? null, aocRequiredSince: f.aocRequiredSince }, now);
  let status: ComplianceStatus;
  if (refusal === null) status = 'approved';
  else if (reviewPending) status = 'pending';
  else if (refusal.code === 'compliance_expired') status = 'expired';
  else status = 'missing';
  return { status, required, missing, reviewPending, refusal, aocGraceEndsAt: aocGraceEndsAt(f.aocRequiredSince) };
}

/** Which expiry reminder is due, if any; `sent` holds the days-before values already sent for this expiry. */
export function reminderDue(validUntil: number, now: number, sent: ReadonlySet<number>): number | null {
  if (now >= validUntil) return null;
  const due = [...REMINDER_DAYS_BEFORE_EXPIRY].sort((a, b) => a - b).find((days) => now >= validUntil - days * DAY_MS);
  return due !== undefined && !sent.has(due) ? due : null;
}

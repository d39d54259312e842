import { createHash } from 'node:crypto';
import type { Kysely } from 'kysely';
import { DomainError } from '../domain/errors.js';
import { redactCardNumbers, refuseCardNumbers } from '../domain/card-number-in-text.js';
import { hasPrefix, quotedId } from '../domain/ids.js';
import {
  type Approval,
  type ComplianceEventType,
  type ComplianceState,
  DAY_MS,
  DOCUMENT_LABELS,
  type DocumentType,
  type GateFacts,
  type MissingItem,
  aocNowRequired,
  approvalValidUntil,
  cardDataRefusal,
  checkAnnualTransactions,
  checkDocumentDate,
  checkPdf,
  complianceState,
  isDocumentType,
  parseDocumentDate,
  reminderDue,
  REMINDER_DAYS_BEFORE_EXPIRY,
} from '../domain/compliance.js';
import type { ComplianceDocumentsTable, ComplianceProfilesTable, Schema } from '../adapters/storage/schema.js';
import type { Trx } from '../adapters/storage/database.js';
import type { AppContext } from './context.js';
import { type Actor, readAuditTrail, writeAudit } from './audit.js';
import { iso } from './payment-resource.js';
import { insertRow } from '../adapters/storage/compiled.js';
import { dispatchedOnWrite } from './event-interest.js';

export const WORKER_ACTOR: Actor = { who: 'system:compliance-worker', from: 'worker' };

export type DocumentRow = Omit<ComplianceDocumentsTable, 'kek_id' | 'wrapped_dek' | 'content_ct'>;

/** Payments one query of the yearly transaction count reads (about 10 ms of SQLite each). */
const COUNT_CHUNK = 10_000;
/** Replaced, never-reviewed documents kept a merchant (forgetOldSuperseded). */
export const KEPT_SUPERSEDED_DOCUMENTS = 10;

const DOCUMENT_COLUMNS = ['id', 'merchant_id', 'type', 'document_date', 'filename', 'size_bytes', 'sha256', 'status', 'uploaded_at', 'reviewed_at', 'review_reason'] as const;

const MISSING_DESCRIPTIONS: Record<MissingItem, string> = {
  annual_transactions: 'your annual number of card transactions (PUT /merchant/compliance/volume)',
  ...DOCUMENT_LABELS,
};

export function documentView(d: DocumentRow) {
  return {
    id: d.id,
    object: 'compliance_document' as const,
    type: d.type,
    document_date: d.document_date,
    filename: d.filename,
    size_bytes: d.size_bytes,
    sha256: d.sha256,
    status: d.status,
    uploaded_at: new Date(d.uploaded_at).toISOString(),
    reviewed_at: iso(d.reviewed_at),
    review_reason: d.review_reason,
  };
}

function approvalOf(p: ComplianceProfilesTable | undefined): Approval | null {
  if (!p || p.valid_until === null || p.approved_at === null || p.approved_basis === null) return null;
  return { approvedAt: p.approved_at, validUntil: p.valid_until, basis: p.approved_basis };
}

/** The 409 for a document past its age on the day of review; null while it is current. */
function outdatedAtApproval(d: DocumentRow, now: number): DomainError | null {
  try {
    checkDocumentDate(d.type, d.document_date, now);
    return null;
  } catch (error) {
    if (!(error instanceof DomainError)) throw error;
    return new DomainError(409, 'document_outdated', `cannot approve: ${d.id} is no longer current (${error.message}); ask the merchant for a new one`, undefined, { document_id: d.id });
  }
}

/**
 * Every document waiting for review must be among those the operator names, and each named
 * one must still be waiting or approved (carried over from the current approval, as the
 * operator's list shows them). Nothing pending is left to the usual nothing_to_review: a
 * decision already taken is not a changed submission.
 */
function unchangedSinceReview(docs: readonly DocumentRow[], reviewed: readonly string[] | undefined): void {
  if (reviewed === undefined) return;
  const pending = docs.filter((d) => d.status === 'pending');
  if (pending.length === 0) return;
  const named = new Set(reviewed);
  const standing = new Set(docs.filter((d) => d.status === 'pending' || d.status === 'approved').map((d) => d.id));
  if (pending.every((d) => named.has(d.id)) && reviewed.every((id) => standing.has(id))) return;
  throw new DomainError(
    409,
    'submission_changed',
    `the submission changed since it was reviewed: it now holds ${pending.map((d) => `${d.type} ${d.id}`).join(', ')}; review those documents and name them again`,
    '/documents',
    { pending_documents: pending.map((d) => d.id) },
  );
}

function stateOf(p: ComplianceProfilesTable | undefined, docs: readonly DocumentRow[], now: number): ComplianceState {
  return complianceState(
    { declaredTransactions: p?.declared_transactions ?? null, countedTransactions: p?.counted_transactions ?? null, approval: approvalOf(p), aocRequiredSince: p?.aoc_required_since ?? null, documents: docs },
    now,
  );
}

/** The merchant-facing summary; `documents` is left out of event payloads. */
export function complianceView(merchantId: string, p: ComplianceProfilesTable | undefined, docs: readonly DocumentRow[], now: number) {
  const s = stateOf(p, docs, now);
  return {
    object: 'compliance' as const,
    merchant_id: merchantId,
    status: s.status,
    card_data_on_live_channels: s.refusal === null ? ('accepted' as const) : ('refused' as const),
    refusal: s.refusal,
    annual_transactions: {
      declared: p?.declared_transactions ?? null,
      declared_at: iso(p?.declared_at ?? null),
      counted_last_12_months: p?.counted_transactions ?? null,
      counted_at: iso(p?.counted_at ?? null),
    },
    required_documents: s.required,
    missing: s.missing.map((item) => ({ item, description: MISSING_DESCRIPTIONS[item] })),
    review_pending: s.reviewPending,
    approved_at: iso(p?.approved_at ?? null),
    expires_at: iso(p?.valid_until ?? null),
    approved_basis: p?.approved_basis ?? null,
    aoc_required:
      p?.aoc_required_since != null
        ? { since: new Date(p.aoc_required_since).toISOString(), grace_period_ends_at: iso(s.aocGraceEndsAt), reason: 'annual card transactions above 6,000,000: an SAQ no longer suffices' }
        : null,
    last_review: p?.last_review_outcome
      ? { outcome: p.last_review_outcome, reason: p.last_review_reason, reviewed_at: iso(p.last_reviewed_at) }
      : null,
    documents: docs.slice(0, 50).map(documentView),
  };
}

export type ComplianceView = ReturnType<typeof complianceView>;

function emptyProfile(merchantId: string, now: number): ComplianceProfilesTable {
  return {
    merchant_id: merchantId,
    declared_transactions: null,
    declared_at: null,
    approved_at: null,
    valid_until: null,
    approved_basis: null,
    aoc_required_since: null,
    counted_transactions: null,
    counted_at: null,
    last_review_outcome: null,
    last_review_reason: null,
    last_reviewed_at: null,
    last_reviewed_by: null,
    reminded_for: null,
    reminded_days: null,
    expiry_notified_for: null,
    updated_at: now,
  };
}

/** Keeps what a download header can carry safely; the original name is only a hint. */
export function safeFilename(name: string | undefined, type: DocumentType): string {
  const base = (name ?? '').split(/[\\/]/).pop() ?? '';
  const cleaned = base.replace(/[^A-Za-z0-9._ -]/g, '_').replace(/^[.\s]+/, '').slice(0, 100).trim();
  if (!cleaned) return `${type}.pdf`;
  // Only PDFs are taken, and a file that is also HTML (a polyglot) must not open as a page
  // on the reviewer's machine because of the name it was uploaded under.
  return /\.pdf$/i.test(cleaned) ? cleaned : `${cleaned}.pdf`;
}


const gates = new WeakMap<AppContext, ComplianceGate>();

/**
 * The live-channel check on POST /payment/authorise: one primary-key lookup, cached per
 * merchant for a few seconds. The decision is taken against the clock on every call,
 * so an expiry bites at its instant even while the row is cached; approvals in this
 * process drop the cache at once, those made elsewhere (CLI) within the TTL.
 */
export class ComplianceGate {
  static readonly TTL_MS = 5_000;
  private static readonly MAX_ENTRIES = 10_000;
  private readonly cache = new Map<string, { facts: GateFacts | null; loadedAt: number }>();
  /** Moves on every forget(), so a read in flight across one does not put its old row back. */
  private generation = 0;

  static of(ctx: AppContext): ComplianceGate {
    let gate = gates.get(ctx);
    if (!gate) gates.set(ctx, (gate = new ComplianceGate(ctx)));
    return gate;
  }

  private constructor(private readonly ctx: AppContext) {}

  /** Sandbox channels and stored-card tokens pass; raw card data on a live channel needs a current approval. */
  async check(merchantId: string, channelMode: 'sandbox' | 'live', paymentMethodType: string): Promise<void> {
    if (channelMode !== 'live' || paymentMethodType !== 'card') return;
    const now = this.ctx.clock.now();
    const refusal = cardDataRefusal(await this.facts(merchantId, now), now);
    if (refusal) throw new DomainError(403, refusal.code, refusal.message, '/payment_method', { compliance_status: '/merchant/compliance' });
  }

  forget(merchantId: string): void {
    this.generation++;
    this.cache.delete(merchantId);
  }

  private async facts(merchantId: string, now: number): Promise<GateFacts | null> {
    const hit = this.cache.get(merchantId);
    if (hit && now - hit.loadedAt < ComplianceGate.TTL_MS && now >= hit.loadedAt) return hit.facts;
    const generation = this.generation;
    const row = await this.ctx.database.db
      .selectFrom('compliance_profiles')
      .select(['valid_until', 'aoc_required_since'])
      .where('merchant_id', '=', merchantId)
      .executeTakeFirst();
    const facts = row ? { validUntil: row.valid_until, aocRequiredSince: row.aoc_required_since } : null;
    if (generation !== this.generation) return facts;
    if (this.cache.size >= ComplianceGate.MAX_ENTRIES) this.cache.clear();
    this.cache.set(merchantId, { facts, loadedAt: now });
    return facts;
  }
}

export interface DocumentUpload {
  documentType: string | undefined;
  documentDate: string | undefined;
  filename: string | undefined;
  /** As the client declared it; the bytes are checked regardless. */
  contentType: string | undefined;
  bytes: Buffer | undefined;
}

const PDF_MEDIA_TYPES = ['application/pdf', 'application/x-pdf', 'application/octet-stream'];

type AuditWrite = (ex: Kysely<Schema>, detail?: Record<string, unknown>, subject?: { target?: string; merchantId?: string }) => Promise<void>;

/**
 * PCI DSS onboarding: documents, declared volume, operator review, annual expiry,
 * reminders and the volume recount. Every action writes an audit row, in the same
 * transaction as its effect when it has one, and a refusal row when it is refused.
 */
export class Compliance {
  constructor(private readonly ctx: AppContext) {}

  private get db() {
    return this.ctx.database.db;
  }

  async status(merchantId: string): Promise<ComplianceView> {
    const [profile, docs] = await Promise.all([this.profile(this.db, merchantId), this.documents(this.db, merchantId)]);
    return complianceView(merchantId, profile, docs, this.ctx.clock.now());
  }

  async submitDocument(actor: Actor, merchantId: string, upload: DocumentUpload) {
    return this.act(actor, 'compliance.document.upload', merchantId, null, async (audit) => {
      const type = upload.documentType?.trim() ?? '';
      if (!isDocumentType(type)) {
        throw new DomainError(400, 'invalid_document_type', 'document_type must be one of asv_scan (ASV scan report), saq (Self-Assessment Questionnaire) or aoc (Attestation of Compliance)', '/document_type');
      }
      if (upload.documentDate === undefined) throw new DomainError(400, 'missing_field', 'document_date is required: the date printed on the document, YYYY-MM-DD', '/document_date');
      if (upload.bytes === undefined) throw new DomainError(400, 'missing_field', 'attach the PDF as the "file" field of the multipart form', '/file');
      const declared = upload.contentType?.split(';')[0]!.trim().toLowerCase();
      if (declared && !PDF_MEDIA_TYPES.includes(declared)) {
        throw new DomainError(415, 'document_not_pdf', `the file is declared as ${declared.slice(0, 80)}; only PDF documents (application/pdf) are accepted`, '/file');
      }
      const now = this.ctx.clock.now();
      checkDocumentDate(type, upload.documentDate.trim(), now);
      checkPdf(upload.bytes);
      const filename = safeFilename(upload.filename, type);
      // The name is kept in clear, shown to the merchant and the reviewer and written to the audit log.
      refuseCardNumbers({ file: { filename } });

      const id = this.ctx.newId('document');
      const sealed = this.ctx.vault.sealBytes(id, upload.bytes);
      const row: ComplianceDocumentsTable = {
        id,
        merchant_id: merchantId,
        type,
        document_date: upload.documentDate.trim(),
        filename,
        size_bytes: upload.bytes.length,
        sha256: createHash('sha256').update(upload.bytes).digest('hex'),
        kek_id: sealed.kek_id,
        wrapped_dek: sealed.wrapped_dek,
        content_ct: sealed.ct,
        status: 'pending',
        uploaded_at: now,
        reviewed_at: null,
        review_reason: null,
      };
      return this.ctx.database.transaction(async (trx) => {
        await this.lockProfile(trx, merchantId, now);
        // The newest upload of a type replaces an earlier one still waiting for review.
        await trx.updateTable('compliance_documents').set({ status: 'superseded' }).where('merchant_id', '=', merchantId).where('type', '=', type).where('status', '=', 'pending').execute();
        await this.forgetOldSuperseded(trx, merchantId);
        await trx.insertInto('compliance_documents').values(row).execute();
        await audit(trx, { document_type: type, document_date: row.document_date, filename: row.filename, size_bytes: row.size_bytes, sha256: row.sha256 }, { target: id });
        const { content_ct: _c, kek_id: _k, wrapped_dek: _w, ...doc } = row;
        const profile = await this.profile(trx, merchantId);
        const view = complianceView(merchantId, profile, await this.documents(trx, merchantId), now);
        return { ...documentView(doc), compliance: { status: view.status, review_pending: view.review_pending, missing: view.missing } };
      });
    });
  }

  async declareVolume(actor: Actor, merchantId: string, annualTransactions: unknown): Promise<ComplianceView> {
    const view = await this.act(actor, 'compliance.volume.declare', merchantId, null, async (audit) => {
      const n = checkAnnualTransactions(annualTransactions);
      const now = this.ctx.clock.now();
      return this.ctx.database.transaction(async (trx) => {
        const p = await this.lockProfile(trx, merchantId, now);
        const next = { ...p, declared_transactions: n, declared_at: now, updated_at: now };
        await trx.updateTable('compliance_profiles').set({ declared_transactions: n, declared_at: now, updated_at: now }).where('merchant_id', '=', merchantId).execute();
        await this.updateAocRequirement(trx, next, now);
        await audit(trx, { annual_transactions: n });
        return complianceView(merchantId, await this.profile(trx, merchantId), await this.documents(trx, merchantId), now);
      });
    });
    ComplianceGate.of(this.ctx).forget(merchantId);
    return view;
  }

  /** The merchant's own documents only; another merchant's id answers like a missing one. */
  async download(actor: Actor, documentId: string, merchantId: string | null): Promise<{ filename: string; sha256: string; bytes: Buffer }> {
    return this.act(actor, 'compliance.document.download', merchantId, hasPrefix(documentId, 'document') ? documentId : null, async (audit) => {
      let q = this.db.selectFrom('compliance_documents').selectAll().where('id', '=', documentId);
      if (merchantId !== null) q = q.where('merchant_id', '=', merchantId);
      const row = await q.executeTakeFirst();
      if (!row) throw new DomainError(404, 'document_not_found', `no compliance document ${quotedId(documentId, 'document')}${merchantId ? " for this secret key's merchant" : ''}`, '/params/id');
      const bytes = this.ctx.vault.openBytes(row.id, { kek_id: row.kek_id, wrapped_dek: row.wrapped_dek, ct: row.content_ct });
      if (createHash('sha256').update(bytes).digest('hex') !== row.sha256) throw new Error(`compliance document ${row.id} does not match its digest`);
      await audit(this.db, { sha256: row.sha256 }, { merchantId: row.merchant_id });
      return { filename: row.filename, sha256: row.sha256, bytes };
    });
  }

  /**
   * The review queue for the metrics scrape: documents waiting for review and the oldest one's
   * wait, in one query over the pending documents' partial index. It counts documents of sets
   * still incomplete too (listPending leaves those merchants out): reading every merchant's
   * status at each scrape would grow with the merchants.
   */
  async reviewQueue(): Promise<{ pending: number; oldestAgeSeconds: number }> {
    const row = await this.db
      .selectFrom('compliance_documents')
      .select((eb) => [eb.fn.countAll<number>().as('n'), eb.fn.min('uploaded_at').as('oldest')])
      .where('status', '=', 'pending')
      .executeTakeFirstOrThrow();
    const oldest = row.oldest === null ? null : Number(row.oldest);
    return { pending: Number(row.n), oldestAgeSeconds: oldest === null ? 0 : Math.max(0, (this.ctx.clock.now() - oldest) / 1000) };
  }

  /** Merchants whose complete set of documents awaits review, oldest submission first. */
  async listPending() {
    const merchants = await this.db
      .selectFrom('compliance_documents')
      .innerJoin('merchants', 'merchants.id', 'compliance_documents.merchant_id')
      .select(['merchants.id', 'merchants.name'])
      .select((eb) => eb.fn.max('compliance_documents.uploaded_at').as('submitted_at'))
      .where('compliance_documents.status', '=', 'pending')
      .groupBy(['merchants.id', 'merchants.name'])
      .orderBy('submitted_at')
      .execute();
    const out = [];
    for (const m of merchants) {
      const view = await this.status(m.id);
      if (!view.review_pending) continue;
      out.push({
        merchant_id: m.id,
        merchant_name: m.name,
        submitted_at: new Date(Number(m.submitted_at)).toISOString(),
        status: view.status,
        annual_transactions: view.annual_transactions.declared,
        required_documents: view.required_documents,
        documents: view.documents.filter((d) => d.status === 'pending' || (d.status === 'approved' && view.status === 'approved')),
      });
    }
    return out;
  }

  /**
   * `reviewed`, when given, names the documents waiting for review that the operator looked
   * at: a submission that changed since (a document uploaded or replaced meanwhile) is refused
   * rather than approved unseen.
   */
  async approve(actor: Actor, merchantId: string, reviewed?: readonly string[]): Promise<ComplianceView> {
    const view = await this.act(actor, 'compliance.review.approve', merchantId, null, async (audit) => {
      await this.requireMerchant(merchantId);
      const now = this.ctx.clock.now();
      return this.ctx.database.transaction(async (trx) => {
        const p = await this.lockProfile(trx, merchantId, now);
        const docs = await this.documents(trx, merchantId);
        unchangedSinceReview(docs, reviewed);
        const state = stateOf(p, docs, now);
        if (!state.reviewPending) throw this.nothingToReview(state, docs, now);
        const current = approvalOf(p);
        const set = new Map<DocumentType, DocumentRow>();
        for (const d of docs) {
          const eligible = d.status === 'pending' || (d.status === 'approved' && current !== null && current.validUntil > now);
          const held = set.get(d.type);
          // docs are newest first; a pending upload wins over an earlier approval of the same type.
          if (eligible && (!held || (held.status === 'approved' && d.status === 'pending'))) set.set(d.type, d);
        }
        // Dates were checked at upload; a document that waited for review, or one carried over
        // from the current approval into a renewal, must still be current at approval.
        for (const d of set.values()) {
          const outdated = outdatedAtApproval(d, now);
          if (outdated) throw outdated;
        }
        // The attestation the approval rests on: the AOC when the volume asks for one; otherwise
        // whichever of SAQ and AOC was signed last (a fresh SAQ renews beside an older AOC).
        const saq = set.get('saq');
        const aoc = set.get('aoc');
        const attestation = state.required?.includes('aoc') || !saq ? aoc! : !aoc || saq.document_date >= aoc.document_date ? saq : aoc;
        const basis = attestation.type as 'saq' | 'aoc';
        const validUntil = approvalValidUntil(now, [parseDocumentDate(attestation.document_date)!]);
        if (validUntil <= now) {
          throw new DomainError(409, 'document_outdated', `cannot approve: ${attestation.id} was signed a year ago or more, so annual validation needs a new one; ask the merchant for it`, undefined, { document_id: attestation.id });
        }
        const approvedIds = [...set.values()].map((d) => d.id);
        await trx.updateTable('compliance_documents').set({ status: 'approved', reviewed_at: now, review_reason: null }).where('id', 'in', approvedIds).where('status', '=', 'pending').execute();
        await trx
          .updateTable('compliance_documents')
          .set({ status: 'superseded' })
          .where('merchant_id', '=', merchantId)
          .where('status', 'in', ['approved', 'pending'])
          .where('id', 'not in', approvedIds)
          .execute();
        await trx
          .updateTable('compliance_profiles')
          .set({
            approved_at: now,
            valid_until: validUntil,
            approved_basis: basis,
            aoc_required_since: null,
            last_review_outcome: 'approved',
            last_review_reason: null,
            last_reviewed_at: now,
            last_reviewed_by: actor.who,
            updated_at: now,
          })
          .where('merchant_id', '=', merchantId)
          .execute();
        await audit(trx, { documents: approvedIds, basis, valid_until: new Date(validUntil).toISOString(), reviewed_documents_named: reviewed !== undefined });
        const view = complianceView(merchantId, await this.profile(trx, merchantId), await this.documents(trx, merchantId), now);
        await this.notify(trx, merchantId, 'compliance.approved', view, now);
        return view;
      });
    });
    ComplianceGate.of(this.ctx).forget(merchantId);
    return view;
  }

  /** Rejecting a renewal leaves a current approval in force until it expires; `reviewed` as for approve. */
  async reject(actor: Actor, merchantId: string, reason: string | undefined, reviewed?: readonly string[]): Promise<ComplianceView> {
    const view = await this.act(actor, 'compliance.review.reject', merchantId, null, async (audit) => {
      const why = reason?.trim() ?? '';
      if (!why || why.length > 1000) throw new DomainError(400, 'invalid_reason', 'a rejection needs a reason of 1-1000 characters; the merchant sees it', '/reason');
      // The reason goes out in callbacks and the merchant's API view, and is kept in the audit log, all in clear.
      refuseCardNumbers({ reason: why });
      await this.requireMerchant(merchantId);
      const now = this.ctx.clock.now();
      return this.ctx.database.transaction(async (trx) => {
        await this.lockProfile(trx, merchantId, now);
        unchangedSinceReview(await this.documents(trx, merchantId), reviewed);
        const pending = await trx.selectFrom('compliance_documents').select('id').where('merchant_id', '=', merchantId).where('status', '=', 'pending').execute();
        if (pending.length === 0) throw new DomainError(409, 'nothing_to_review', `merchant ${merchantId} has no documents waiting for review`);
        const ids = pending.map((d) => d.id);
        await trx.updateTable('compliance_documents').set({ status: 'rejected', reviewed_at: now, review_reason: why }).where('id', 'in', ids).execute();
        await trx
          .updateTable('compliance_profiles')
          .set({ last_review_outcome: 'rejected', last_review_reason: why, last_reviewed_at: now, last_reviewed_by: actor.who, updated_at: now })
          .where('merchant_id', '=', merchantId)
          .execute();
        await audit(trx, { documents: ids, reason: why });
        const view = complianceView(merchantId, await this.profile(trx, merchantId), await this.documents(trx, merchantId), now);
        await this.notify(trx, merchantId, 'compliance.rejected', view, now);
        return view;
      });
    });
    ComplianceGate.of(this.ctx).forget(merchantId);
    return view;
  }

  /**
   * The operator's view: the merchant's status and its recent compliance audit rows (a read
   * itself audited). Only `compliance.*`: the merchant's keys write a row for every capture,
   * void and refund, which would push a busy merchant's uploads and reviews out of the page.
   */
  async show(actor: Actor, merchantId: string) {
    await this.requireMerchant(merchantId);
    return { ...(await this.status(merchantId)), audit_log: await readAuditTrail(this.ctx, actor, merchantId, 50, 'compliance.') };
  }

  /**
   * Card transactions authorised on the merchant's live channels over the last 365 days,
   * counted `chunk` payments at a time in id order with a turn of the event loop between:
   * on SQLite a query holds the event loop while it runs, and one count over a merchant's
   * million payments held it for seconds.
   */
  async countedTransactions(merchantId: string, now: number, chunk = COUNT_CHUNK): Promise<number> {
    let total = 0;
    let after = '';
    for (;;) {
      const edge = await this.db
        .selectFrom('payments')
        .select('id')
        .where('merchant_id', '=', merchantId)
        .where('id', '>', after)
        .orderBy('id')
        .offset(chunk - 1)
        .limit(1)
        .executeTakeFirst();
      let count = this.db
        .selectFrom('payments')
        .innerJoin('channels', 'channels.id', 'payments.channel_id')
        .select((eb) => eb.fn.countAll().as('n'))
        .where('payments.merchant_id', '=', merchantId)
        .where('payments.id', '>', after)
        .where('channels.mode', '=', 'live')
        .where('payments.authorised_at', '>=', now - 365 * DAY_MS);
      if (edge) count = count.where('payments.id', '<=', edge.id);
      total += Number((await count.executeTakeFirst())?.n ?? 0);
      if (!edge) return total;
      after = edge.id;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Recounts volumes at most daily per merchant; an SAQ-based approval outgrown starts the AOC grace period. */
  async recountDue(batch = 50): Promise<number> {
    const now = this.ctx.clock.now();
    const due = await this.db
      .selectFrom('compliance_profiles')
      .select('merchant_id')
      .where((eb) => eb.or([eb('counted_at', 'is', null), eb('counted_at', '<=', now - DAY_MS)]))
      .orderBy('merchant_id')
      .limit(batch)
      .execute();
    for (const { merchant_id } of due) {
      const counted = await this.countedTransactions(merchant_id, now);
      await this.ctx.database.transaction(async (trx) => {
        const p = await this.lockProfile(trx, merchant_id, now);
        await trx.updateTable('compliance_profiles').set({ counted_transactions: counted, counted_at: now }).where('merchant_id', '=', merchant_id).execute();
        await this.updateAocRequirement(trx, { ...p, counted_transactions: counted }, now);
      });
      ComplianceGate.of(this.ctx).forget(merchant_id);
    }
    return due.length;
  }

  /** Expiry reminders (30 and 7 days before) and the expiry notice, each sent once per expiry date. */
  async sendDueNotices(batch = 100): Promise<number> {
    const now = this.ctx.clock.now();
    // Only rows that still owe a notice, so a batch never fills up with ones already sent.
    const rows = await this.db
      .selectFrom('compliance_profiles')
      .select(['merchant_id', 'valid_until', 'reminded_for', 'reminded_days'])
      .where('valid_until', 'is not', null)
      .where((eb) =>
        eb.or([
          eb.and([eb('valid_until', '<=', now), eb.or([eb('expiry_notified_for', 'is', null), eb('expiry_notified_for', '<>', eb.ref('valid_until'))])]),
          ...REMINDER_DAYS_BEFORE_EXPIRY.map((days) =>
            eb.and([
              eb('valid_until', '>', now),
              eb('valid_until', '<=', now + days * DAY_MS),
              eb.or([eb('reminded_for', 'is', null), eb('reminded_for', '<>', eb.ref('valid_until')), eb('reminded_days', '>', days)]),
            ]),
          ),
        ]),
      )
      .orderBy('valid_until')
      .limit(batch)
      .execute();
    let sent = 0;
    for (const r of rows) {
      const validUntil = r.valid_until!;
      if (validUntil <= now) {
        const claim = (trx: Trx) =>
          trx
            .updateTable('compliance_profiles')
            .set({ expiry_notified_for: validUntil })
            .where('merchant_id', '=', r.merchant_id)
            .where('valid_until', '=', validUntil)
            .where((eb) => eb.or([eb('expiry_notified_for', 'is', null), eb('expiry_notified_for', '<>', validUntil)]))
            .executeTakeFirst();
        if (await this.sendNotice(r.merchant_id, 'compliance.expired', now, claim, {})) {
          sent++;
          // The merchant is told by its notice; the operator, whose review it now waits for, here (once: the claim above).
          this.ctx.log.warn(
            { merchant_id: r.merchant_id, valid_until: new Date(validUntil).toISOString() },
            "a merchant's PCI DSS validation expired: its live channels refuse card data until a new submission is approved",
          );
        }
        continue;
      }
      const already = new Set(r.reminded_for === validUntil && r.reminded_days !== null ? REMINDER_DAYS_BEFORE_EXPIRY.filter((d) => d >= r.reminded_days!) : []);
      const days = reminderDue(validUntil, now, already);
      if (days === null) continue;
      const claim = (trx: Trx) =>
        trx
          .updateTable('compliance_profiles')
          .set({ reminded_for: validUntil, reminded_days: days })
          .where('merchant_id', '=', r.merchant_id)
          .where('valid_until', '=', validUntil)
          .where((eb) => eb.or([eb('reminded_for', 'is', null), eb('reminded_for', '<>', validUntil), eb('reminded_days', '>', days)]))
          .executeTakeFirst();
      // The reminder due at 30 days goes out later when the approval was granted closer to its
      // end or the workers were stopped: it tells the days really left (rounded up, as the e-mail does).
      const daysLeft = Math.min(days, Math.ceil((validUntil - now) / DAY_MS));
      if (await this.sendNotice(r.merchant_id, 'compliance.expiring', now, claim, { days_before_expiry: daysLeft })) sent++;
    }
    return sent;
  }

  /** Re-wraps document data keys under the active KEK (`vault rotate`). */
  async rewrapDocuments(): Promise<number> {
    const active = this.ctx.vault.activeKekId;
    let count = 0;
    for (;;) {
      const rows = await this.db.selectFrom('compliance_documents').select(['id', 'kek_id', 'wrapped_dek']).where('kek_id', '!=', active).limit(200).execute();
      if (rows.length === 0) return count;
      await this.ctx.database.transaction(async (trx) => {
        for (const r of rows) {
          await trx.updateTable('compliance_documents').set(this.ctx.vault.rewrap(r.id, r)).where('id', '=', r.id).where('kek_id', '=', r.kek_id).execute();
        }
      });
      count += rows.length;
    }
  }

  /** For refusals that happen before a use case runs (malformed upload, bad operator credential). */
  async recordRefusal(actor: Actor, action: string, merchantId: string | null, error: unknown): Promise<void> {
    await this.recordFailure(actor, action, merchantId, null, error);
  }

  private async sendNotice(
    merchantId: string,
    type: ComplianceEventType,
    now: number,
    claim: (trx: Trx) => Promise<{ numUpdatedRows: bigint }>,
    extra: Record<string, unknown>,
  ): Promise<boolean> {
    return this.ctx.database.transaction(async (trx) => {
      // The conditional update is the claim: a second worker finds nothing left to claim.
      if (Number((await claim(trx)).numUpdatedRows) !== 1) return false;
      const view = complianceView(merchantId, await this.profile(trx, merchantId), await this.documents(trx, merchantId), now);
      const eventId = await this.notify(trx, merchantId, type, view, now, extra);
      await writeAudit(this.ctx, trx, { actor: WORKER_ACTOR, action: `compliance.notice.${type.split('.')[1]}`, merchantId, target: eventId, outcome: eventId ? 'success' : 'refused', code: eventId ? null : 'no_channel', detail: extra });
      return true;
    });
  }

  private async updateAocRequirement(trx: Trx, p: ComplianceProfilesTable, now: number): Promise<void> {
    const current = approvalOf(p);
    const basis = current && current.validUntil > now ? current.basis : null;
    const required = aocNowRequired(basis, p.declared_transactions, p.counted_transactions);
    if (required && p.aoc_required_since === null) {
      await trx.updateTable('compliance_profiles').set({ aoc_required_since: now, updated_at: now }).where('merchant_id', '=', p.merchant_id).execute();
      const view = complianceView(p.merchant_id, await this.profile(trx, p.merchant_id), await this.documents(trx, p.merchant_id), now);
      const eventId = await this.notify(trx, p.merchant_id, 'compliance.aoc_required', view, now);
      await writeAudit(this.ctx, trx, { actor: WORKER_ACTOR, action: 'compliance.aoc_required', merchantId: p.merchant_id, target: eventId, outcome: 'success', detail: { declared: p.declared_transactions, counted: p.counted_transactions } });
    } else if (!required && p.aoc_required_since !== null) {
      await trx.updateTable('compliance_profiles').set({ aoc_required_since: null, updated_at: now }).where('merchant_id', '=', p.merchant_id).execute();
    }
  }

  /**
   * Writes an outbox event for the notification dispatcher (e-mail to the channel's
   * notify addresses, callbacks). Compliance belongs to the merchant, not a payment, so
   * payment_id is null and the event rides on one of its channels: a live one with
   * notification addresses first, so the merchant's first live channel having none does not
   * leave its reminders unsent while another live channel has some. Any live channel comes
   * before a sandbox one with addresses: the notices are about live card data, and an
   * endpoint filtered to the live channel (as webhooks.md advises) must still be called.
   */
  private async notify(trx: Trx, merchantId: string, type: ComplianceEventType, view: ComplianceView, now: number, extra: Record<string, unknown> = {}): Promise<string | null> {
    const channels = await trx.selectFrom('channels').select(['id', 'mode', 'notify_emails']).where('merchant_id', '=', merchantId).orderBy('id').execute();
    const addressed = channels.filter((c) => (JSON.parse(c.notify_emails) as string[]).length > 0);
    const channel = addressed.find((c) => c.mode === 'live') ?? channels.find((c) => c.mode === 'live') ?? addressed[0] ?? channels[0];
    if (!channel) return null;
    const id = this.ctx.newId('event');
    const { documents: _d, ...object } = view;
    const body = JSON.stringify({ id, object: 'event', type, created_at: new Date(now).toISOString(), sequence: 0, data: { object: { ...object, ...extra } } });
    const dispatched = dispatchedOnWrite(this.ctx, { merchant_id: merchantId, channel_id: channel.id, type, created_at: now });
    await insertRow(trx, 'events', { id, merchant_id: merchantId, channel_id: channel.id, payment_id: null, type, sequence: 0, created_at: now, body, dispatched });
    return id;
  }

  private nothingToReview(state: ComplianceState, docs: readonly DocumentRow[], now: number): DomainError {
    // A submission incomplete because one of its own documents aged while waiting names that document.
    for (const d of docs) {
      if (d.status !== 'pending' || !(state.missing as readonly string[]).includes(d.type)) continue;
      const outdated = outdatedAtApproval(d, now);
      if (outdated) return outdated;
    }
    if (state.missing.length && docs.some((d) => d.status === 'pending')) {
      return new DomainError(409, 'submission_incomplete', `the submission cannot be approved yet: missing ${state.missing.map((m) => MISSING_DESCRIPTIONS[m]).join(', ')}`);
    }
    return new DomainError(409, 'nothing_to_review', 'this merchant has no complete submission waiting for review');
  }

  private async requireMerchant(merchantId: string): Promise<void> {
    const row = await this.db.selectFrom('merchants').select('id').where('id', '=', merchantId).executeTakeFirst();
    if (!row) throw new DomainError(404, 'merchant_not_found', `no merchant ${quotedId(merchantId, 'merchant')}`, '/params/merchantId');
  }

  private profile(ex: Kysely<Schema>, merchantId: string): Promise<ComplianceProfilesTable | undefined> {
    return ex.selectFrom('compliance_profiles').selectAll().where('merchant_id', '=', merchantId).executeTakeFirst();
  }

  private documents(ex: Kysely<Schema>, merchantId: string): Promise<DocumentRow[]> {
    return ex.selectFrom('compliance_documents').select(DOCUMENT_COLUMNS).where('merchant_id', '=', merchantId).orderBy('id', 'desc').execute();
  }

  /**
   * Replaced documents nobody reviewed are kept for reference, the newest few only: a merchant
   * uploading in a loop would otherwise fill the disk 10 MB at a time, and every compliance
   * view reads all its rows. Each upload's digest, size and file name stay in the audit log.
   * A renewal's approval supersedes the documents approved before: those an earlier approval
   * (and its audit row) rests on, reviewed, are never deleted here.
   */
  private async forgetOldSuperseded(trx: Trx, merchantId: string): Promise<void> {
    const kept = trx
      .selectFrom('compliance_documents')
      .select('id')
      .where('merchant_id', '=', merchantId)
      .where('status', '=', 'superseded')
      .where('reviewed_at', 'is', null)
      .orderBy('id', 'desc')
      .limit(KEPT_SUPERSEDED_DOCUMENTS);
    await trx
      .deleteFrom('compliance_documents')
      .where('merchant_id', '=', merchantId)
      .where('status', '=', 'superseded')
      .where('reviewed_at', 'is', null)
      .where('id', 'not in', kept)
      .execute();
  }

  /** Creates the profile on first use and locks it, so one merchant's compliance changes one at a time. */
  private async lockProfile(trx: Trx, merchantId: string, now: number): Promise<ComplianceProfilesTable> {
    await trx.insertInto('compliance_profiles').values(emptyProfile(merchantId, now)).onConflict((oc) => oc.column('merchant_id').doNothing()).execute();
    let q = trx.selectFrom('compliance_profiles').selectAll().where('merchant_id', '=', merchantId);
    if (this.ctx.database.caps.rowLocks) q = q.forUpdate();
    return q.executeTakeFirstOrThrow();
  }

  private async act<T>(actor: Actor, action: string, merchantId: string | null, target: string | null, fn: (audit: AuditWrite) => Promise<T>): Promise<T> {
    try {
      return await fn((ex, detail, subject) =>
        writeAudit(this.ctx, ex, { actor, action, merchantId: subject?.merchantId ?? merchantId, target: subject?.target ?? target, outcome: 'success', detail: detail ?? null }),
      );
    } catch (error) {
      await this.recordFailure(actor, action, merchantId, target, error);
      throw error;
    }
  }

  private async recordFailure(actor: Actor, action: string, merchantId: string | null, target: string | null, error: unknown): Promise<void> {
    const refused = error instanceof DomainError;
    try {
      await writeAudit(this.ctx, this.db, {
        actor,
        action,
        merchantId,
        target,
        outcome: refused ? 'refused' : 'failed',
        code: refused ? error.code : 'internal_error',
        // Messages quote what was sent (a form field's name, a declared type): the answer's
        // redaction (src/http/problem.ts) never reaches this row, and a card number must not be kept.
        detail: refused ? { status: error.status, message: redactCardNumbers(error.message) } : null,
      });
    } catch (auditError) {
      this.ctx.log.error({ err: auditError, action, merchantId }, 'could not write the audit row of a refused compliance action');
    }
  }


}

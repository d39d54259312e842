import { createHash, timingSafeEqual } from 'node:crypto';
import type { Readable } from 'node:stream';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../../app/services.js';
import type { OperatorToken } from '../../config.js';
import type { Actor } from '../../app/audit.js';
import { DOCUMENT_TYPES, MAX_ANNUAL_TRANSACTIONS, MAX_DOCUMENT_BYTES } from '../../domain/compliance.js';
import { DomainError, escapePointer } from '../../domain/errors.js';
import { holdsCardNumber } from '../../domain/card-number-in-text.js';
import { problem, sendProblem } from '../problem.js';
import { clientAddress, merchantActor } from '../auth.js';
import { sendOperatorJson as sendJson } from '../json-reply.js';
import { metricsRoute } from './metrics.js';
import { operatorMerchantRoutes } from './operator-merchants.js';
import { PaymentIdParams } from './payments.js';
import { Nullable, StrictObject, Timestamp, problemResponses } from '../schemas/common.js';

/* ---------- multipart/form-data (RFC 7578), parsed here so no dependency is needed ---------- */

/** Room for the form fields and part headers around the largest accepted document. */
const MULTIPART_LIMIT = MAX_DOCUMENT_BYTES + 64 * 1024;
const MAX_PARTS = 8;
const MAX_PART_HEADER_BYTES = 4096;
const MAX_FIELD_BYTES = 1024;

interface Part {
  name: string;
  filename: string | undefined;
  contentType: string | undefined;
  data: Buffer;
}

/** What the multipart parser hands to the handler; a class so a JSON body cannot pose as one. */
class MultipartBody {
  constructor(readonly parts: Part[]) {}
}

const badMultipart = (detail: string) => new DomainError(400, 'invalid_multipart', `the multipart/form-data body is malformed: ${detail}`);

function tooLarge(): DomainError {
  return new DomainError(413, 'document_too_large', `the upload is larger than ${MULTIPART_LIMIT} bytes; a document may be at most ${MAX_DOCUMENT_BYTES} bytes (10 MiB)`, '/file');
}

function boundaryOf(contentType: string): string {
  const m = /;\s*boundary=(?:"([^"]{1,70})"|([^;\s]{1,70}))/i.exec(contentType);
  if (!m) throw new DomainError(400, 'invalid_multipart', 'Content-Type: multipart/form-data needs a boundary parameter', '/headers/content-type');
  return (m[1] ?? m[2])!;
}

/**
 * Reads at most `limit` bytes. Past the limit it stops collecting but lets the rest
 * drain instead of destroying the socket, so the client still receives the 413.
 */
function readLimited(payload: Readable, declaredLength: number, limit: number): Promise<Buffer> {
  if (declaredLength > limit) {
    payload.resume();
    return Promise.reject(tooLarge());
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      payload.removeListener('error', onError);
    };
    const onData = (chunk: Buffer | string) => {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      size += buf.length;
      if (size > limit) {
        cleanup();
        payload.resume();
        reject(tooLarge());
        return;
      }
      chunks.push(buf);
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks, size));
    };
    const onError = (error: Error) => {
      cleanup();
      reject(error);
    };
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', onError);
  });
}

function headerParams(value: string): Map<string, string> {
  const params = new Map<string, string>();
  for (const m of value.matchAll(/;\s*([A-Za-z0-9_*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/g)) {
    params.set(m[1]!.toLowerCase(), m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : m[3]!.trim());
  }
  return params;
}

function parsePartHeaders(block: string): Omit<Part, 'data'> {
  let disposition: string | undefined;
  let contentType: string | undefined;
  for (const line of block.split('\r\n')) {
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw badMultipart(`part header "${line.slice(0, 40)}" has no name`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (name === 'content-disposition') disposition = value;
    else if (name === 'content-type') contentType = value;
  }
  if (!disposition || !/^form-data\s*(;|$)/i.test(disposition)) throw badMultipart('every part needs Content-Disposition: form-data; name="…"');
  const params = headerParams(disposition);
  const name = params.get('name');
  if (!name) throw badMultipart('a part has no name');
  return { name, filename: params.get('filename'), contentType };
}

export function parseMultipart(body: Buffer, boundary: string): Part[] {
  const delimiter = Buffer.from(`--${boundary}`);
  const separator = Buffer.from(`\r\n--${boundary}`);
  const parts: Part[] = [];
  let pos = body.indexOf(delimiter);
  if (pos === -1) throw badMultipart(`no "--${boundary}" boundary line; is the boundary in Content-Type the one used in the body?`);
  for (;;) {
    pos += delimiter.length;
    if (body[pos] === 0x2d && body[pos + 1] === 0x2d) return parts;
    const lineEnd = body.indexOf('\r\n', pos);
    if (lineEnd === -1) throw badMultipart('the body ends inside a boundary line');
    const headerEnd = body.indexOf('\r\n\r\n', lineEnd);
    if (headerEnd === -1 || headerEnd - lineEnd > MAX_PART_HEADER_BYTES) throw badMultipart('a part has no blank line after its headers');
    const next = body.indexOf(separator, headerEnd + 4);
    if (next === -1) throw badMultipart('the body ends before the closing boundary');
    parts.push({ ...parsePartHeaders(body.subarray(lineEnd + 2, headerEnd).toString('utf8')), data: body.subarray(headerEnd + 4, next) });
    if (parts.length > MAX_PARTS) throw badMultipart(`more than ${MAX_PARTS} parts`);
    pos = next + 2;
  }
}

/** document_type, document_date and file, each at most once; anything else is named back. */
function uploadFields(parts: Part[]) {
  const seen = new Set<string>();
  const fields: Record<string, string> = {};
  let file: Part | undefined;
  for (const p of parts) {
    if (seen.has(p.name)) throw new DomainError(400, 'duplicate_field', `the form field "${p.name.slice(0, 40)}" appears more than once`, `/${p.name.slice(0, 40)}`);
    seen.add(p.name);
    if (p.name === 'file') {
      file = p;
    } else if (p.name === 'document_type' || p.name === 'document_date') {
      if (p.data.length > MAX_FIELD_BYTES) throw new DomainError(400, 'too_long', `${p.name} is too long`, `/${p.name}`);
      fields[p.name] = p.data.toString('utf8');
    } else {
      throw new DomainError(400, 'unknown_field', `"${p.name.slice(0, 40)}" is not a field of this form; send document_type, document_date and file`, `/${escapePointer(p.name.slice(0, 40))}`);
    }
  }
  return { fields, file };
}

/* ---------- schemas ---------- */

const DocumentTypeSchema = Type.Union(DOCUMENT_TYPES.map((t) => Type.Literal(t)));

const ComplianceDocument = Type.Object(
  {
    id: Type.String({ description: 'doc_…' }),
    object: Type.Literal('compliance_document'),
    type: DocumentTypeSchema,
    document_date: Type.String({ format: 'date', description: 'The date printed on the document (scan completion or signature).' }),
    filename: Type.String(),
    size_bytes: Type.Integer(),
    sha256: Type.String({ description: 'Hex SHA-256 of the uploaded bytes; compare with your copy.' }),
    status: Type.Union([Type.Literal('pending'), Type.Literal('approved'), Type.Literal('rejected'), Type.Literal('superseded')]),
    uploaded_at: Timestamp,
    reviewed_at: Nullable(Timestamp),
    review_reason: Nullable(Type.String()),
  },
);

const Missing = Type.Array(Type.Object({ item: Type.String({ description: 'annual_transactions, asv_scan, saq or aoc' }), description: Type.String() }), {
  description: 'What an approvable submission still needs. A document counts only within its age on the day: an ASV scan past 90 days, or an SAQ or AOC past its year, is listed again (also during a current approval, for the renewal).',
});

export const ComplianceStatus = Type.Object(
  {
    object: Type.Literal('compliance'),
    merchant_id: Type.String(),
    status: Type.Union([Type.Literal('approved'), Type.Literal('expired'), Type.Literal('pending'), Type.Literal('missing')]),
    card_data_on_live_channels: Type.Union([Type.Literal('accepted'), Type.Literal('refused')]),
    refusal: Nullable(Type.Object({ code: Type.String(), message: Type.String() })),
    annual_transactions: Type.Object({
      declared: Nullable(Type.Integer()),
      declared_at: Nullable(Timestamp),
      counted_last_12_months: Nullable(Type.Integer({ description: 'Card payments authorised on your live channels over the last 365 days, recounted daily.' })),
      counted_at: Nullable(Timestamp),
    }),
    required_documents: Nullable(Type.Array(DocumentTypeSchema)),
    missing: Missing,
    review_pending: Type.Boolean({ description: 'A complete set of documents is waiting for review.' }),
    approved_at: Nullable(Timestamp),
    expires_at: Nullable(Timestamp),
    approved_basis: Nullable(Type.Union([Type.Literal('saq'), Type.Literal('aoc')])),
    aoc_required: Nullable(Type.Object({ since: Timestamp, grace_period_ends_at: Timestamp, reason: Type.String() })),
    last_review: Nullable(Type.Object({ outcome: Type.String(), reason: Nullable(Type.String()), reviewed_at: Nullable(Timestamp) })),
    documents: Type.Array(ComplianceDocument),
  },
);

const UploadForm = Type.Object({
  document_type: DocumentTypeSchema,
  document_date: Type.String({ format: 'date', description: 'The date printed on the document (YYYY-MM-DD).' }),
  file: Type.String({ contentMediaType: 'application/pdf', description: 'The PDF, at most 10 MiB.' }),
});

const UploadedDocument = Type.Object({
  ...ComplianceDocument.properties,
  compliance: Type.Object({ status: Type.String(), review_pending: Type.Boolean(), missing: Missing }),
});

const VolumeBody = StrictObject({
  annual_transactions: Type.Integer({ minimum: 0, maximum: MAX_ANNUAL_TRANSACTIONS, description: 'Card transactions you process per year: up to 6,000,000 an SAQ suffices, above it an AOC is required.' }),
});

const DocumentParams = Type.Object({ id: Type.String({ maxLength: 64, description: 'doc_…' }) });
const MerchantParams = Type.Object({ merchantId: Type.String({ maxLength: 64 }) });
const ReviewedDocuments = Type.Array(Type.String({ maxLength: 64 }), {
  minItems: 1,
  maxItems: 16,
  uniqueItems: true,
  description: 'The ids (doc_…) of the documents waiting for review that you reviewed; a submission that changed since is refused with 409 submission_changed.',
});
const ApproveBody = StrictObject({ documents: Type.Optional(ReviewedDocuments) });
const RejectBody = StrictObject({ reason: Type.String({ minLength: 1, maxLength: 1000 }), documents: Type.Optional(ReviewedDocuments) });

/* ---------- routes ---------- */


function sendPdf(reply: FastifyReply, doc: { filename: string; sha256: string; bytes: Buffer }): FastifyReply {
  return reply
    .header('content-type', 'application/pdf')
    .header('content-disposition', `attachment; filename="${doc.filename}"`)
    .header('repr-digest', `sha-256=:${Buffer.from(doc.sha256, 'hex').toString('base64')}:`)
    .header('x-content-type-options', 'nosniff')
    .header('cache-control', 'no-store')
    .send(doc.bytes);
}

const merchantRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    const compliance = services.compliance;
    // Scoped to this plugin: the rest of the API stays JSON-only.
    app.addContentTypeParser('multipart/form-data', async (request: FastifyRequest, payload: Readable) => {
      try {
        const boundary = boundaryOf(request.headers['content-type'] ?? '');
        const body = await readLimited(payload, Number(request.headers['content-length'] ?? 0), MULTIPART_LIMIT);
        return new MultipartBody(parseMultipart(body, boundary));
      } catch (error) {
        await compliance.recordRefusal(merchantActor(request), 'compliance.document.upload', request.merchantId || null, error);
        throw error;
      }
    });

    app.post(
      '/merchant/compliance/documents',
      {
        onRequest: app.requireSecretKey,
        config: { requestForm: UploadForm, whileSuspended: true },
        schema: {
          tags: ['compliance'],
          summary: 'Upload a PCI DSS document',
          description:
            'multipart/form-data with `document_type` (asv_scan, saq or aoc), `document_date` (YYYY-MM-DD, the date printed on the document) and `file` (the PDF, at most 10 MiB). ' +
            'The content must be a PDF (starts with %PDF-, ends with %%EOF). An ASV scan older than 90 days is refused. Stored encrypted; the answer carries its SHA-256.',
          security: [{ secretKey: [] }],
          response: { 201: UploadedDocument, ...problemResponses(400, 401, 413, 415, 422) },
        },
      },
      async (request, reply) => {
        if (!(request.body instanceof MultipartBody)) {
          const error = new DomainError(415, 'unsupported_media_type', 'send the document as multipart/form-data with fields document_type, document_date and file', '/headers/content-type');
          await compliance.recordRefusal(merchantActor(request), 'compliance.document.upload', request.merchantId, error);
          throw error;
        }
        let form: ReturnType<typeof uploadFields>;
        try {
          form = uploadFields(request.body.parts);
        } catch (error) {
          await compliance.recordRefusal(merchantActor(request), 'compliance.document.upload', request.merchantId, error);
          throw error;
        }
        const doc = await compliance.submitDocument(merchantActor(request), request.merchantId, {
          documentType: form.fields.document_type,
          documentDate: form.fields.document_date,
          filename: form.file?.filename,
          contentType: form.file?.contentType,
          bytes: form.file?.data,
        });
        return sendJson(reply.header('location', `/merchant/compliance/documents/${doc.id}`), 201, doc);
      },
    );

    app.put<{ Body: { annual_transactions: number } }>(
      '/merchant/compliance/volume',
      {
        onRequest: app.requireSecretKey,
        config: { whileSuspended: true },
        schema: {
          tags: ['compliance'],
          summary: 'Declare your annual card transactions',
          description: 'Decides whether an SAQ (up to 6,000,000 a year) or an AOC signed by a QSA (above) is required besides the ASV scan.',
          security: [{ secretKey: [] }],
          body: VolumeBody,
          response: { 200: ComplianceStatus, ...problemResponses(400, 401) },
        },
      },
      async (request, reply) => sendJson(reply, 200, await compliance.declareVolume(merchantActor(request), request.merchantId, request.body.annual_transactions)),
    );

    app.get(
      '/merchant/compliance',
      {
        onRequest: app.requireSecretKey,
        schema: {
          tags: ['compliance'],
          summary: 'Your PCI DSS compliance status',
          description: 'Status, documents, expiry and what is missing. Live channels accept card data only while `card_data_on_live_channels` is `accepted`.',
          security: [{ secretKey: [] }],
          response: { 200: ComplianceStatus, ...problemResponses(401) },
        },
      },
      async (request, reply) => sendJson(reply, 200, await compliance.status(request.merchantId)),
    );

    app.get<{ Params: { id: string } }>(
      '/merchant/compliance/documents/:id',
      {
        onRequest: app.requireSecretKey,
        schema: {
          tags: ['compliance'],
          summary: 'Download one of your documents',
          description: 'The PDF as uploaded; `Repr-Digest` carries its SHA-256.',
          security: [{ secretKey: [] }],
          params: DocumentParams,
          response: {
            200: {
              description: 'The PDF as uploaded.',
              headers: {
                'Content-Disposition': { type: 'string', description: 'attachment, with the filename it was uploaded under.' },
                'Repr-Digest': { type: 'string', description: '`sha-256=:…:` (RFC 9530): the document\'s `sha256`, in base64, to check the bytes against.' },
              },
              content: { 'application/pdf': { schema: { type: 'string', format: 'binary' } } },
            },
            ...problemResponses(401, 404),
          },
        },
      },
      async (request, reply) => sendPdf(reply, await compliance.download(merchantActor(request), request.params.id, request.merchantId)),
    );
  };

/* ---------- operator API: its own credential, never a merchant key ---------- */

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/**
 * Who acted, for the audit log: the operator a personal token (OPERATOR_TOKENS) belongs to;
 * with the shared OPERATOR_TOKEN, an optional self-declared X-Operator-Name label.
 */
function actorOf(request: FastifyRequest, tokenName: string | null): Actor {
  if (tokenName !== null) return { who: `operator:api:${tokenName}`, from: `ip:${clientAddress(request)}` };
  const name = request.headers['x-operator-name'];
  // A label holding a card number is dropped like a malformed one: the audit log keeps actors in clear.
  const suffix = typeof name === 'string' && /^[A-Za-z0-9._@-]{1,64}$/.test(name) && !holdsCardNumber(name) ? `:${name}` : '';
  return { who: `operator:api${suffix}`, from: `ip:${clientAddress(request)}` };
}

/**
 * Refused operator requests are audited, but anyone can send them: past a few a minute they
 * are counted in the log instead, so the audit table cannot be grown without bound.
 */
class RefusalBudget {
  static readonly PER_MINUTE = 10;
  private windowStart = 0;
  private used = 0;
  private skipped = 0;

  constructor(private readonly log: Services['ctx']['log']) {}

  /** Whether this refusal gets an audit row of its own. */
  take(now: number): boolean {
    if (now - this.windowStart >= 60_000) {
      this.report();
      this.windowStart = now;
      this.used = 0;
    }
    if (this.used < RefusalBudget.PER_MINUTE) {
      this.used++;
      return true;
    }
    // The count is written when the minute ends, whether or not anything follows it.
    if (this.skipped++ === 0) setTimeout(() => this.report(), Math.max(0, this.windowStart + 60_000 - now)).unref();
    return false;
  }

  /** Writes the count not yet written: at the minute's end, or when the gateway stops before it. */
  report(): void {
    if (this.skipped === 0) return;
    this.log.warn({ refused: this.skipped, since: new Date(this.windowStart).toISOString() }, 'refused operator requests beyond the audit budget (10 a minute), not audited one by one');
    this.skipped = 0;
  }
}

/** The operator whose token a request carries (null: the shared token), as the auth hook found it. */
type TokenNames = WeakMap<FastifyRequest, string | null>;

function requireOperator(services: Services, tokens: readonly OperatorToken[], names: TokenNames, budget: RefusalBudget) {
  const expected = tokens.map((t) => ({ name: t.name, digest: digest(t.token) }));
  return async (request: FastifyRequest, reply: FastifyReply) => {
    const auth = request.headers.authorization;
    const presented = /^bearer\s+(\S+)\s*$/i.exec(auth ?? '')?.[1];
    if (presented !== undefined) {
      // Digests have equal length whatever was presented, and every token is compared, so
      // the time taken says neither what matched nor which.
      const given = digest(presented);
      let match: { name: string | null } | undefined;
      for (const e of expected) if (timingSafeEqual(given, e.digest)) match = e;
      if (match) return void names.set(request, match.name);
    }
    const error = new DomainError(401, 'unauthorized', 'operator routes need the operator token in Authorization: Bearer …; merchant secret keys are not accepted here', '/headers/authorization');
    if (budget.take(services.ctx.clock.now())) await services.compliance.recordRefusal({ who: 'unknown', from: `ip:${clientAddress(request)}` }, 'operator.authenticate', null, error);
    reply.header('www-authenticate', 'Bearer realm="operator"');
    await sendProblem(reply, problem(request, 401, error.code, error.message, error.param));
  };
}

/** The operator API: beside the payment API, or on a listener of its own (OPERATOR_PORT). */
export const operatorRoutes =
  (services: Services, tokens: readonly OperatorToken[]): FastifyPluginAsync =>
  async (app: FastifyInstance) => {
    const compliance = services.compliance;
    const budget = new RefusalBudget(services.ctx.log);
    const names: TokenNames = new WeakMap();
    const operatorActor = (request: FastifyRequest) => actorOf(request, names.get(request) ?? null);
    app.addHook('onRequest', requireOperator(services, tokens, names, budget));
    app.addHook('onClose', (_instance, done) => {
      budget.report();
      done();
    });
    const hidden = { hide: true, tags: ['operator'] };
    await app.register(metricsRoute(services));
    await app.register(operatorMerchantRoutes(services, operatorActor));

    // Support: a payment, its events and their deliveries, whichever merchant's (PaymentSupport).
    app.get<{ Params: { id: string } }>('/operator/payments/:id', { schema: { ...hidden, params: PaymentIdParams } }, async (request, reply) =>
      sendJson(reply, 200, await services.support.show(operatorActor(request), request.params.id)),
    );

    app.get('/operator/compliance/submissions', { schema: hidden }, async (_request, reply) => sendJson(reply, 200, { object: 'list', data: await compliance.listPending() }));

    app.get<{ Params: { merchantId: string } }>('/operator/compliance/merchants/:merchantId', { schema: { ...hidden, params: MerchantParams } }, async (request, reply) =>
      sendJson(reply, 200, await compliance.show(operatorActor(request), request.params.merchantId)),
    );

    app.get<{ Params: { id: string } }>('/operator/compliance/documents/:id', { schema: { ...hidden, params: DocumentParams } }, async (request, reply) =>
      sendPdf(reply, await compliance.download(operatorActor(request), request.params.id, null)),
    );

    app.post<{ Params: { merchantId: string }; Body: { documents?: string[] } }>(
      '/operator/compliance/merchants/:merchantId/approve',
      {
        schema: { ...hidden, params: MerchantParams, body: ApproveBody },
        // The body is optional: without `documents`, whatever waits when the request arrives is approved.
        preValidation: async (request) => {
          request.body ??= {};
        },
      },
      async (request, reply) => sendJson(reply, 200, await compliance.approve(operatorActor(request), request.params.merchantId, request.body.documents)),
    );

    app.post<{ Params: { merchantId: string }; Body: { reason: string; documents?: string[] } }>(
      '/operator/compliance/merchants/:merchantId/reject',
      { schema: { ...hidden, params: MerchantParams, body: RejectBody } },
      async (request, reply) => sendJson(reply, 200, await compliance.reject(operatorActor(request), request.params.merchantId, request.body.reason, request.body.documents)),
    );
  };

/**
 * Merchant compliance routes always; the operator's beside them only when an operator token
 * is set (OPERATOR_TOKEN, OPERATOR_TOKENS) and OPERATOR_PORT is not (404 otherwise).
 */
export const complianceRoutes =
  (services: Services): FastifyPluginAsync =>
  async (app) => {
    await app.register(merchantRoutes(services));
    const { operatorTokens, operatorListen } = services.ctx.config;
    if (operatorTokens.length && !operatorListen) await app.register(operatorRoutes(services, operatorTokens));
  };

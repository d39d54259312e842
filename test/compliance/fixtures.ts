import type pino from 'pino';
import { randomBytes } from 'node:crypto';
import type { LightMyRequestResponse } from 'fastify';
import { DAY_MS } from '../../src/domain/compliance.js';
import { type Dialect, type TestGateway, startTestGateway } from '../support/gateway.js';

export const OPERATOR_TOKEN = 'op_' + randomBytes(24).toString('hex');
export const LIVE_CHANNEL = 'live-shop';

export interface FormPart {
  name: string;
  value: string | Buffer;
  filename?: string;
  contentType?: string;
}

/** A multipart/form-data body written out by hand, as RFC 7578 describes it. */
export function multipart(parts: FormPart[], boundary = '----tzero' + randomBytes(8).toString('hex')) {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.filename !== undefined) head += `; filename="${p.filename}"`;
    head += '\r\n';
    if (p.contentType) head += `Content-Type: ${p.contentType}\r\n`;
    chunks.push(Buffer.from(head + '\r\n'), Buffer.isBuffer(p.value) ? p.value : Buffer.from(p.value), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return { payload: Buffer.concat(chunks), contentType: `multipart/form-data; boundary=${boundary}` };
}

/** A small, well-formed PDF carrying `marker` in its content. */
export function pdf(marker = 'hello'): Buffer {
  return Buffer.from(
    `%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n` +
      `3 0 obj\n<< /Length ${marker.length + 12} >>\nstream\n(${marker}) Tj\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n`,
  );
}

export function dateDaysAgo(t: TestGateway, days: number): string {
  return new Date(t.clock.now() - days * DAY_MS).toISOString().slice(0, 10);
}

export interface Upload {
  type: string;
  date: string;
  file?: Buffer;
  filename?: string;
  contentType?: string;
}

export function upload(t: TestGateway, u: Upload, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  const form = multipart([
    { name: 'document_type', value: u.type },
    { name: 'document_date', value: u.date },
    { name: 'file', value: u.file ?? pdf(), filename: u.filename ?? `${u.type}.pdf`, contentType: u.contentType ?? 'application/pdf' },
  ]);
  return t.request({ method: 'POST', url: '/merchant/compliance/documents', headers: { 'content-type': form.contentType, ...headers }, payload: form.payload });
}

export function declareVolume(t: TestGateway, n: number, headers: Record<string, string> = {}): Promise<LightMyRequestResponse> {
  return t.request({ method: 'PUT', url: '/merchant/compliance/volume', headers: { 'content-type': 'application/json', ...headers }, payload: JSON.stringify({ annual_transactions: n }) });
}

export function operator(t: TestGateway, method: 'GET' | 'POST', url: string, payload?: unknown): Promise<LightMyRequestResponse> {
  return t.app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${OPERATOR_TOKEN}`, 'x-operator-name': 'alice', ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(payload !== undefined ? { payload: JSON.stringify(payload) } : {}),
  });
}

/** A gateway with the operator API on, and a live channel for the sandbox merchant. */
export async function startComplianceGateway(dialect: Dialect, env: Record<string, string> = {}, log?: pino.Logger): Promise<TestGateway> {
  const t = await startTestGateway({ dialect, env: { OPERATOR_TOKEN, ...env }, ...(log && { log }) });
  await t.gateway.services.merchants.createChannel(t.credentials.merchant_id, {
    reference: LIVE_CHANNEL,
    name: 'Live Shop',
    mode: 'live',
    currencies: ['USD'],
    returnUrls: ['https://shop.example/return'],
    notifyEmails: ['ops@shop.example'],
  });
  // The sandbox's key, made sandbox-only, taken back to a key from before modes (decision 0028):
  // these suites pay on both channels with one key, as such a key still may.
  await t.gateway.services.ctx.database.db.updateTable('secret_keys').set({ mode: null }).where('merchant_id', '=', t.credentials.merchant_id).execute();
  return t;
}

/** Declares a volume, uploads the documents it needs and has the operator approve them. */
export async function approveMerchant(t: TestGateway, volume = 1000): Promise<void> {
  await expectStatus(declareVolume(t, volume), 200);
  await expectStatus(upload(t, { type: 'asv_scan', date: dateDaysAgo(t, 10) }), 201);
  await expectStatus(upload(t, { type: volume > 6_000_000 ? 'aoc' : 'saq', date: dateDaysAgo(t, 5) }), 201);
  await expectStatus(operator(t, 'POST', `/operator/compliance/merchants/${t.credentials.merchant_id}/approve`), 200);
}

export async function expectStatus(res: Promise<LightMyRequestResponse>, status: number): Promise<LightMyRequestResponse> {
  const r = await res;
  if (r.statusCode !== status) throw new Error(`expected ${status}, got ${r.statusCode}: ${r.body}`);
  return r;
}

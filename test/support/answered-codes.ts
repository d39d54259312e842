import { readdirSync, readFileSync } from 'node:fs';

const root = new URL('../../', import.meta.url);
const read = (file: string) => readFileSync(new URL(file, root), 'utf8');

function sourceFiles(dir: string): string[] {
  return readdirSync(new URL(dir, root), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(`${dir}/${e.name}`) : e.name.endsWith('.ts') ? [`${dir}/${e.name}`] : [],
  );
}

const CODE = `'([a-z][a-z0-9_]*)'`;

/** Where the source names the `code` of an answer: the refusals' constructors, and the field errors listed in `errors`. */
const NAMED = [
  new RegExp(`new DomainError\\(\\s*[^,]+,\\s*${CODE}`, 'g'),
  new RegExp(`problem\\(\\s*request,\\s*\\d{3},\\s*${CODE}`, 'g'),
  new RegExp(`\\{\\s*pointer:[^{}]*?code:\\s*${CODE}`, 'g'),
  new RegExp(`\\[\\s*\\d{3},\\s*${CODE}`, 'g'),
  // Codes that reach a DomainError through a helper of their module (the forwarding sites below).
  new RegExp(`new TargetRefused\\(${CODE}`, 'g'),
  new RegExp(`new UnrestorableBackupError\\(${CODE}`, 'g'),
  new RegExp(`\\brefuse\\(${CODE}`, 'g'),
  new RegExp(`this\\.answer\\([^;]*?,\\s*${CODE},`, 'g'),
  new RegExp(`\\brule\\(errors,[^,]+,\\s*${CODE}`, 'g'),
  new RegExp(`code: ${CODE}, message:`, 'g'),
  new RegExp(`[?:]\\s*\\[${CODE},`, 'g'),
];

/**
 * Constructors handed a code they did not spell, each from a place NAMED reads: a new one
 * joins this list once its codes are collected, so none can be answered unseen.
 */
const FORWARDED = new Set([
  'src/app/lifecycle.ts new DomainError(422, code,', // this.answer(…, 'capture_failed', …)
  'src/app/merchant-initiated.ts new DomainError(422, code,', // refuse('initial_payment_…')
  'src/app/industry-practice.ts new DomainError(422, code,', // refuse('resubmission_…', 'industry_usage_…')
  'src/app/webhook-endpoints.ts new DomainError(400, error.code,', // new TargetRefused('url_…')
  'src/app/compliance.ts new DomainError(403, refusal.code,', // { code: 'compliance_…', message }
  "src/cli/main.ts new DomainError(error.code === 'backup_not_found' ? 404 : 422, error.code,", // new UnrestorableBackupError('backup_…')
  'src/http/app.ts problem(request, status, code,', // frameworkErrors' ['malformed_path', …]
  'src/http/app.ts problem(request, error.status, error.code,', // a DomainError's own
  "src/http/app.ts problem(request, 400, first?.code ?? 'invalid_request',", // fromAjv's { pointer, code }
  'src/http/plugins/compliance.ts problem(request, 401, error.code,', // a DomainError's own
]);

export function answeredCodes(): { codes: Map<string, string>; unseen: string[] } {
  const codes = new Map<string, string>();
  const unseen: string[] = [];
  for (const file of sourceFiles('src')) {
    const text = read(file);
    for (const pattern of NAMED) for (const m of text.matchAll(pattern)) if (!codes.has(m[1]!)) codes.set(m[1]!, file);
    for (const m of text.matchAll(/(?:new DomainError|\bproblem)\(\s*(?:request,\s*)?([^,()]+),\s*([^,]+),/g)) {
      if (m[2]!.trim().startsWith("'")) continue;
      const site = `${file} ${m[0].replace(/\s+/g, ' ')}`;
      if (!FORWARDED.has(site) && !file.endsWith('src/http/problem.ts')) unseen.push(site);
    }
  }
  // Never shown: a PostgreSQL SQLSTATE and an acquirer's outcome the gateway reads, and the
  // hosted page's refusal, which the customer sees as its not-found page.
  for (const internal of ['25006', 'unreachable', 'checkout_not_found']) codes.delete(internal);
  return { codes, unseen };
}


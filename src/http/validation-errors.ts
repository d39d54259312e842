import { scrubText } from '../logger.js';
import type { FastifySchemaValidationError } from 'fastify';
import { type FieldError, escapePointer } from '../domain/errors.js';
import { MINOR_UNITS } from './schemas/common.js';

/**
 * Turns Ajv's errors into field errors with a JSON pointer to the field itself (the
 * unknown or missing property, not its parent) and a sentence a developer can act on.
 */
export function fromAjv(errors: FastifySchemaValidationError[], part: string): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  // A nullable field (Nullable(): the field's schema or null) is reported by its own rule, as
  // the same field without null would be (too_long, not the union's "is invalid").
  const nullUnions = new Set<string>();
  const nullBranches: string[] = [];
  for (const e of errors) {
    const branch = e.keyword === 'anyOf' ? nullBranchOf(e) : -1;
    if (branch < 0) continue;
    nullUnions.add(e.schemaPath);
    nullBranches.push(`${e.schemaPath}/${branch}/`);
  }
  const nullable = new Set(errors.filter((e) => nullUnions.has(e.schemaPath)).map((e) => e.instancePath));
  // A union's own error says it all; its branches' type errors would only contradict each other.
  const unions = new Set(errors.filter((e) => (e.keyword === 'anyOf' || e.keyword === 'oneOf') && !nullUnions.has(e.schemaPath)).map((e) => e.instancePath));
  for (const e of errors) {
    if (unions.has(e.instancePath) && e.keyword !== 'anyOf' && e.keyword !== 'oneOf') continue;
    if (nullUnions.has(e.schemaPath) || nullBranches.some((b) => e.schemaPath.startsWith(b))) continue;
    const fe = one(e, part, nullable.has(e.instancePath));
    if (!fe) continue;
    const key = fe.pointer + fe.code;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(fe);
  }
  return out;
}

/** The index of the null branch of a two-branch union with one (Nullable()), or -1. */
function nullBranchOf(e: FastifySchemaValidationError): number {
  const branches = (e as { parentSchema?: { anyOf?: Array<{ type?: unknown }> } }).parentSchema?.anyOf;
  return branches?.length === 2 ? branches.findIndex((b) => b.type === 'null') : -1;
}

/** What a message calls a whole part of the request, where an error is about the part itself. */
const WHOLE: Record<string, string> = { body: 'the request body', querystring: 'the query string', params: 'the path', headers: 'the headers' };

function one(e: FastifySchemaValidationError, part: string, orNull: boolean): FieldError | null {
  const inPart = e.instancePath ?? '';
  const base = (part === 'body' ? '' : `/${part}`) + inPart;
  const params = e.params as Record<string, unknown>;
  // The dotted path ("payment_method.number") says which of several same-named fields is meant.
  // A parameter is named as the merchant wrote it ("limit", not "querystring.limit"): the
  // pointer says where it was.
  const name = inPart.slice(1).split('/').join('.') || WHOLE[part] || part;
  // A propertyNames sub-error (Ajv sets `propertyName`) is about a key, not the object's value.
  const key = (e as { propertyName?: string }).propertyName;
  if (key !== undefined) {
    const shown = scrubText(key);
    return { pointer: `${base}/${escapePointer(shown)}`, code: 'invalid_key', message: `${name} keys must be ${describeKeyRule(e.keyword, params)}; "${shown.slice(0, 60)}" is not` };
  }
  switch (e.keyword) {
    case 'additionalProperties': {
      // A name is quoted back, but never a card number sent as one.
      const prop = scrubText(String(params.additionalProperty));
      const of = part === 'querystring' && !inPart ? 'a query parameter of this request' : `a field of ${name}`;
      return { pointer: `${base}/${escapePointer(prop)}`, code: 'unknown_field', message: `"${prop.slice(0, 60)}" is not ${of}; remove it (check the spelling against the API reference)` };
    }
    case 'required': {
      const prop = String(params.missingProperty);
      return { pointer: `${base}/${escapePointer(prop)}`, code: 'missing_field', message: `${inPart ? `${name}.` : ''}${prop} is required` };
    }
    case 'type':
      return { pointer: base, code: 'invalid_type', message: `${name} must be ${article(String(params.type))}${orNull ? ' or null' : ''}${minorUnits(e) ? MINOR_UNITS_HINT : ''}` };
    case 'enum':
      return { pointer: base, code: 'invalid_value', message: `${name} must be one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}` };
    case 'const':
      return { pointer: base, code: 'invalid_value', message: `${name} must be ${JSON.stringify(params.allowedValue)}` };
    case 'maxLength':
      return { pointer: base, code: 'too_long', message: `${name} must be at most ${params.limit} characters` };
    case 'minLength':
      return { pointer: base, code: Number(params.limit) === 1 ? 'missing_field' : 'too_short', message: Number(params.limit) === 1 ? `${name} must not be empty` : `${name} must be at least ${params.limit} characters` };
    case 'minimum':
    case 'exclusiveMinimum':
      return { pointer: base, code: 'out_of_range', message: `${name} must be ${params.comparison} ${params.limit}` };
    case 'maximum':
    case 'exclusiveMaximum':
      return { pointer: base, code: 'out_of_range', message: `${name} must be ${params.comparison} ${params.limit}` };
    case 'maxProperties':
      return { pointer: base, code: 'too_many_fields', message: `${name} may have at most ${params.limit} keys` };
    case 'maxItems':
    case 'minItems':
      return { pointer: base, code: 'invalid_length', message: `${name} must have ${e.keyword === 'maxItems' ? 'at most' : 'at least'} ${params.limit} item${Number(params.limit) === 1 ? '' : 's'}` };
    case 'pattern':
    case 'format':
      return { pointer: base, code: 'invalid_format', message: `${name} is not in the expected format${params.format ? ` (${params.format})` : ''}` };
    case 'discriminator':
      return { pointer: `${base}/type`, code: params.error === 'mapping' ? 'invalid_value' : 'missing_field', message: `${base.slice(1) || 'payment_method'}.type must be "card" or "token"` };
    case 'anyOf':
    case 'oneOf': {
      const description = (e as { parentSchema?: { description?: string } }).parentSchema?.description;
      // A union of literals (Type.Union of Type.Literal) is an enumeration: list what it takes.
      const allowed = literalsOf(e);
      if (allowed) {
        const values = allowed.map((v) => JSON.stringify(v)).join(', ') + (orNull ? ' or null' : '');
        return { pointer: base, code: 'invalid_value', message: `${name} must be one of ${values}${description ? ` (${description})` : ''}` };
      }
      return { pointer: base, code: 'invalid_value', message: `${name} is invalid${description ? `: ${description}` : ''}` };
    }
    case 'propertyNames':
      return null;
    default:
      return { pointer: base, code: 'invalid_value', message: `${name} ${e.message ?? 'is invalid'}` };
  }
}

/** The values of a union whose every branch is one constant, or undefined for any other union. */
function literalsOf(e: FastifySchemaValidationError): unknown[] | undefined {
  const parent = (e as { parentSchema?: { anyOf?: unknown[]; oneOf?: unknown[] } }).parentSchema;
  const branches = (e.keyword === 'anyOf' ? parent?.anyOf : parent?.oneOf) as Array<{ const?: unknown }> | undefined;
  if (!branches?.length || !branches.every((b) => b !== null && typeof b === 'object' && 'const' in b)) return undefined;
  return branches.map((b) => b.const);
}

function describeKeyRule(keyword: string, params: Record<string, unknown>): string {
  if (keyword === 'minLength') return `at least ${params.limit} character${params.limit === 1 ? '' : 's'} long`;
  if (keyword === 'maxLength') return `at most ${params.limit} characters long`;
  return 'valid names';
}

/**
 * An amount sent as 10.5 or "10.50" is most often in major units: told only "a whole number",
 * a merchant who rounds it to 10 charges 0.10 USD instead of 10.50.
 */
const MINOR_UNITS_HINT = ' of minor units of the currency: 1050 means 10.50 USD, 1050 JPY means JPY 1,050, 1050 KWD means 1.050 KWD';

function minorUnits(e: FastifySchemaValidationError): boolean {
  return (e as { parentSchema?: Record<string, unknown> }).parentSchema?.[MINOR_UNITS] === true;
}

function article(t: string): string {
  if (t === 'integer') return 'a whole number (no decimals, no quotes)';
  if (t === 'object') return 'a JSON object';
  if (t === 'array') return 'a JSON array';
  if (t.includes(',')) return `one of: ${t}`;
  return `a ${t}`;
}

/**
 * Why a body is not JSON, with its line and column. V8 quotes a slice of the input in
 * some messages ("Unexpected token …, "…" is not valid JSON"); the body may hold card
 * data, so only the reason and the position are kept.
 */
export function describeJsonError(text: string, error: Error): string {
  const reason = error.message
    .replace(/ (?:in JSON )?at position \d+.*$/s, '')
    .replace(/^(Unexpected token '.*?'),.*$/s, '$1')
    .replace(/^.*".*$/s, 'Unexpected input');
  const position = Number(/at position (\d+)/.exec(error.message)?.[1] ?? NaN);
  if (!Number.isInteger(position)) return reason;
  const before = text.slice(0, position).split('\n');
  return `${reason} at line ${before.length}, column ${before[before.length - 1]!.length + 1}`;
}

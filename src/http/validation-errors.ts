import type { FastifySchemaValidationError } from 'fastify';
import type { FieldError } from '../domain/errors.js';

/**
 * Turns Ajv's errors into field errors with a JSON pointer to the field itself (the
 * unknown or missing property, not its parent) and a sentence a developer can act on.
 */
export function fromAjv(errors: FastifySchemaValidationError[], part: string): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  // A union's own error says it all; its branches' type errors would only contradict each other.
  const unions = new Set(errors.filter((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf').map((e) => e.instancePath));
  for (const e of errors) {
    if (unions.has(e.instancePath) && e.keyword !== 'anyOf' && e.keyword !== 'oneOf') continue;
    const fe = one(e, part);
    if (!fe) continue;
    const key = fe.pointer + fe.code;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(fe);
  }
  return out;
}

function one(e: FastifySchemaValidationError, part: string): FieldError | null {
  const base = (part === 'body' ? '' : `/${part}`) + (e.instancePath ?? '');
  const params = e.params as Record<string, unknown>;
  const name = base.split('/').pop() || part;
  switch (e.keyword) {
    case 'additionalProperties': {
      const prop = String(params.additionalProperty);
      return { pointer: `${base}/${prop}`, code: 'unknown_field', message: `"${prop}" is not a field of ${base || 'the request body'}; remove it (check the spelling against the API reference)` };
    }
    case 'required': {
      const prop = String(params.missingProperty);
      return { pointer: `${base}/${prop}`, code: 'missing_field', message: `${prop} is required` };
    }
    case 'type':
      return { pointer: base, code: 'invalid_type', message: `${name} must be ${article(String(params.type))}` };
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
      return { pointer: base, code: 'invalid_length', message: `${name} must have ${e.keyword === 'maxItems' ? 'at most' : 'at least'} ${params.limit} items` };
    case 'pattern':
    case 'format':
      return { pointer: base, code: 'invalid_format', message: `${name} is not in the expected format${params.format ? ` (${params.format})` : ''}` };
    case 'discriminator':
      return { pointer: `${base}/type`, code: params.error === 'mapping' ? 'invalid_value' : 'missing_field', message: `${base.slice(1) || 'payment_method'}.type must be "card" or "token"` };
    case 'anyOf':
    case 'oneOf': {
      const description = (e as { parentSchema?: { description?: string } }).parentSchema?.description;
      return { pointer: base, code: 'invalid_value', message: `${name} is invalid${description ? `: ${description}` : ''}` };
    }
    case 'propertyNames':
      return null;
    default:
      return { pointer: base, code: 'invalid_value', message: `${name} ${e.message ?? 'is invalid'}` };
  }
}

function article(t: string): string {
  if (t === 'integer') return 'a whole number (no decimals, no quotes)';
  if (t === 'object') return 'a JSON object';
  if (t === 'array') return 'a JSON array';
  if (t.includes(',')) return `one of: ${t}`;
  return `a ${t}`;
}

/**
 * A rule broken by input, named by the JSON pointer of the offending field so the
 * HTTP layer can turn it into an RFC 9457 problem without knowing the rule.
 */
export interface FieldError {
  /** JSON pointer relative to the object that was checked, e.g. `/number`. */
  pointer: string;
  /** Stable machine-readable code, e.g. `invalid_number`. */
  code: string;
  /** A sentence a developer understands. */
  message: string;
}

/** A key as one step of a JSON pointer (RFC 6901). */
export function escapePointer(key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Prefix every pointer of `errors` with `base` (e.g. `/payment_method`). */
export function underPointer(base: string, errors: FieldError[]): FieldError[] {
  return errors.map((e) => ({ ...e, pointer: base + e.pointer }));
}

/**
 * A domain rule refusal that maps to a 4xx. `status` is chosen by the rule's nature:
 * 400 malformed, 401 auth, 403 forbidden, 404 unknown, 409 state conflict, 422 semantic.
 */
export class DomainError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429,
    readonly code: string,
    message: string,
    readonly param?: string,
    readonly extra?: Record<string, unknown>,
    /** A refusal that passes by itself (a request still under way): sent as Retry-After. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export class ValidationFailed extends DomainError {
  constructor(readonly errors: FieldError[]) {
    const first = errors[0];
    super(400, first?.code ?? 'invalid_request', first?.message ?? 'The request is invalid.', first?.pointer, {
      errors: errors.map((e) => ({ param: e.pointer, code: e.code, message: e.message })),
    });
  }
}

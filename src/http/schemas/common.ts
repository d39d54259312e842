import { type TSchema, Type } from '@sinclair/typebox';
import { MAX_AMOUNT_MINOR } from '../../domain/money.js';

/** Strict objects: an unknown field is a 400 naming it, never silently stored. */
export function StrictObject<T extends Parameters<typeof Type.Object>[0]>(props: T, opts: { description?: string; $id?: string; title?: string } = {}) {
  return Type.Object(props, { additionalProperties: false, ...opts });
}

/**
 * The body of an operation that reads none (a DELETE): none, an empty one or `{}`. Anything
 * else is refused rather than ignored, as unknown fields are everywhere.
 */
export const EmptyBody = StrictObject({}, { description: 'Empty; may be omitted.' });

/**
 * Marks an integer schema as an amount in minor units: a fraction or a quoted number sent for
 * it is most often major units (10.50 for 1050), and its 400 says so (validation-errors.ts).
 * An OpenAPI extension, so the served document carries it too.
 */
export const MINOR_UNITS = 'x-minor-units';

/** An amount in minor units of the payment's currency, 1 to MAX_AMOUNT_MINOR. */
export const MinorUnits = (description: string) => Type.Integer({ minimum: 1, maximum: MAX_AMOUNT_MINOR, description, [MINOR_UNITS]: true });

/** The spec sends numbers as strings ("48"); both forms are accepted and normalised in domain/. */
export const NumberOrString = (description: string) =>
  Type.Union([Type.Integer(), Type.String({ maxLength: 16 })], { description });

export const BoolOrString = (description: string) => Type.Union([Type.Boolean(), Type.Enum({ true: 'true', false: 'false' })], { description });

export const Problem = Type.Object(
  {
    type: Type.String({
      description:
        'The problem type: `{PUBLIC_URL}/errors/{code}`, the code\'s documentation on the gateway that answered (JSON, or a page when `text/html` is asked for): the statuses it comes with and what the documents and this OpenAPI document say of it. It differs between gateways; branch on `code`, which does not. Each operation lists its codes in this document and on /docs.',
    }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    code: Type.String({ description: 'Stable machine-readable error code.' }),
    param: Type.Optional(Type.String({ description: 'JSON pointer of the offending field.' })),
    request_id: Type.String(),
    errors: Type.Optional(Type.Array(Type.Object({ param: Type.String(), code: Type.String(), message: Type.String() }), { description: 'Every field at fault, whenever `param` names one (whatever the status): the first is `param`\'s; a request that breaks several rules lists them all.' })),
    payment_status: Type.Optional(Type.String({ description: 'Capture, void, refund: the payment status that refused the request.' })),
    decline_code: Type.Optional(Type.String({ description: 'capture_failed: why the acquirer refused.' })),
    amount_capturable: Type.Optional(Type.Integer({ description: 'amount_exceeds_capturable: what can still be captured, in minor units.' })),
    amount_refundable: Type.Optional(Type.Integer({ description: 'amount_exceeds_refundable: what can still be refunded, in minor units.' })),
    compliance_status: Type.Optional(Type.String({ description: 'compliance_required, compliance_expired: where to see what is missing.' })),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details.' },
);

export const ProblemRef = Type.Ref(Problem);

export function problemResponses(...statuses: number[]): Record<number, TSchema> {
  return Object.fromEntries(statuses.map((s) => [s, ProblemRef]));
}

export const Timestamp = Type.String({ format: 'date-time' });
export const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

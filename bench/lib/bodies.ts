import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from './processes.js';

/** Sandbox cards that approve frictionlessly (src/adapters/acquirers/sandbox/test-cards.ts). */
export const APPROVING_CARDS = [
  { number: '4242424242424242', cvc: '012' },
  { number: '5555555555554444', cvc: '012' },
  { number: '2223003122003222', cvc: '012' },
  { number: '378282246310005', cvc: '0123' },
] as const;

export type Body = Record<string, unknown>;

/** The spec's full example (docs/examples/authorise.json), parsed afresh each call. */
export function exampleBody(): Body {
  return JSON.parse(readFileSync(join(REPO, 'docs/examples/authorise.json'), 'utf8')) as Body;
}

const MARK = '\u0000REF\u0000';

export interface BodyOptions {
  /**
   * Each body's `customer.reference` differs too (`<runId>-<n>`). The customer-initiated
   * flow uses it: 50 journeys at once are 50 customers, where the spec's example would
   * make them one customer storing the same four cards, whose concurrent inserts of one
   * stored card queue behind each other on PostgreSQL (its unique index).
   */
  distinctCustomers?: boolean;
}

/**
 * Request bodies that differ in `reference` and rotate through the approving cards. They
 * are spliced from pre-serialised parts so the load generator spends as little CPU per
 * request as possible (it shares the machine with the server).
 */
export function bodyFactory(runId: string, change: (body: Body) => Body = (b) => b, opts: BodyOptions = {}): (n: number) => string {
  const templates = APPROVING_CARDS.map((card) => {
    const body = change(exampleBody());
    body.reference = MARK;
    const customer = body.customer as Body | undefined;
    if (opts.distinctCustomers && customer) customer.reference = MARK;
    const pm = body.payment_method as Body | undefined;
    if (pm && pm.type === 'card') Object.assign(pm, { number: card.number, cvc: card.cvc });
    return JSON.stringify(body).split(JSON.stringify(MARK));
  });
  return (n) => templates[n % templates.length]!.join(`"${runId}-${n}"`);
}

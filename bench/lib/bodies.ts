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

/**
 * Request bodies that differ in `reference` and rotate through the approving cards. They
 * are spliced from pre-serialised halves so the load generator spends as little CPU per
 * request as possible (it shares the machine with the server).
 */
export function bodyFactory(runId: string, change: (body: Body) => Body = (b) => b): (n: number) => string {
  const halves = APPROVING_CARDS.map((card) => {
    const body = change(exampleBody());
    body.reference = MARK;
    const pm = body.payment_method as Body | undefined;
    if (pm && pm.type === 'card') Object.assign(pm, { number: card.number, cvc: card.cvc });
    const [before, after] = JSON.stringify(body).split(JSON.stringify(MARK));
    return { before: before!, after: after! };
  });
  return (n) => {
    const h = halves[n % halves.length]!;
    return `${h.before}"${runId}-${n}"${h.after}`;
  };
}

import { DomainError } from '../domain/errors.js';
import type { PaymentStatus } from '../domain/payment-state.js';
import type { Trx } from '../adapters/storage/database.js';
import type { PaymentsTable } from '../adapters/storage/schema.js';
import type { PaymentDetails } from './payment-resource.js';

/** The plan an instalment MIT is a payment of (kept in its details, so a later one naming it finds the plan too). */
export interface InstalmentPlan {
  /** The instalment-initial payment that agreed it. */
  agreement: string;
  instalments: number;
}

/**
 * The plan of the payment an instalment MIT names: the initial payment's own, or the one an
 * earlier instalment carried. None for a plan agreed before its length was asked for, which
 * is not counted.
 */
export function instalmentPlanOf(prev: PaymentsTable, prevDetails: PaymentDetails): InstalmentPlan | undefined {
  const data = prevDetails.payment_data;
  if (data.payment_sub_type !== 'instalment-initial') return prevDetails.instalment_plan;
  return data.instalments === undefined ? undefined : { agreement: prev.id, instalments: data.instalments };
}

/**
 * Takes one of the plan's payments, in the transaction that writes the MIT, or refuses it. The
 * conditional increment is the check: on PostgreSQL the row lock makes a concurrent MIT wait and
 * then see the new count, on SQLite writers take turns, so two MITs never both get the last one.
 */
export async function takeInstalment(trx: Trx, plan: InstalmentPlan): Promise<void> {
  await trx
    .insertInto('instalment_plans')
    .values({ agreement_payment_id: plan.agreement, allowed: plan.instalments, taken: 1 })
    .onConflict((oc) => oc.column('agreement_payment_id').doNothing())
    .execute();
  const res = await trx
    .updateTable('instalment_plans')
    .set((eb) => ({ taken: eb('taken', '+', 1) }))
    .where('agreement_payment_id', '=', plan.agreement)
    .whereRef('taken', '<', 'allowed')
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) === 1) return;
  throw new DomainError(
    422,
    'instalments_exhausted',
    `payment ${plan.agreement} agreed a plan of ${plan.instalments} payments (instalments), itself included, and all of them have been made or are under way; a declined or failed instalment gives its place back`,
    '/payment_data/previous_payment_id',
  );
}

/** Ends in which a payment was never approved: its instalment was not paid and is taken again by a retry. */
const UNAPPROVED_ENDS: readonly PaymentStatus[] = ['declined', 'failed', 'expired', 'cancelled'];

/** Gives an instalment MIT's place in its plan back when it ends unapproved (any path: verdict, page, sweeper). */
export async function releaseInstalment(trx: Trx, row: PaymentsTable, to: PaymentStatus, details: PaymentDetails): Promise<void> {
  const plan = details.instalment_plan;
  if (plan === undefined || row.authorised_at !== null || !UNAPPROVED_ENDS.includes(to)) return;
  await trx
    .updateTable('instalment_plans')
    .set((eb) => ({ taken: eb('taken', '-', 1) }))
    .where('agreement_payment_id', '=', plan.agreement)
    .execute();
}

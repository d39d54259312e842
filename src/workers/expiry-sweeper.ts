import type { Services } from '../app/services.js';

/**
 * Expires payment pages whose time is up (erasing their card) even if the customer
 * never comes back, so no card number or CVC outlives the page; and authorisations never captured
 * within their validity, releasing them.
 */
export async function sweepExpired(services: Services, batch = 100): Promise<number> {
  const { ctx, checkout } = services;
  const due = await ctx.database.db
    .selectFrom('payments')
    .select(['id'])
    .where('expires_at', '<=', ctx.clock.now())
    .where('status', '=', 'requires_action')
    .orderBy('expires_at')
    .limit(batch)
    .execute();
  for (const p of due) await checkout.expire(p.id);
  const authorisations = await services.lifecycle.expireDue(batch);
  await services.idempotency.purgeExpired();
  return due.length + authorisations;
}

import { userInfo } from 'node:os';
import type { Kysely } from 'kysely';
import type { AuditLogTable, Schema } from '../adapters/storage/schema.js';
import type { AppContext } from './context.js';

/** Who acted and from where, as the audit log records them. */
export interface Actor {
  who: string;
  from: string;
}

/** The operator at a terminal: the operating-system user running the CLI. */
export function cliActor(): Actor {
  return { who: `operator:cli:${userInfo().username}`, from: 'cli' };
}

/** The gateway acting on its own (the sandbox's first boot, tests). */
export const GATEWAY_ACTOR: Actor = { who: 'system:gateway', from: 'gateway' };

export interface AuditEntry {
  actor: Actor;
  action: string;
  merchantId: string | null;
  target: string | null;
  outcome: AuditLogTable['outcome'];
  code?: string | null;
  detail: Record<string, unknown> | null;
}

/** One audit row, in the transaction of the change it records when `ex` is that transaction. */
export async function writeAudit(ctx: Pick<AppContext, 'newId' | 'clock'>, ex: Kysely<Schema>, e: AuditEntry): Promise<void> {
  await ex
    .insertInto('audit_log')
    .values({
      id: ctx.newId('audit'),
      at: ctx.clock.now(),
      actor: e.actor.who,
      source: e.actor.from,
      action: e.action,
      merchant_id: e.merchantId,
      target: e.target,
      outcome: e.outcome,
      code: e.code ?? null,
      detail: e.detail === null ? null : JSON.stringify(e.detail),
    })
    .execute();
}

/**
 * The newest audit rows first, of one merchant or of everything (vault rotations have no
 * merchant), and only actions beginning with `actionPrefix` when given.
 */
export async function auditTrail(ctx: AppContext, merchantId?: string, limit = 50, actionPrefix?: string) {
  let q = ctx.database.db.selectFrom('audit_log').selectAll().orderBy('id', 'desc').limit(limit);
  if (merchantId !== undefined) q = q.where('merchant_id', '=', merchantId);
  if (actionPrefix !== undefined) q = q.where('action', 'like', `${actionPrefix}%`);
  const rows = await q.execute();
  return rows.map((r) => ({ ...r, at: new Date(r.at).toISOString(), detail: r.detail === null ? null : (JSON.parse(r.detail) as unknown) }));
}

/**
 * auditTrail for a person: the read is itself audited first (PCI DSS 10.2.1.3, access to the
 * audit logs), so the reader finds their own look at the top.
 */
export async function readAuditTrail(ctx: AppContext, actor: Actor, merchantId?: string, limit = 50, actionPrefix?: string) {
  await writeAudit(ctx, ctx.database.db, { actor, action: 'audit_log.read', merchantId: merchantId ?? null, target: merchantId ?? null, outcome: 'success', detail: null });
  return auditTrail(ctx, merchantId, limit, actionPrefix);
}

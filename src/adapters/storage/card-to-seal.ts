import type { Kek } from '../../config.js';
import { type SensitiveCard, sealCardUnder } from '../vault/envelope.js';
import type { CompiledStatement } from './compiled.js';

/**
 * A payment's card for `card_secrets`, sealed where its row is written: on SQLite that is
 * the writer thread, so the three AES-GCM operations a card costs run beside the event
 * loop (docs/decisions/0010-cards-sealed-on-the-writer-thread.md).
 */
export interface CardToSeal {
  table: 'card_secrets';
  paymentId: string;
  card: SensitiveCard;
}

/** card_secrets' sealed columns, in the order a CardToSeal's statement binds them. */
export const SEALED_CARD_COLUMNS = ['kek_id', 'wrapped_dek', 'pan_ct', 'cvc_ct'] as const;

/** The parameters with the statement's card, if it has one, sealed under `kek`. */
export function paramsWithCard({ params, seal }: CompiledStatement, kek: Kek | undefined): unknown[] {
  if (!seal) return params;
  if (!kek) throw new Error('a card is to be sealed, but this database was opened without the key-encrypting key');
  return fillSealedCard(params.slice(), seal.at, kek, seal.recordId, seal.card.pan, seal.card.cvc);
}

/** Seals a card into `params` from `at` on (the SQLite writer thread does this too). */
export function fillSealedCard(params: unknown[], at: number, kek: Kek, recordId: string, pan: string, cvc: string | undefined | null): unknown[] {
  const sealed = sealCardUnder(kek, recordId, pan, cvc);
  SEALED_CARD_COLUMNS.forEach((column, i) => (params[at + i] = sealed[column]));
  return params;
}

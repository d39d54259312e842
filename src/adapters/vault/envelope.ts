import { createCipheriv, createDecipheriv, createHmac, hkdfSync } from 'node:crypto';
import { secureRandomBytes } from '../random.js';
import { inspect } from 'node:util';
import type { Kek } from '../../config.js';

/**
 * Card data in memory. It redacts itself in JSON, logs and inspection, so a stray
 * `log.info(req.body)` or error serialiser cannot leak a PAN or CVC.
 */
export class SensitiveCard {
  readonly #pan: string;
  readonly #cvc: string | undefined;
  constructor(pan: string, cvc: string | undefined) {
    this.#pan = pan;
    this.#cvc = cvc;
  }
  // The log redactor copies an object onto a bare clone of its prototype and writes its
  // censor through these accessors: on anything but a real instance they read as empty
  // and ignore the write, so logging a card can neither throw nor reveal it.
  get pan(): string {
    return #pan in this ? this.#pan : '';
  }
  set pan(_censored: string) {}
  get cvc(): string | undefined {
    return #cvc in this ? this.#cvc : undefined;
  }
  set cvc(_censored: string | undefined) {}
  toJSON(): string {
    return '[card redacted]';
  }
  toString(): string {
    return '[card redacted]';
  }
  [inspect.custom](): string {
    return '[card redacted]';
  }
}

export interface SealedCard {
  kek_id: string;
  wrapped_dek: string;
  pan_ct: string;
  cvc_ct: string | null;
}

const KEK_CHECK_TEXT = 'tzero-pay key check';

function seal(key: Buffer, plaintext: Buffer, aad: string): string {
  const iv = secureRandomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(aad));
  const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return `${iv.toString('base64')}.${ct.toString('base64')}.${cipher.getAuthTag().toString('base64')}`;
}

/** The parts of a `Vault.sealString` value: its KEK id comes first. */
export function sealedStringParts(packed: string): { kek_id: string; wrapped_dek: string; ct: string } {
  const [kek_id, wrapped_dek, ct] = packed.split('|');
  if (!kek_id || !wrapped_dek || !ct) throw new Error('sealed string is malformed');
  return { kek_id, wrapped_dek, ct };
}

function open(key: Buffer, sealed: string, aad: string): Buffer {
  const [iv, ct, tag] = sealed.split('.');
  if (!iv || ct === undefined || !tag) throw new Error('sealed value is malformed');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64'));
  decipher.setAAD(Buffer.from(aad));
  decipher.setAuthTag(Buffer.from(tag, 'base64'));
  return Buffer.concat([decipher.update(Buffer.from(ct, 'base64')), decipher.final()]);
}

/**
 * A card sealed under `kek` with a data key of its own. The one way card data is sealed,
 * wherever that runs: the Vault, or the SQLite writer thread for a payment's card
 * (src/adapters/storage/compiled.ts, CardToSeal).
 */
export function sealCardUnder(kek: Kek, recordId: string, pan: string, cvc: string | undefined | null): SealedCard {
  const dek = secureRandomBytes(32);
  try {
    return {
      kek_id: kek.id,
      wrapped_dek: seal(kek.key, dek, `dek:${recordId}`),
      pan_ct: seal(dek, Buffer.from(pan), `pan:${recordId}`),
      cvc_ct: cvc === undefined || cvc === null ? null : seal(dek, Buffer.from(cvc), `cvc:${recordId}`),
    };
  } finally {
    dek.fill(0);
  }
}

/**
 * Envelope encryption: every record gets its own AES-256-GCM data key, and only that
 * key's KEK-wrapped form is stored. The KEK comes from configuration and never reaches
 * the database; rotating it re-wraps data keys without touching card ciphertext. The
 * record id is bound as associated data so a ciphertext cannot be moved to another row.
 */
export class Vault {
  private readonly fingerprintKey: Buffer;
  private readonly shownFingerprintKey: Buffer;

  constructor(
    private readonly keks: { active: Kek; all: Map<string, Buffer> },
    hmacKey: Buffer,
  ) {
    this.fingerprintKey = Buffer.from(hkdfSync('sha256', hmacKey, Buffer.alloc(0), 'tzero card fingerprint v1', 32));
    this.shownFingerprintKey = Buffer.from(hkdfSync('sha256', hmacKey, Buffer.alloc(0), 'tzero card fingerprint per merchant v1', 32));
  }

  get activeKekId(): string {
    return this.keks.active.id;
  }

  sealCard(recordId: string, card: SensitiveCard): SealedCard {
    return sealCardUnder(this.keks.active, recordId, card.pan, card.cvc);
  }

  openCard(recordId: string, sealed: SealedCard): SensitiveCard {
    const dek = this.unwrap(recordId, sealed);
    try {
      const pan = open(dek, sealed.pan_ct, `pan:${recordId}`).toString();
      const cvc = sealed.cvc_ct ? open(dek, sealed.cvc_ct, `cvc:${recordId}`).toString() : undefined;
      return new SensitiveCard(pan, cvc);
    } finally {
      dek.fill(0);
    }
  }

  /** Encrypt arbitrary bytes (documents, channel secrets) under a fresh data key. */
  sealBytes(recordId: string, data: Buffer): { kek_id: string; wrapped_dek: string; ct: string } {
    const dek = secureRandomBytes(32);
    try {
      return {
        kek_id: this.keks.active.id,
        wrapped_dek: seal(this.keks.active.key, dek, `dek:${recordId}`),
        ct: seal(dek, data, `data:${recordId}`),
      };
    } finally {
      dek.fill(0);
    }
  }

  openBytes(recordId: string, sealed: { kek_id: string; wrapped_dek: string; ct: string }): Buffer {
    const dek = this.unwrap(recordId, sealed);
    try {
      return open(dek, sealed.ct, `data:${recordId}`);
    } finally {
      dek.fill(0);
    }
  }

  /** A compact single-string form for small secrets kept in one column. */
  sealString(recordId: string, value: string): string {
    const s = this.sealBytes(recordId, Buffer.from(value));
    return `${s.kek_id}|${s.wrapped_dek}|${s.ct}`;
  }

  openString(recordId: string, packed: string): string {
    return this.openBytes(recordId, sealedStringParts(packed)).toString();
  }

  /** `rewrap` for the packed form of `sealString`; returns the value unchanged if already under the active KEK. */
  rewrapString(recordId: string, packed: string): string {
    const { kek_id, wrapped_dek, ct } = sealedStringParts(packed);
    if (kek_id === this.keks.active.id) return packed;
    const next = this.rewrap(recordId, { kek_id, wrapped_dek });
    return `${next.kek_id}|${next.wrapped_dek}|${ct}`;
  }

  /** Re-wrap a data key under the active KEK; the card ciphertext is untouched. */
  rewrap(recordId: string, sealed: { kek_id: string; wrapped_dek: string }): { kek_id: string; wrapped_dek: string } {
    const dek = this.unwrap(recordId, sealed);
    try {
      return { kek_id: this.keks.active.id, wrapped_dek: seal(this.keks.active.key, dek, `dek:${recordId}`) };
    } finally {
      dek.fill(0);
    }
  }

  /** A value only the key configured under `kekId` opens: what the boot check compares later configurations against. */
  kekCheck(kekId: string): string {
    const key = this.keks.all.get(kekId);
    if (!key) throw new Error(`key-encrypting key "${kekId}" is not configured`);
    return seal(key, Buffer.from(KEK_CHECK_TEXT), `kek-check:${kekId}`);
  }

  /** Whether the key configured under `kekId` opens that id's check value (false too when none is). */
  opensKekCheck(kekId: string, check: string): boolean {
    const key = this.keks.all.get(kekId);
    if (!key) return false;
    try {
      return open(key, check, `kek-check:${kekId}`).toString() === KEK_CHECK_TEXT;
    } catch {
      return false;
    }
  }

  /** Whether the KEK configured under the data key's KEK id opens it (false too when none is). */
  opensDataKey(recordId: string, sealed: { kek_id: string; wrapped_dek: string }): boolean {
    try {
      this.unwrap(recordId, sealed).fill(0);
      return true;
    } catch {
      return false;
    }
  }

  /**
   * The fingerprint stored with a card: the same card gives the same value for every
   * merchant, so it finds a stored card again and checks a merchant-initiated payment's
   * card against its initial payment's. Keyed so that a stolen table of fingerprints cannot
   * be brute-forced back to PANs. Never shown as it is (shownFingerprint).
   */
  fingerprint(pan: string): string {
    return createHmac('sha256', this.fingerprintKey).update(pan).digest('base64url').slice(0, 22);
  }

  /**
   * The fingerprint a merchant sees: its own keyed view of the stored one (decision 0018).
   * Equal for one card across a merchant's payments and stored cards, unrelated between
   * merchants, so two merchants cannot link a cardholder, and one cannot use authorise as
   * an oracle that turns another merchant's leaked fingerprint (with BIN and last 4) into
   * the card number.
   */
  shownFingerprint(merchantId: string, stored: string): string {
    return createHmac('sha256', this.shownFingerprintKey).update(merchantId).update('\u0000').update(stored).digest('base64url').slice(0, 22);
  }

  private unwrap(recordId: string, sealed: { kek_id: string; wrapped_dek: string }): Buffer {
    const kek = this.keks.all.get(sealed.kek_id);
    if (!kek) throw new Error(`key-encrypting key "${sealed.kek_id}" is not configured (VAULT_KEK / VAULT_OLD_KEKS)`);
    return open(kek, sealed.wrapped_dek, `dek:${recordId}`);
  }
}

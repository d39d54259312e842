import { randomFillSync } from 'node:crypto';

const POOL_SIZE = 16 * 1024;
let pool = Buffer.alloc(0);
let offset = 0;

/**
 * CSPRNG bytes drawn from a pooled buffer: one `randomFillSync` call serves hundreds
 * of ids, IVs and keys instead of one system call each. A pool is handed out once and
 * never refilled in place, so bytes given to one caller are never given to another.
 */
export function secureRandomBytes(size: number): Buffer {
  if (size > POOL_SIZE / 4) return randomFillSync(Buffer.alloc(size));
  if (offset + size > pool.length) {
    pool = randomFillSync(Buffer.allocUnsafe(POOL_SIZE));
    offset = 0;
  }
  const out = pool.subarray(offset, offset + size);
  offset += size;
  return out;
}

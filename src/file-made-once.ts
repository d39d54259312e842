import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';

/**
 * A small owner-only file (the sandbox's keys) made once under its name by whichever of
 * several processes starting together gets there first; the others read the winner's.
 */

/** Errors with which a file system that makes no hard links refuses one (exFAT, FAT, some network mounts). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

/** How long a reader waits for a file it found empty to be written (`createExclusively`'s moment). */
export const EMPTY_FILE_WAIT_MS = 2_000;

/**
 * Writes `content` to `file` unless it exists; answers whether this call made it. The content
 * goes to a temporary file first, hard-linked under the name: the file appears whole or not
 * at all, and a second maker's link fails with EEXIST. Where the file system makes no hard
 * links, the name is created exclusively and written in one write instead: a reader can find
 * it empty for that moment, which `readMadeFile` waits out.
 */
export function makeOnce(file: string, content: string): boolean {
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    writeWhole(temporary, content);
    try {
      linkSync(temporary, file);
      return true;
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? '';
      if (code === 'EEXIST') return false;
      if (!NO_HARD_LINKS.has(code)) throw error;
    }
  } finally {
    rmSync(temporary, { force: true });
  }
  return createExclusively(file, content);
}

/** The file's text; an empty one is read again until it is written or `EMPTY_FILE_WAIT_MS` passes. */
export function readMadeFile(file: string): string {
  const deadline = Date.now() + EMPTY_FILE_WAIT_MS;
  for (;;) {
    const text = readFileSync(file, 'utf8');
    if (text !== '' || Date.now() >= deadline) return text;
    // Config is read synchronously at boot, before anything else runs.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
  }
}

function createExclusively(file: string, content: string): boolean {
  let fd: number;
  try {
    fd = openSync(file, 'wx', 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw error;
  }
  try {
    writeAndSync(fd, content);
  } catch (error) {
    closeSync(fd);
    rmSync(file, { force: true });
    throw error;
  }
  closeSync(fd);
  return true;
}

function writeWhole(file: string, content: string): void {
  const fd = openSync(file, 'wx', 0o600);
  try {
    writeAndSync(fd, content);
  } finally {
    closeSync(fd);
  }
}

/** One write for a few hundred bytes: readers see none of it or all of it. */
function writeAndSync(fd: number, content: string): void {
  const bytes = Buffer.from(content);
  if (writeSync(fd, bytes) !== bytes.length) throw new Error(`short write of ${bytes.length} bytes`);
  fsyncSync(fd);
}

import { randomBytes } from 'node:crypto';
import { closeSync, fsyncSync, linkSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

/**
 * A small owner-only file (the sandbox's keys) made once under its name by whichever of
 * several processes starting together gets there first; the others read the winner's.
 */

/** Errors with which a file system that makes no hard links refuses one (exFAT, FAT, some network mounts). */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS', 'EXDEV']);

/** A temporary file lives for a write and a link; one this old was left by a process killed between them. */
export const STALE_TEMPORARY_MS = 60_000;

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

/**
 * Without hard links, a maker killed between creating the file and its one write leaves it
 * empty, and every later boot would wait for it and then find it damaged. Nobody ever read
 * keys from it, so it is removed for this boot to make it again; a young one is a maker
 * still writing, which `readMadeFile` waits for. Two boots finding the same abandoned file
 * at one moment may each make one, the second removing the first's: the database's key
 * check then refuses the process left with the lost keys, before it seals anything.
 */
export function removeAbandonedEmpty(file: string): void {
  try {
    const found = statSync(file);
    if (found.size === 0 && Date.now() - found.mtimeMs > STALE_TEMPORARY_MS) rmSync(file, { force: true });
  } catch {
    // No file: nothing was abandoned.
  }
}

/**
 * A process killed between writing its temporary file and linking (or renaming) it leaves
 * the file, keys and all. Only old ones go: a young one may be a process starting beside this
 * one right now, which would then fail to link it (on another host sharing the directory
 * too, where its process id means nothing here).
 */
export function removeStaleTemporaries(file: string): void {
  const prefix = `${basename(file)}.`;
  // `makeOnce`'s `<pid>.<random>.tmp`, and the `<pid>.tmp` of files replaced by a rename.
  const shape = /^\d+(?:\.[0-9a-f]{12})?\.tmp$/;
  const dir = dirname(file);
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    // A directory that can be written but not listed: the files wait for an operator.
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix) || !shape.test(name.slice(prefix.length))) continue;
    const path = join(dir, name);
    try {
      if (Date.now() - statSync(path).mtimeMs > STALE_TEMPORARY_MS) rmSync(path, { force: true });
    } catch {
      // Gone meanwhile: its maker linked or removed it.
    }
  }
}

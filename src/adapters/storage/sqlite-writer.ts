import { ThreadClient, type ThreadReply } from '../threads.js';
import type { CompiledStatement } from './compiled.js';
import type { Kek } from '../../config.js';

export type UnitOutcome = { ok: true } | { ok: false; message: string; code: string | undefined };

/**
 * A batch for the writer thread. Statements travel as a number and their parameters;
 * each SQL text crosses once, in `texts`, the first time it is used, because copying
 * every text with every row would cost the event loop more than the row itself.
 */
export interface WriterRequest {
  id: number;
  texts: Array<[number, string]>;
  /**
   * Per statement: its text's number, its parameters, which of them to pack
   * (CompiledStatement.pack) and the card to seal into them, if any (CompiledStatement.seal).
   */
  units: Array<Array<[number, unknown[], Array<[number, number]>?, CardForThread?]>>;
}

/** A card to seal on the thread: where its sealed columns start, the record id, PAN and CVC. */
export type CardForThread = [at: number, recordId: string, pan: string, cvc: string | null];

/** What the writer thread is started with. */
export interface WriterData {
  file: string;
  cardKek: { id: string; key: Uint8Array } | undefined;
}

/** A batch that failed as a whole: SQLite's message and code. */
export interface WriterFailure {
  message: string;
  code: string | undefined;
}

export type WriterReply = ThreadReply<UnitOutcome[], WriterFailure>;

/** An error from the writer thread keeps SQLite's code, so callers can tell a constraint violation from the rest. */
export class SqliteWriteError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
  ) {
    super(message);
    this.name = 'SqliteError';
  }
}

/**
 * The main thread's handle on the SQLite writer thread (sqlite-writer-thread.ts). A
 * batch's promise settles after the COMMIT that holds it has returned; batches sent while
 * the thread is busy share its next transaction.
 * If the thread dies, what it was doing is reported as failed (the commit may or may
 * not have happened, as with a process crash) and the next batch starts a new thread.
 */
export class SqliteWriter {
  private readonly thread: ThreadClient<UnitOutcome[], WriterFailure>;
  /** SQL texts the current thread has been sent; a new thread starts with none. */
  private textIds = new Map<string, number>();

  constructor(file: string, cardKek: Kek | undefined) {
    this.thread = new ThreadClient({
      base: import.meta.url,
      name: 'sqlite-writer-thread',
      data: { file, cardKek } satisfies WriterData,
      label: 'SQLite writer thread',
      failure: (e) => new SqliteWriteError(e.message, e.code),
      onStart: () => (this.textIds = new Map()),
    });
  }

  run(units: CompiledStatement[][]): Promise<UnitOutcome[]> {
    const texts: WriterRequest['texts'] = [];
    return this.thread.request(
      (id) => {
        // Packing JSON and sealing a card cost tens of microseconds each: they happen on the thread.
        const numbered = units.map((unit) => unit.map((s) => this.forThread(s, texts)));
        return { id, texts, units: numbered } satisfies WriterRequest;
      },
      // The thread never learnt the texts this message carried: the next use sends them again
      // (they are the newest numbers, so `textIds.size` stays the next free one).
      () => {
        for (const [, sql] of texts) this.textIds.delete(sql);
      },
    );
  }

  private forThread(s: CompiledStatement, texts: WriterRequest['texts']): WriterRequest['units'][number][number] {
    const n = this.textId(s.sql, texts);
    if (s.seal) return [n, s.params, s.pack, [s.seal.at, s.seal.recordId, s.seal.card.pan, s.seal.card.cvc ?? null]];
    return s.pack ? [n, s.params, s.pack] : [n, s.params];
  }

  /** The number the current thread knows `sql` by; new texts are added to the message. */
  private textId(sql: string, texts: WriterRequest['texts']): number {
    let n = this.textIds.get(sql);
    if (n === undefined) {
      n = this.textIds.size;
      this.textIds.set(sql, n);
      texts.push([n, sql]);
    }
    return n;
  }

  /** Held until the thread has closed its connection, so the WAL is left tidy. */
  close(): Promise<void> {
    return this.thread.close(true);
  }
}

/**
 * Whether an error says the database cannot serve right now (a connection lost or refused,
 * a server restarting or out of room, a file that cannot be written), as opposed to a query
 * that is wrong: the former is worth trying again later, the latter is a bug.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof DatabaseDeadlineError) return true;
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && unavailableCode(code)) return true;
    // pg raises these without a code: the socket closed, or no connection came in time.
    if (/^Connection terminated|^timeout exceeded when trying to connect|not queryable/.test(e.message)) return true;
  }
  return false;
}

function unavailableCode(code: string): boolean {
  return (
    // Node's socket errors on the way to PostgreSQL.
    /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN)$/.test(code) ||
    // PostgreSQL: connection exceptions (08), insufficient resources (53: disk full, too many
    // connections), shutting down or starting up (57P01-03), a standby after a failover (25006),
    // a statement cancelled by the server's statement_timeout or an administrator (57014), a lock
    // not had within the server's lock_timeout (55P03): the gateway never asks for either itself.
    /^(08...|53...|57P0[123]|57014|55P03|25006)$/.test(code) ||
    // SQLite: disk full, a read-only file or directory, I/O errors, a lock held elsewhere too long.
    /^SQLITE_(FULL|READONLY|IOERR|CANTOPEN|BUSY)/.test(code)
  );
}

/** A query whose connection went silent for longer than the gateway waits (database.ts). */
export class DatabaseDeadlineError extends Error {
  override name = 'DatabaseDeadlineError';

  constructor(ms: number) {
    super(`the database did not answer within ${ms} ms; the connection was dropped`);
  }
}

/**
 * Whether an error ended its connection (a backend terminated, the socket closed), so the
 * connection must not go back to a pool: the server's FATAL error arrives before its socket
 * closes, and pg-pool, seeing the client still queryable, would hand it to the next request.
 */
export function isConnectionLost(error: unknown): boolean {
  for (let e = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^(08...|57P0[123]|ECONNRESET|EPIPE|ETIMEDOUT)$/.test(code)) return true;
    if (/^Connection terminated|not queryable/.test(e.message)) return true;
  }
  return false;
}

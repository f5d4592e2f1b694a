/**
 * Stable failure codes of the local stack. Callers (the all-in-one, the test kit) match on `code`;
 * the message is for a human and names the fix where there is one.
 */
export type LocalStackErrorCode =
  /** A server binary is not installed; the message names the Debian package. */
  | 'MISSING_BINARY'
  /** The server kept running but did not answer in time. */
  | 'NOT_READY'
  /** The server exited before it answered; the message carries the tail of its log. */
  | 'EXITED_EARLY'
  /** mariadb-install-db failed while creating a fresh data directory. */
  | 'INIT_FAILED'
  /** A server left over from a crashed run holds the data directory and would not die. */
  | 'STALE_PROCESS'
  /** A nats-server config with a top-level authorization {} block beside accounts {}. */
  | 'UNSAFE_CONFIG';

export class LocalStackError extends Error {
  override readonly name = 'LocalStackError';
  readonly code: LocalStackErrorCode;

  constructor(code: LocalStackErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
  }
}

export function isLocalStackError(err: unknown, code?: LocalStackErrorCode): err is LocalStackError {
  return err instanceof LocalStackError && (code === undefined || err.code === code);
}

/**
 * Stable error codes. Callers match on `code`, never on message text. The HTTP status of each
 * wire-visible code is the original hub's (reference 1.3); bus-only codes carry the status an
 * HTTP front door should use if it has to surface them.
 */
export const ERROR_STATUS = {
  BAD_REQUEST: 400,
  FORBIDDEN: 403,
  AUTH_REQUIRED: 401,
  AUTH_INVALID: 401,
  LICENSE_INVALID: 401,
  NOT_FOUND: 404,
  ACCOUNT_REQUIRED: 403,
  PUBLISH_LIMIT_REACHED: 429,
  RATE_LIMITED: 429,
  UPLOAD_TOO_LARGE: 413,
  ARTIFACT_NOT_FOUND: 404,
  JOB_NOT_FOUND: 404,
  JOB_NOT_RUNNING: 409,
  UNSUPPORTED_MEDIA_TYPE: 415,
  REQUEST_TIMEOUT: 408,
  ADMIN_DISABLED: 403,
  SERVICE_UNAVAILABLE: 503,
  /** The hub's object storage or event log is full (WebDAV's 507, the closest standard status). */
  INSUFFICIENT_STORAGE: 507,
  UPSTREAM_TIMEOUT: 504,
  RANGE_NOT_SATISFIABLE: 416,
  INTERNAL_ERROR: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export const ERROR_CODES = Object.keys(ERROR_STATUS) as ErrorCode[];

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.hasOwn(ERROR_STATUS, value);
}

/** How a caller should treat a failure: the rule travels with the error. */
export type RetryRule = 'never' | 'retry' | 'retry-later';

/**
 * The one error class that crosses service boundaries. It serializes to the wire envelope
 * `{"error":{"code","message"}}` and back without losing its code.
 */
export class HubError extends Error {
  override readonly name = 'HubError';
  readonly code: ErrorCode;
  readonly retry: RetryRule;
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options: { cause?: unknown; retry?: RetryRule; details?: Record<string, unknown> } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retry =
      options.retry ??
      (code === 'SERVICE_UNAVAILABLE' || code === 'UPSTREAM_TIMEOUT'
        ? 'retry'
        : code === 'INSUFFICIENT_STORAGE' || code === 'RATE_LIMITED'
          ? 'retry-later'
          : 'never');
    this.details = options.details;
  }

  get status(): number {
    return ERROR_STATUS[this.code];
  }

  /** The original hub's envelope; `details` (e.g. `login_url`, `usage`) sit beside code and message. */
  toEnvelope(): { error: Record<string, unknown> } {
    return { error: { code: this.code, message: this.message, ...this.details } };
  }
}

export function isHubError(value: unknown): value is HubError {
  return value instanceof HubError;
}

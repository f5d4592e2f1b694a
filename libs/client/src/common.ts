/** What both transports share. */
import { createHash } from 'node:crypto';
import type { ToolJobOutcome } from '@perry-hub/contracts';

/** The hub refused (its stable error code), or the client found the answer wrong (CHECKSUM, ...). */
export class HubClientError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status?: number,
  ) {
    super(`${code}: ${message}`);
    this.name = 'HubClientError';
  }
}

/** The error of a refused HTTP answer: the hub's `{"error":{code,message}}` envelope, or its text. */
export function answerError(status: number, text: string, what?: string): HubClientError {
  let code = 'HTTP_ERROR';
  let message = text.slice(0, 300);
  try {
    const e = (JSON.parse(text) as { error?: { code?: string; message?: string } }).error;
    if (e?.code) [code, message] = [e.code, e.message ?? ''];
  } catch {
    // not the envelope
  }
  return new HubClientError(code, what === undefined ? message : `${what}: ${message}`, status);
}

export interface Submit {
  /** The manifest (`build_type: "plugin"` for a plugin build). */
  readonly manifest: Record<string, unknown>;
  readonly credentials?: Record<string, unknown>;
  /** gzip-compressed tar of the project. */
  readonly tarball: Buffer;
  readonly idempotencyKey?: string;
  readonly callbackUrl?: string;
}

/** One message of a job's event log (`message` is exactly what the CLI receives). */
export interface JobEvent {
  readonly seq: number;
  readonly message: Record<string, unknown>;
}

/** How a job ended (the tools' event stream; `finished` when the record does not say). */
export type JobOutcome = ToolJobOutcome;

export function sha256Hex(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

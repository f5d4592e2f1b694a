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

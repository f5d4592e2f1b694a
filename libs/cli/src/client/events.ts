/**
 * A job's events over Server-Sent Events: `jobEventStream` of `@perry-hub/client` (history, then
 * live; Last-Event-ID resume), its errors as the command's.
 */
import { HubClientError, jobEventStream } from '@perry-hub/client';
import { CliError, EXIT } from './common.js';
import { refused } from './http.js';

export type JobEvent = Record<string, unknown> & { type: string };

export interface FollowOptions {
  readonly follow: boolean;
  readonly onEvent: (event: JobEvent) => void;
  readonly onReconnect?: (attempt: number) => void;
  /** Without follow: this long without an event after the last one ends the history (1 s). */
  readonly quietMs?: number;
}

export async function followEvents(
  server: string,
  jobId: string,
  bearer: string,
  options: FollowOptions,
): Promise<void> {
  try {
    for await (const { message } of jobEventStream(server, jobId, bearer, {
      follow: options.follow,
      ...(options.onReconnect ? { onReconnect: options.onReconnect } : {}),
      ...(options.quietMs !== undefined ? { quietMs: options.quietMs } : {}),
    })) {
      options.onEvent(message);
    }
  } catch (err) {
    if (!(err instanceof HubClientError)) throw err;
    if (err.status !== undefined) {
      throw refused(
        err.status,
        JSON.stringify({ error: { code: err.code, message: err.message.replace(/^[A-Z_]+: /, '') } }),
        `the events of job ${jobId}`,
      );
    }
    if (err.code === 'UNREACHABLE')
      throw new CliError(`${err.message.replace(/^[A-Z_]+: /, '')}; check --server or PERRY_HUB_SERVER`, EXIT.hub);
    throw new CliError(err.message.replace(/^[A-Z_]+: /, ''), EXIT.hub);
  }
}

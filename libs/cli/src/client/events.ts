/**
 * A job's events over Server-Sent Events (`GET /api/v1/jobs/:id/events`): the history, then live.
 * Without `follow`, stop once the history has arrived (the stream goes quiet) or the job ended;
 * with it, follow until the hub closes the stream after the job's end, resuming with
 * `Last-Event-ID` after a dropped connection.
 */
import { createParser } from 'eventsource-parser';
import { CliError, EXIT } from './common.js';
import { refused, unreachable } from './http.js';

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
  let lastId: string | undefined;
  let failures = 0;
  for (;;) {
    const controller = new AbortController();
    let ended = false;
    let quiet: NodeJS.Timeout | undefined;
    const stopSoon = () => {
      if (options.follow) return;
      clearTimeout(quiet);
      quiet = setTimeout(() => controller.abort(), options.quietMs ?? 1_000);
    };
    let res: Response;
    try {
      res = await fetch(`${server}/api/v1/jobs/${encodeURIComponent(jobId)}/events`, {
        headers: {
          accept: 'text/event-stream',
          authorization: `Bearer ${bearer}`,
          ...(lastId ? { 'last-event-id': lastId } : {}),
        },
        signal: controller.signal,
      });
    } catch (err) {
      if (failures++ < 5 && lastId !== undefined) {
        options.onReconnect?.(failures);
        await new Promise((r) => setTimeout(r, 1_000 * failures));
        continue;
      }
      throw unreachable(server, err);
    }
    if (!res.ok || !res.body) throw refused(res.status, await res.text(), `the events of job ${jobId}`);
    const parser = createParser({
      onEvent: (message) => {
        if (message.id) lastId = message.id;
        let event: unknown;
        try {
          event = JSON.parse(message.data);
        } catch {
          return;
        }
        if (typeof event !== 'object' || event === null || typeof (event as JobEvent).type !== 'string') return;
        options.onEvent(event as JobEvent);
        if ((event as JobEvent).type === 'complete') ended = true;
        stopSoon();
      },
    });
    stopSoon();
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        parser.feed(decoder.decode(chunk, { stream: true }));
        if (ended && !options.follow) break;
      }
      clearTimeout(quiet);
      return; // the hub closed the stream: the job is over (or, without follow, we stopped)
    } catch (err) {
      clearTimeout(quiet);
      if (controller.signal.aborted) return;
      if (!options.follow || failures++ >= 5) {
        throw new CliError(`the event stream of job ${jobId} broke: ${(err as Error).message}`, EXIT.hub);
      }
      options.onReconnect?.(failures);
      await new Promise((r) => setTimeout(r, 1_000 * failures));
    }
  }
}

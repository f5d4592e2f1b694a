/**
 * A job's events over Server-Sent Events (`GET /api/v1/jobs/:id/events`) as an async iterator:
 * the history, then live. Without `follow`, it stops once the history has arrived (the stream
 * goes quiet) or the job ended; with it, it follows until the hub closes the stream after the
 * job's end, resuming with `Last-Event-ID` after a dropped connection.
 */
import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { answerError, HubClientError } from './common.js';

export interface SseEvent {
  /** The stream sequence (`Last-Event-ID`). */
  readonly id: string | undefined;
  readonly message: Record<string, unknown> & { type: string };
}

export interface SseOptions {
  readonly follow: boolean;
  readonly onReconnect?: (attempt: number) => void;
  /** Without follow: this long without an event after the last one ends the history (1 s). */
  readonly quietMs?: number;
  /** Continue after this event id. */
  readonly lastEventId?: string;
}

const MAX_RECONNECTS = 5;

export async function* jobEventStream(
  server: string,
  jobId: string,
  credential: string,
  options: SseOptions,
): AsyncGenerator<SseEvent, void> {
  let lastId = options.lastEventId;
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
      res = await fetch(`${server.replace(/\/+$/, '')}/api/v1/jobs/${encodeURIComponent(jobId)}/events`, {
        headers: {
          accept: 'text/event-stream',
          authorization: `Bearer ${credential}`,
          ...(lastId ? { 'last-event-id': lastId } : {}),
        },
        signal: controller.signal,
      });
    } catch (err) {
      if (failures++ < MAX_RECONNECTS && lastId !== undefined) {
        options.onReconnect?.(failures);
        await new Promise((r) => setTimeout(r, 1_000 * failures));
        continue;
      }
      throw new HubClientError('UNREACHABLE', `cannot reach the hub at ${server}: ${(err as Error).message}`);
    }
    if (!res.ok || !res.body) {
      throw answerError(res.status, await res.text());
    }
    const pending: SseEvent[] = [];
    const parser = createParser({
      onEvent: (m: EventSourceMessage) => {
        if (m.id) lastId = m.id;
        let event: unknown;
        try {
          event = JSON.parse(m.data);
        } catch {
          return;
        }
        if (typeof event !== 'object' || event === null || typeof (event as { type?: unknown }).type !== 'string')
          return;
        pending.push({ id: m.id, message: event as SseEvent['message'] });
        if ((event as { type: string }).type === 'complete') ended = true;
        stopSoon();
      },
    });
    stopSoon();
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        parser.feed(decoder.decode(chunk, { stream: true }));
        while (pending.length > 0) yield pending.shift()!;
        if (ended && !options.follow) break;
      }
      clearTimeout(quiet);
      return; // the hub closed the stream: the job is over (or, without follow, we stopped)
    } catch (err) {
      clearTimeout(quiet);
      while (pending.length > 0) yield pending.shift()!;
      if (controller.signal.aborted) return;
      if (!options.follow || failures++ >= MAX_RECONNECTS) {
        throw new HubClientError('STREAM_BROKEN', `the event stream of job ${jobId} broke: ${(err as Error).message}`);
      }
      options.onReconnect?.(failures);
      await new Promise((r) => setTimeout(r, 1_000 * failures));
    }
  }
}

/**
 * `GET /api/v1/jobs/:id/events`: the job's event log as Server-Sent Events. The same ordered
 * consumer as a WebSocket watcher's replays the log from its start and follows it live with no
 * gap and no duplicate; each event's `data` is the stored wire message, byte for byte what the
 * CLI receives, and its `id` the stream sequence of the log entry that holds it (`<seq>.<i>` for
 * a batched entry's messages but its last, EVENT_BATCH_HEADER), so a client that reconnects with
 * `Last-Event-ID` continues where it left off. The stream ends once the job's outcome
 * (`<p>.jobs.<id>.done`, published after its last message) has been sent, or, for a finished job
 * whose log has aged out, once the replay is done.
 */
import { DeliverPolicy, jetstream, type ConsumerMessages } from '@nats-io/jetstream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { EVENT_BATCH_HEADER, splitEvents, topologyNames, type JobStatus, type Subjects } from '@perry-hub/contracts';
import { endOrderedRead, orderedConsumer, type Logger, type NatsConnection } from '@perry-hub/runtime';

const TERMINAL: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled', 'expired']);
const KEEPALIVE_MS = 15_000;
/** A finished job whose log has no `done` (aged out) ends this long after the replay went quiet. */
const QUIET_END_MS = 1_000;

export interface EventStreamDeps {
  nc: NatsConnection;
  subjects: Subjects;
  subjectPrefix: string;
  log: Logger;
  /** Counted per event sent (metrics). */
  onEvent?: () => void;
}

const decoder = new TextDecoder();

/**
 * Where a reconnecting client left off: `<seq>` after a whole log entry, `<seq>.<i>` after the
 * message at index i of a batched one (EVENT_BATCH_HEADER), whose later messages are still due.
 */
function lastEventId(request: FastifyRequest): { seq: number; index?: number } | undefined {
  const header = request.headers['last-event-id'];
  const value = Array.isArray(header) ? header[0] : header;
  const m = value === undefined ? null : /^(\d{1,15})(?:\.(\d{1,5}))?$/.exec(value);
  if (!m) return undefined;
  return m[2] === undefined ? { seq: Number(m[1]) } : { seq: Number(m[1]), index: Number(m[2]) };
}

export async function streamJobEvents(
  deps: EventStreamDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  jobId: string,
  state: JobStatus,
): Promise<void> {
  const after = lastEventId(request);
  const consumer = await orderedConsumer(jetstream(deps.nc), topologyNames(deps.subjectPrefix).eventsStream, {
    // `<p>.jobs.<id>.*`: its events and its `done`, in one filter (one subject per consumer create
    // request keeps the JetStream API subjects within what the ingest may use).
    filter_subjects: deps.subjects.jobEvents(jobId).replace(/\.events$/, '.*'),
    ...(after === undefined
      ? { deliver_policy: DeliverPolicy.All }
      : {
          deliver_policy: DeliverPolicy.StartSequence,
          opt_start_seq: after.index === undefined ? after.seq + 1 : after.seq,
        }),
  });
  const messages: ConsumerMessages = await consumer.consume({ max_messages: 256 });
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache, no-transform',
    connection: 'keep-alive',
    'x-accel-buffering': 'no',
  });
  res.write(': replay of the job event log, then live\n\n');
  let ended = false;
  let quiet: NodeJS.Timeout | undefined;
  const end = () => {
    if (ended) return;
    ended = true;
    clearInterval(keepalive);
    clearTimeout(quiet);
    void endOrderedRead(deps.nc, consumer, messages);
    if (!res.writableEnded) res.end();
  };
  const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
  const armQuietEnd = () => {
    clearTimeout(quiet);
    quiet = setTimeout(end, QUIET_END_MS);
  };
  request.raw.on('close', end);
  res.on('close', end);
  // Finished before we looked: if its log is gone (or never had a `done`), stop once it is replayed.
  if (TERMINAL.has(state)) armQuietEnd();
  try {
    for await (const m of messages) {
      if (ended) break;
      clearTimeout(quiet);
      if (m.subject === deps.subjects.jobDone(jobId)) {
        end();
        break;
      }
      const frames = splitEvents(m.data, m.headers?.get(EVENT_BATCH_HEADER));
      for (let i = 0; i < frames.length; i++) {
        if (after?.index !== undefined && m.seq === after.seq && i <= after.index) continue;
        // A wire message is one line of JSON; SSE `data` may not contain a bare newline.
        const data = decoder.decode(frames[i]).replace(/\r?\n/g, '\ndata: ');
        // The last message of an entry is the entry (`seq`): a client resumes after all of it.
        const id = i === frames.length - 1 ? `${m.seq}` : `${m.seq}.${i}`;
        if (!res.write(`id: ${id}\ndata: ${data}\n\n`)) {
          await new Promise((resolve) => {
            res.once('drain', resolve);
            res.once('close', resolve);
          });
        }
        deps.onEvent?.();
      }
      if (TERMINAL.has(state) && m.info.pending === 0) armQuietEnd();
    }
  } catch (err) {
    deps.log.warn({ err, jobId }, 'job event stream failed');
  } finally {
    end();
  }
}

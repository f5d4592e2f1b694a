/**
 * Queueing a finished job's callbacks. From its outcome, which the scheduler publishes for a job
 * with a callback URL on `<p>.callbacks.<jobId>` too (EVENTS stream, durable consumer
 * `ingest-callbacks`; no other job's outcome reaches the ingest): such a job gets one delivery
 * per final artifact (a copy of its bytes is kept under `callbacks/<webhook id>` until
 * delivered, because artifacts expire long before the retries end) and then one terminal event,
 * in that order (`seq`). Idempotent: a redelivered outcome inserts nothing twice (unique job_id,
 * seq), so a crash anywhere here is repaired by the redelivery.
 */
import { randomUUID } from 'node:crypto';
import { jetstream } from '@nats-io/jetstream';
import { topologyNames, type JobDone } from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import { consumeDurable, type BlobStore, type Logger, type NatsConnection } from '@perry-hub/runtime';
import type { Subjects } from '@perry-hub/contracts';

export const CALLBACK_PREFIX = 'callbacks/';

const EVENT_TYPES: Record<JobDone['outcome'], string> = {
  succeeded: 'build.succeeded',
  failed: 'build.failed',
  cancelled: 'build.cancelled',
  expired: 'build.expired',
};

export interface QueueDeps {
  nc: NatsConnection;
  subjects: Subjects;
  subjectPrefix: string;
  db: Pool;
  blobs: BlobStore;
  log: Logger;
  /** Called after deliveries were queued: the sender looks at once. */
  onQueued: () => void;
}

export async function queueCallbacks(deps: QueueDeps, done: JobDone, now: number): Promise<number> {
  // Most jobs have no callback: they cost no statement here.
  if (!done.callback) return 0;
  const [jobs] = await deps.db.query<RowDataPacket[]>(
    'SELECT callback_url, tool, targets, build_type FROM builds WHERE id = ?',
    [done.jobId],
  );
  const job = jobs[0];
  const url = job?.['callback_url'] as string | null | undefined;
  if (!job || !url) return 0;
  const [existing] = await deps.db.query<RowDataPacket[]>(
    'SELECT COUNT(*) AS n FROM callback_deliveries WHERE job_id = ?',
    [done.jobId],
  );
  if (Number(existing[0]?.['n'] ?? 0) > 0) return 0;
  const [artifacts] = await deps.db.query<RowDataPacket[]>(
    `SELECT object_name, name, target, size, sha256 FROM artifacts
      WHERE job_id = ? AND held = FALSE AND attempt = (SELECT MAX(attempt) FROM artifacts WHERE job_id = ? AND held = FALSE)
      ORDER BY created_at, name`,
    [done.jobId, done.jobId],
  );
  const tool = (job['tool'] as string | null) ?? null;
  const rows: unknown[][] = [];
  let seq = 0;
  // Binaries of a plugin build are delivered themselves; an app build's callback is its event.
  if (done.outcome === 'succeeded' && job['build_type'] === 'plugin') {
    for (const a of artifacts) {
      const id = `msg_${randomUUID()}`;
      const copy = `${CALLBACK_PREFIX}${id}`;
      const found = await deps.blobs.get(String(a['object_name']));
      if (!found) {
        deps.log.warn({ jobId: done.jobId, artifact: a['name'] }, 'artifact gone before its callback was queued');
        continue;
      }
      await deps.blobs.put(copy, found.stream, { fresh: true });
      rows.push([
        id,
        done.jobId,
        seq++,
        'artifact',
        url,
        tool,
        null,
        null,
        copy,
        a['name'],
        a['target'],
        a['size'],
        a['sha256'],
      ]);
    }
  }
  const event = {
    type: EVENT_TYPES[done.outcome],
    timestamp: new Date(done.finishedAt).toISOString(),
    data: {
      job_id: done.jobId,
      outcome: done.outcome,
      targets: done.targets,
      artifacts: artifacts.map((a) => ({
        name: String(a['name']),
        target: String(a['target']),
        size: Number(a['size']),
        sha256: String(a['sha256']),
      })),
      ...(done.reason ? { reason: done.reason } : {}),
    },
  };
  rows.push([
    `msg_${randomUUID()}`,
    done.jobId,
    seq++,
    'event',
    url,
    tool,
    event.type,
    JSON.stringify(event),
    null,
    null,
    null,
    null,
    null,
  ]);
  await deps.db.query(
    `INSERT IGNORE INTO callback_deliveries
       (id, job_id, seq, kind, url, tool, event_type, body, object_name, artifact_name, target, size, sha256,
        state, attempts, next_attempt_at, created_at)
     VALUES ${rows.map(() => "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?)").join(', ')}`,
    rows.flatMap((r) => [...r, now, now]),
  );
  deps.onQueued();
  return rows.length;
}

/** Consume the outcomes of jobs with callbacks and queue those; returns a stop function. */
export async function consumeDone(deps: QueueDeps): Promise<() => Promise<void>> {
  const names = topologyNames(deps.subjectPrefix);
  const consumer = await jetstream(deps.nc).consumers.get(names.eventsStream, names.ingestCallbacksConsumer);
  const messages = await consumeDurable(deps.nc, consumer, { max_messages: 64 }, deps.log);
  const loop = (async () => {
    for await (const m of messages) {
      try {
        await queueCallbacks(deps, m.json<JobDone>(), Date.now());
        m.ack();
      } catch (err) {
        deps.log.warn({ err, subject: m.subject }, 'callbacks not queued yet; retried');
        m.nak(2_000);
      }
    }
  })();
  return async () => {
    await messages.close().catch(() => undefined);
    await loop.catch(() => undefined);
  };
}

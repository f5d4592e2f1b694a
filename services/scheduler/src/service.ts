/**
 * The scheduler owns the job lifecycle. MySQL is the system of record for jobs, so the queue
 * length it reports is read from there.
 */
import { HubError, queuePositionEndpoint, queueStatsEndpoint } from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import { configSchema, dbFields, defineService, handle, natsFields, processFields } from '@perry-hub/runtime';

export const SchedulerConfig = configSchema({ ...natsFields, ...dbFields, ...processFields });

export async function countQueued(db: Pool): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM builds WHERE status = 'queued'");
  return Number(rows[0]?.['n'] ?? 0);
}

/** 1-based place of a queued job in dispatch order (priority, then age); 0 once it left the queue. */
export async function queuePosition(db: Pool, jobId: string): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>('SELECT status, priority, queuedAt FROM builds WHERE id = ?', [jobId]);
  const job = rows[0];
  if (!job) throw new HubError('JOB_NOT_FOUND', 'Job not found');
  if (job['status'] !== 'queued') return 0;
  const [ahead] = await db.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM builds WHERE status = 'queued' AND id <> ?
       AND (priority > ? OR (priority = ? AND (queuedAt < ? OR (queuedAt = ? AND id < ?))))`,
    [jobId, job['priority'], job['priority'], job['queuedAt'], job['queuedAt'], jobId],
  );
  return Number(ahead[0]?.['n'] ?? 0) + 1;
}

export const scheduler = defineService({
  name: 'scheduler',
  config: SchedulerConfig,
  needsDb: true,
  start: async (deps) => {
    const db = deps.db as Pool;
    deps.serve([
      handle(queueStatsEndpoint, async () => ({ queueLength: await countQueued(db) })),
      handle(queuePositionEndpoint, async ({ jobId }) => ({ position: await queuePosition(db, jobId) })),
    ]);
    return { stop: async () => undefined };
  },
});

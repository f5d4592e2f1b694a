/**
 * The scheduler owns the job lifecycle. MySQL is the system of record for jobs, so the queue
 * length it reports is read from there.
 */
import { queueStatsEndpoint } from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import { configSchema, dbFields, defineService, handle, natsFields, processFields } from '@perry-hub/runtime';

export const SchedulerConfig = configSchema({ ...natsFields, ...dbFields, ...processFields });

export async function countQueued(db: Pool): Promise<number> {
  const [rows] = await db.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM builds WHERE status = 'queued'");
  return Number(rows[0]?.['n'] ?? 0);
}

export const scheduler = defineService({
  name: 'scheduler',
  config: SchedulerConfig,
  needsDb: true,
  start: async (deps) => {
    const db = deps.db as Pool;
    deps.serve([handle(queueStatsEndpoint, async () => ({ queueLength: await countQueued(db) }))]);
    return { stop: async () => undefined };
  },
});

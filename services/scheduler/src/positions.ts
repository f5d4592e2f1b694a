/**
 * Queue positions as the leader sees them. A job it has taken from the intake is in its queue; one
 * it has not taken yet (the ingest asks right after publishing the intake message, so this is the
 * usual case) is ranked where it will go. Counting in MySQL instead scans every queued row with
 * the job's priority or a higher one: 120-170 ms per submission with 100,000 jobs queued.
 */
import { HubError, TIER_PRIORITY } from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import { SIGN_BOOST_STEPS, sortKey, type Context } from './state.js';
import type { JobRow } from './store.js';

/** 1-based place of a queued job among the jobs needing the same targets; 0 once it left the queue. */
export function leaderPosition(ctx: Context, row: JobRow): number {
  if (row.status !== 'queued') return 0;
  return placeInQueue(ctx, row.id, row.targets, sortKey(ctx, row));
}

/**
 * 1-based place of a job the leader holds as queued: in the dispatch queue, or where it will go
 * (not taken from the intake yet, or parked while it waits for its worker to claim it back).
 */
export function placeInQueue(ctx: Context, jobId: string, targets: readonly string[], key: number): number {
  const known = ctx.queue.position(jobId);
  if (known > 0) return known;
  return ctx.queue.ahead(targets, key, jobId) + 1;
}

/** `priorityPoints` (state.ts) as SQL over a `builds` row: the same table, so the same order. */
const POINTS_SQL = `(CASE tier ${Object.entries(TIER_PRIORITY)
  .map(([tier, points]) => `WHEN '${tier}' THEN ${points}`)
  .join(' ')} ELSE 0 END + CASE stage WHEN 'sign' THEN ${SIGN_BOOST_STEPS} ELSE 0 END)`;

/**
 * A standby's answer, counted in MySQL with the leader's rule (sortKey): the queued jobs needing
 * the same targets that will be dispatched first. 0 once the job left the queue.
 */
export async function recordPosition(db: Pool, agingStepMs: number, jobId: string): Promise<number> {
  const key = `queuedAt - ${POINTS_SQL} * ?`;
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT status, targets, ${key} AS sort_key FROM builds WHERE id = ?`,
    [agingStepMs, jobId],
  );
  const job = rows[0];
  if (!job) throw new HubError('JOB_NOT_FOUND', 'Job not found');
  if (job['status'] !== 'queued') return 0;
  const [ahead] = await db.query<RowDataPacket[]>(
    `SELECT COUNT(*) AS n FROM builds WHERE status = 'queued' AND targets = ? AND id <> ?
       AND (${key} < ? OR (${key} = ? AND id < ?))`,
    [job['targets'], jobId, agingStepMs, job['sort_key'], agingStepMs, job['sort_key'], jobId],
  );
  return Number(ahead[0]?.['n'] ?? 0) + 1;
}

/**
 * Reservations never outlive their request. A submission reserves its place before its job row
 * exists; when the process dies in between (kill -9, a crash of the whole hub), nobody calls
 * `release-submission`, and the reservation would count toward the hourly limit for an hour.
 *
 * Each reservation names the ingest instance holding its request and carries the request's
 * deadline (`expires_at`). One with no job row is released here as soon as its instance is known
 * dead (its liveness record deleted by an orderly stop or by the restarted all-in-one, which
 * names its predecessors, or expired), and in any case once its deadline passed: at start, when
 * an instance's record is deleted, and every sweep interval.
 */
import type { Pool, RowDataPacket } from '@perry-hub/db';
import type { Logger } from '@perry-hub/runtime';
import { releaseSubmission } from './authorize.js';

const BATCH = 200;

/** Release dead reservations; returns how many were released. */
export async function releaseDeadReservations(
  db: Pool,
  graceMs: number,
  now = Date.now(),
  instanceDead: (instanceId: string) => boolean = () => false,
): Promise<number> {
  // Rows from before reservations carried a deadline count from their submission time. Those past
  // their deadline first: in-flight requests of live instances must not crowd them out of a batch.
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT s.job_id, s.instance_id, COALESCE(s.expires_at, s.submitted_at + ?) < ? AS overdue
       FROM submissions s
      WHERE s.state = 'pending' AND (COALESCE(s.expires_at, s.submitted_at + ?) < ? OR s.instance_id IS NOT NULL)
        AND NOT EXISTS (SELECT 1 FROM builds b WHERE b.id = s.job_id)
      ORDER BY overdue DESC
      LIMIT ?`,
    [graceMs, now, graceMs, now, BATCH],
  );
  let released = 0;
  for (const r of rows) {
    const instance = r['instance_id'] == null ? undefined : String(r['instance_id']);
    if (!Number(r['overdue']) && !(instance !== undefined && instanceDead(instance))) continue;
    // The same transaction as an explicit release (locks, project binding), and idempotent.
    if (await releaseSubmission(db, String(r['job_id']))) released += 1;
  }
  return released;
}

export interface ReservationSweeper {
  /** Sweep now (coalesced with a running sweep). */
  kick(): void;
  stop(): Promise<void>;
}

/** Sweeps at once, then every `intervalMs` and on `kick()` (never two at once). */
export function startReservationSweeper(
  deps: { db: Pool; log: Logger },
  options: { intervalMs: number; graceMs: number; instanceDead?: (instanceId: string) => boolean },
): ReservationSweeper {
  let running: Promise<unknown> = Promise.resolve();
  let busy = false;
  let again = false;
  const tick = () => {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    running = releaseDeadReservations(deps.db, options.graceMs, Date.now(), options.instanceDead)
      .then((n) => {
        if (n > 0) deps.log.info({ released: n }, 'released reservations whose submission died before its job');
      })
      .catch((err: unknown) => deps.log.warn({ err }, 'reservation sweep failed; retrying next interval'))
      .finally(() => {
        busy = false;
        if (again && !stopped) {
          again = false;
          tick();
        }
      });
  };
  let stopped = false;
  tick();
  const timer = setInterval(tick, options.intervalMs);
  timer.unref();
  return {
    kick: () => {
      if (!stopped) tick();
    },
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}

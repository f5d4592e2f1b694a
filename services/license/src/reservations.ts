/**
 * Reservations never outlive their request. A submission reserves its place before its job row
 * exists; when the process dies in between (kill -9, a crash of the whole hub), nobody calls
 * `release-submission`, and the reservation would count toward the hourly limit for an hour.
 * Each reservation carries its request's deadline (`expires_at`); past it, one with no job row
 * can no longer get one, and is released here: at start and then every sweep interval.
 */
import type { Pool, RowDataPacket } from '@perry-hub/db';
import type { Logger } from '@perry-hub/runtime';
import { releaseSubmission } from './authorize.js';

const BATCH = 200;

/** Release dead reservations; returns how many were released. */
export async function releaseDeadReservations(db: Pool, graceMs: number, now = Date.now()): Promise<number> {
  // Rows from before reservations carried a deadline count from their submission time.
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT s.job_id FROM submissions s
      WHERE s.state = 'pending' AND COALESCE(s.expires_at, s.submitted_at + ?) < ?
        AND NOT EXISTS (SELECT 1 FROM builds b WHERE b.id = s.job_id)
      LIMIT ?`,
    [graceMs, now, BATCH],
  );
  let released = 0;
  for (const r of rows) {
    // The same transaction as an explicit release (locks, project binding), and idempotent.
    if (await releaseSubmission(db, String(r['job_id']))) released += 1;
  }
  return released;
}

/** Sweeps at once, then every `intervalMs` (never two at once); `stop()` waits for a running one. */
export function startReservationSweeper(
  deps: { db: Pool; log: Logger },
  options: { intervalMs: number; graceMs: number },
): { stop(): Promise<void> } {
  let running: Promise<unknown> = Promise.resolve();
  let busy = false;
  const tick = () => {
    if (busy) return;
    busy = true;
    running = releaseDeadReservations(deps.db, options.graceMs)
      .then((n) => {
        if (n > 0) deps.log.info({ released: n }, 'released reservations whose submission died before its job');
      })
      .catch((err: unknown) => deps.log.warn({ err }, 'reservation sweep failed; retrying next interval'))
      .finally(() => (busy = false));
  };
  tick();
  const timer = setInterval(tick, options.intervalMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}

/** What one attempt of a job delivered, for the scheduler deciding whether a crashed build must run again. */
import { attemptArtifactsEndpoint } from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import { handle, type BoundEndpoint } from '@perry-hub/runtime';

export function attemptEndpoints(db: Pool): BoundEndpoint[] {
  return [
    handle(attemptArtifactsEndpoint, async ({ jobId, attempt }) => {
      // Held artifacts (a precompiled bundle awaiting signing) were never announced to the CLI.
      const [rows] = await db.query<RowDataPacket[]>(
        'SELECT COUNT(*) AS n FROM artifacts WHERE job_id = ? AND attempt = ? AND held = FALSE',
        [jobId, attempt],
      );
      return { announced: Number(rows[0]?.['n'] ?? 0) };
    }),
  ];
}

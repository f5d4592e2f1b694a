/**
 * What one attempt of a job delivered, for the scheduler deciding whether a crashed build must
 * run again. An artifact recorded but not yet announced (the hub died between the two) is
 * announced now: the build did deliver it, and the CLI must hear of it.
 */
import { attemptArtifactsEndpoint } from '@perry-hub/contracts';
import type { RowDataPacket } from '@perry-hub/db';
import { handle, type BoundEndpoint } from '@perry-hub/runtime';
import { announceArtifact, type ArtifactDeps } from './artifacts.js';

export function attemptEndpoints(deps: ArtifactDeps, now: () => number = Date.now): BoundEndpoint[] {
  return [
    handle(attemptArtifactsEndpoint, async ({ jobId, attempt }) => {
      // Marks still waiting would have their artifacts announced again (deduplicated, but for nothing).
      await deps.announced.flush().catch(() => undefined);
      // Held artifacts (a precompiled bundle awaiting signing) are never announced to the CLI.
      const [rows] = await deps.db.query<RowDataPacket[]>(
        `SELECT token, target, name, size, sha256, expires_at, announced FROM artifacts
          WHERE job_id = ? AND attempt = ? AND held = FALSE`,
        [jobId, attempt],
      );
      for (const r of rows.filter((r) => !r['announced'])) {
        await announceArtifact(
          deps,
          {
            token: String(r['token']),
            jobId,
            target: String(r['target']),
            name: String(r['name']),
            size: Number(r['size']),
            sha256: String(r['sha256']),
            expiresInSecs: Math.max(0, Math.ceil((Number(r['expires_at']) - now()) / 1000)),
          },
          true,
        );
      }
      return { announced: rows.length };
    }),
  ];
}

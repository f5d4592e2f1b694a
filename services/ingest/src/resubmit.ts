/**
 * A retried submission is the same build. The CLI sends no Idempotency-Key and gives up when a
 * crash cuts its request or its first WebSocket connect; its user then runs it again with the
 * same project. So a submission is named by what it is: who sent it (account, else license), its
 * manifest and its tarball's digest. That name (`submission_key`) has a unique index on `builds`:
 * of identical concurrent submissions exactly one inserts its row, the others adopt that job.
 * An explicit Idempotency-Key names a submission the same way, through its own unique index
 * (see `insertJob`), and is never released: the client said which submissions are the same.
 *
 * A content key holds only while the job's result was not delivered: queued or running, or
 * completed with an unexpired artifact nobody has fully downloaded, within the resubmission
 * window. Past that, the holder is released by compare-and-set and the submission builds anew.
 */
import { createHash } from 'node:crypto';
import { renewDownloadsEndpoint } from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import { call } from '@perry-hub/runtime';
import { insertJob, type JobDeps, type NewJob } from './jobs.js';

const DUPLICATE_KEY = 1062;
/** A released key can be taken again by a concurrent submission; that one then wins. */
const ATTEMPTS = 4;

export function submissionKey(owner: string, manifestText: string, tarballDigest: string): string {
  return createHash('sha256')
    .update(JSON.stringify(['content', owner, manifestText, tarballDigest]))
    .digest('hex');
}

interface Holder {
  id: string;
  status: string;
  changedAt: number;
  delivery: string | null;
  fetched: number;
  fetchable: number;
}

async function holderOf(db: Pool, key: string, now: number): Promise<Holder | undefined> {
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT b.id, b.status, COALESCE(b.completedAt, b.queuedAt) AS changed_at, b.result_delivery,
       (SELECT COUNT(*) FROM artifacts a WHERE a.job_id = b.id AND a.held = FALSE AND a.state = 'done') AS fetched,
       (SELECT COUNT(*) FROM artifacts a WHERE a.job_id = b.id AND a.held = FALSE AND a.state <> 'done'
          AND a.expires_at > ?) AS fetchable
     FROM builds b WHERE b.submission_key = ?`,
    [now, key],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    id: String(r['id']),
    status: String(r['status']),
    changedAt: Number(r['changed_at'] ?? 0),
    delivery: (r['result_delivery'] as string | null) ?? null,
    fetched: Number(r['fetched']),
    fetchable: Number(r['fetchable']),
  };
}

/** Whether a retry of the holder's submission should get the holder instead of a new build. */
export function undelivered(holder: Holder, now: number, windowMs: number): boolean {
  if (holder.changedAt <= now - windowMs || holder.delivery !== null) return false;
  if (holder.status === 'queued' || holder.status === 'running') return true;
  return holder.status === 'completed' && holder.fetched === 0 && holder.fetchable > 0;
}

export interface Recorded {
  /** The job the submission became: its own, or the one an identical submission made. */
  jobId: string;
  adopted: boolean;
}

/** Insert the job's row, or adopt the job of an identical submission whose result is pending. */
export async function recordOrAdopt(deps: JobDeps, job: NewJob, queuedAt: number, windowMs: number): Promise<Recorded> {
  for (let attempt = 1; ; attempt++) {
    try {
      const { existing } = await insertJob(deps.db, job, queuedAt);
      return existing ? { jobId: existing, adopted: true } : { jobId: job.jobId, adopted: false };
    } catch (err) {
      const key = job.submissionKey;
      const dup = (err as { errno?: number }).errno === DUPLICATE_KEY && /submission_key/.test(String(err));
      if (!dup || key === undefined || attempt >= ATTEMPTS) throw err;
      const now = Date.now();
      const holder = await holderOf(deps.db, key, now);
      if (!holder) continue;
      if (undelivered(holder, now, windowMs)) {
        if (holder.status === 'completed') await renewDownloads(deps, holder.id);
        return { jobId: holder.id, adopted: true };
      }
      // Delivered, failed, or too old: the key is free for this submission.
      await deps.db.query('UPDATE builds SET submission_key = NULL WHERE id = ? AND submission_key = ?', [
        holder.id,
        key,
      ]);
    }
  }
}

/** The retried CLI downloads the replayed links: they live another artifact lifetime. */
async function renewDownloads(deps: JobDeps, jobId: string): Promise<void> {
  try {
    await call(deps.nc, deps.subjects, renewDownloadsEndpoint, { jobId });
  } catch (err) {
    deps.log.warn({ err: (err as Error).message, jobId }, 'could not renew the download links of an adopted job');
  }
}

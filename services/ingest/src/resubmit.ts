/**
 * A retried submission is the same build. The CLI sends no Idempotency-Key and gives up when a
 * crash cuts its request or its first WebSocket connect; its user then runs it again with the
 * same project. So a submission is named, either by the client (an Idempotency-Key, per
 * license) or by what it is: who sent it (account, else license), its manifest and its
 * tarball's digest (`submission_key`). Both names have a unique index on `builds`, and one
 * mechanism serves both: the insert of the job's row decides atomically, so of identical
 * concurrent submissions exactly one records a job and the others adopt it (their tarball and
 * reservation are dropped by the caller).
 *
 * A client's key names its job for good. A content name holds only while the job's result was
 * not delivered: queued or running, or completed with an unexpired artifact nobody has fully
 * downloaded, within the resubmission window. Past that, the holder's name is released by
 * compare-and-set and the submission builds anew.
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
  /** Named by the client's idempotency key: the same job, whatever became of it. */
  named: boolean;
  id: string;
  status: string;
  changedAt: number;
  delivery: string | null;
  fetched: number;
  fetchable: number;
}

/** A submission's name: the client's idempotency key (per license), or its content key. */
type Name = { kind: 'client'; licenseKey: string; key: string } | { kind: 'content'; key: string };

function nameOf(job: NewJob): Name | undefined {
  if (job.idempotencyKey !== undefined) return { kind: 'client', licenseKey: job.licenseKey, key: job.idempotencyKey };
  return job.submissionKey === undefined ? undefined : { kind: 'content', key: job.submissionKey };
}

/** The job holding a submission's name. */
async function holderOf(db: Pool, name: Name, now: number): Promise<Holder | undefined> {
  const named = name.kind === 'client';
  const [rows] = await db.query<RowDataPacket[]>(
    `SELECT b.id, b.status, COALESCE(b.completedAt, b.queuedAt) AS changed_at, b.result_delivery,
       (SELECT COUNT(*) FROM artifacts a WHERE a.job_id = b.id AND a.held = FALSE AND a.state = 'done') AS fetched,
       (SELECT COUNT(*) FROM artifacts a WHERE a.job_id = b.id AND a.held = FALSE AND a.state <> 'done'
          AND a.expires_at > ?) AS fetchable
     FROM builds b WHERE ${
       named ? 'b.licenseKey = ? AND b.idempotency_key = ? AND BINARY b.idempotency_key = ?' : 'b.submission_key = ?'
     }`,
    name.kind === 'client' ? [now, name.licenseKey, name.key, name.key] : [now, name.key],
  );
  const r = rows[0];
  if (!r) return undefined;
  return {
    named,
    id: String(r['id']),
    status: String(r['status']),
    changedAt: Number(r['changed_at'] ?? 0),
    delivery: (r['result_delivery'] as string | null) ?? null,
    fetched: Number(r['fetched']),
    fetchable: Number(r['fetchable']),
  };
}

/** Whether a retry of the holder's submission should get the holder instead of a new build. */
function undelivered(holder: Holder, now: number, windowMs: number): boolean {
  if (holder.changedAt <= now - windowMs || holder.delivery !== null) return false;
  if (holder.status === 'queued' || holder.status === 'running') return true;
  return holder.status === 'completed' && holder.fetched === 0 && holder.fetchable > 0;
}

export interface Recorded {
  /** The job the submission became: its own, or the one an identical submission made. */
  jobId: string;
  adopted: boolean;
}

/** Insert the job's row, or adopt the job of an identical submission (see the top). */
export async function recordOrAdopt(deps: JobDeps, job: NewJob, queuedAt: number, windowMs: number): Promise<Recorded> {
  for (let attempt = 1; ; attempt++) {
    try {
      await insertJob(deps.db, job, queuedAt);
      return { jobId: job.jobId, adopted: false };
    } catch (err) {
      const name = nameOf(job);
      if ((err as { errno?: number }).errno !== DUPLICATE_KEY || !name || attempt >= ATTEMPTS) throw err;
      const now = Date.now();
      const holder = await holderOf(deps.db, name, now);
      if (!holder) continue;
      if (holder.named || undelivered(holder, now, windowMs)) {
        if (holder.status === 'completed') await renewDownloads(deps, holder.id);
        return { jobId: holder.id, adopted: true };
      }
      // Delivered, failed, or too old: the name is free for this submission.
      await deps.db.query('UPDATE builds SET submission_key = NULL WHERE id = ? AND submission_key = ?', [
        holder.id,
        job.submissionKey,
      ]);
    }
  }
}

/**
 * The job a content key names, if its result is still owed: a retry refused by a limit it did
 * not add to (its build was already counted in) gets it instead of the refusal.
 */
export async function owedJob(deps: JobDeps, key: string, windowMs: number): Promise<string | undefined> {
  const now = Date.now();
  const holder = await holderOf(deps.db, { kind: 'content', key }, now);
  if (!holder || !undelivered(holder, now, windowMs)) return undefined;
  if (holder.status === 'completed') await renewDownloads(deps, holder.id);
  return holder.id;
}

/** The retried CLI downloads the replayed links: they live another artifact lifetime. */
async function renewDownloads(deps: JobDeps, jobId: string): Promise<void> {
  try {
    await call(deps.nc, deps.subjects, renewDownloadsEndpoint, { jobId });
  } catch (err) {
    deps.log.warn({ err: (err as Error).message, jobId }, 'could not renew the download links of an adopted job');
  }
}

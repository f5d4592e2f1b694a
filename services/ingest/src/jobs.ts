/**
 * Recording an accepted job: its row in MySQL (the system of record), then its intake message on
 * JetStream (deduplicated by job id), then its place in the queue from the scheduler.
 */
import { jetstream } from '@nats-io/jetstream';
import {
  buildTypeOf,
  queuePositionEndpoint,
  type BuildManifest,
  type JobIntake,
  type Subjects,
  type Tier,
} from '@perry-hub/contracts';
import type { Pool, RowDataPacket } from '@perry-hub/db';
import { call, publishRetrying, type Logger, type NatsConnection } from '@perry-hub/runtime';
import type { PositionNotices } from './positions.js';

export interface NewJob {
  jobId: string;
  licenseKey: string;
  tier: Tier;
  priority: number;
  accountId: string | null;
  manifestText: string;
  manifest: BuildManifest;
  sealedCredentials: Buffer;
  tarballRef: string;
  idempotencyKey: string | undefined;
  /** What the submission is (resubmit.ts); unset when an idempotency key names it. */
  submissionKey?: string | undefined;
  via: JobIntake['via'];
  /** The tool identity that submitted it, if one did. */
  tool?: string | undefined;
  callbackUrl?: string | undefined;
}

/** A larger manifest stays out of the intake message (far below NATS's max payload). */
const INTAKE_PAYLOAD_MAX_BYTES = 32 * 1024;

export interface JobDeps {
  nc: NatsConnection;
  subjects: Subjects;
  log: Logger;
  db: Pool;
  /** The places the scheduler sends for this instance's intakes; absent: each is asked for. */
  positions?: PositionNotices | undefined;
}

/**
 * Insert the job's row. A unique index refuses it (MySQL error 1062) when an identical
 * submission holds the same idempotency or submission key: resubmit.ts decides what then.
 */
export async function insertJob(db: Pool, job: NewJob, queuedAt: number): Promise<void> {
  await db.execute(
    `INSERT INTO builds (id, licenseKey, tier, targets, status, queuedAt, priority, attempt, stage,
       manifest, credentials_enc, tarball_ref, account_id, idempotency_key, submission_key, updated_at, history,
       build_type, tool, callback_url)
     VALUES (?, ?, ?, ?, 'queued', ?, ?, 0, 'build', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    [
      job.jobId,
      job.licenseKey,
      job.tier,
      JSON.stringify(job.manifest.targets),
      queuedAt,
      job.priority,
      job.manifestText,
      job.sealedCredentials,
      job.tarballRef,
      job.accountId,
      job.idempotencyKey ?? null,
      job.submissionKey ?? null,
      queuedAt,
      JSON.stringify([{ at: queuedAt, state: 'queued', attempt: 0, stage: 'build', via: job.via }]),
      buildTypeOf(job.manifest),
      job.tool ?? null,
      job.callbackUrl ?? null,
    ],
  );
}

/** How long an intake message JetStream did not take is retried, after the submission's answer. */
const INTAKE_RETRY_MS = 60_000;

/**
 * Tell the scheduler. A failure here loses nothing, so it is not returned to the client: the
 * message is retried in the background (a stream leader election, a NATS node cut off and left
 * take seconds; the job id as message id stores it once), and were it never stored, the
 * scheduler takes the job from MySQL at its next reconnect or takeover.
 */
export async function publishIntake(deps: JobDeps, job: NewJob, queuedAt: number): Promise<void> {
  await sendIntake(deps, {
    jobId: job.jobId,
    licenseKey: job.licenseKey,
    tier: job.tier,
    priority: job.priority,
    targets: [...job.manifest.targets],
    queuedAt,
    via: job.via,
    ...(buildTypeOf(job.manifest) === 'plugin' ? { buildType: 'plugin' as const } : {}),
    ...(job.callbackUrl !== undefined ? { callback: true as const } : {}),
    tarballRef: job.tarballRef,
    ...(job.manifestText.length + job.sealedCredentials.length <= INTAKE_PAYLOAD_MAX_BYTES
      ? { payload: { manifest: job.manifestText, credentialsSealed: job.sealedCredentials.toString('base64') } }
      : {}),
  });
}

/**
 * An earlier job that a retried submission gets, if it is still waiting for its first dispatch:
 * its intake message is published again, from its row. The ingest that recorded the job may have
 * died before it published the message, and the retry is then the only one left to do it (the
 * scheduler reads queued rows from MySQL only when it takes over or reconnects). Under the same
 * message id: JetStream drops it while the first is in its duplicate window, and the scheduler
 * ignores a job it already holds. Without the tarball's name, the scheduler reads the row.
 */
export async function republishQueuedIntake(deps: JobDeps, jobId: string, via: JobIntake['via']): Promise<void> {
  const [rows] = await deps.db.query<RowDataPacket[]>(
    `SELECT licenseKey, tier, priority, targets, queuedAt, build_type, callback_url FROM builds
     WHERE id = ? AND status = 'queued' AND stage = 'build' AND attempt = 0`,
    [jobId],
  );
  const r = rows[0];
  if (!r) return;
  await sendIntake(deps, {
    jobId,
    licenseKey: String(r['licenseKey']),
    tier: String(r['tier']) as Tier,
    priority: Number(r['priority']),
    targets: JSON.parse(String(r['targets'])) as string[],
    queuedAt: Number(r['queuedAt']),
    via,
    ...(r['build_type'] === 'plugin' ? { buildType: 'plugin' as const } : {}),
    ...(r['callback_url'] !== null ? { callback: true as const } : {}),
  });
}

async function sendIntake(deps: JobDeps, intake: JobIntake): Promise<void> {
  const [js, subject, data] = [jetstream(deps.nc), deps.subjects.intake(intake.jobId), JSON.stringify(intake)];
  const options = { msgID: intake.jobId, ...(deps.positions ? { headers: deps.positions.headers() } : {}) };
  try {
    await js.publish(subject, data, options);
  } catch (err) {
    deps.log.warn({ err, jobId: intake.jobId }, 'intake message not published yet; retrying');
    void publishRetrying(js, subject, data, { ...options, forMs: INTAKE_RETRY_MS }).then(
      () => deps.log.info({ jobId: intake.jobId }, 'intake message published on a retry'),
      (err: unknown) =>
        deps.log.error(
          { err, jobId: intake.jobId },
          'intake message not published; the scheduler takes the job from MySQL at its next reconnect or takeover',
        ),
    );
  }
}

/**
 * The job's 1-based place in the queue, as the scheduler (which owns the dispatch order) counts
 * it: as it sent it for a job just queued (`notified`, PositionNotices), or asked for. The
 * original answered at least 1, even for a job dispatched at once; so does a hub whose scheduler
 * did not answer in time (the CLI hears the real place in its first queue_update).
 */
export async function queuePosition(
  deps: JobDeps,
  jobId: string,
  recorded?: { tier: Tier; targets: string[]; queuedAt: number },
  notified?: () => Promise<number | undefined>,
): Promise<number> {
  const sent = await notified?.();
  if (sent !== undefined) return Math.max(1, sent);
  try {
    const { position } = await call(deps.nc, deps.subjects, queuePositionEndpoint, {
      jobId,
      ...(recorded ? { recorded } : {}),
    });
    return Math.max(1, position);
  } catch (err) {
    deps.log.warn({ err: (err as Error).message, jobId }, 'queue position unknown: the scheduler did not answer');
    return 1;
  }
}

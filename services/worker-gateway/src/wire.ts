/**
 * The frames the gateway writes, byte for byte as the original hub wrote them (reference 8.3 and
 * 8.5). Object literals keep their key order through JSON.stringify, and that order is the
 * original's: the workers and the CLI do not care, but captured transcripts and tests do.
 */
import type { WireObject } from '@perry-hub/contracts';

export const AUTH_FAILED = JSON.stringify({ type: 'error', code: 'AUTH_FAILED', message: 'Invalid worker secret' });
export const JOB_NOT_FOUND = JSON.stringify({ type: 'error', code: 'JOB_NOT_FOUND', message: 'Job not found' });
export const UPDATE_PERRY = JSON.stringify({ type: 'update_perry' });

/** A hello the gateway refuses (bad name, capabilities, max_concurrent): the reason, then a close. */
export function invalidHello(reason: string): string {
  return JSON.stringify({ type: 'error', code: 'BAD_REQUEST', message: `Invalid worker_hello: ${reason}` });
}

/** A watcher over PERRY_HUB_WS_MAX_WATCHERS_PER_JOB: refused, then closed. */
export const TOO_MANY_WATCHERS = JSON.stringify({
  type: 'error',
  code: 'RATE_LIMITED',
  message: 'Too many connections are watching this job',
});

/**
 * A watcher's `cancel`: knowing a job id lets a client watch, not act (design 8). The owner
 * cancels with the submitting credential over HTTP or NATS; the watcher keeps watching.
 */
export function cancelRefused(jobId: string | undefined): string {
  const route = `POST /api/v1/jobs/${jobId ?? '<job_id>'}/cancel`;
  return JSON.stringify({
    type: 'error',
    ...(jobId !== undefined ? { job_id: jobId } : {}),
    code: 'FORBIDDEN',
    message: `A watcher cannot cancel: use ${route} with the credential that submitted the job`,
  });
}

export interface JobAssignFrame {
  jobId: string;
  authToken: string;
  manifest: WireObject;
  credentials: WireObject;
  tarballUrl: string;
  artifactUploadUrl: string;
}

export function jobAssign(a: JobAssignFrame): string {
  return JSON.stringify({
    type: 'job_assign',
    job_id: a.jobId,
    auth_token: a.authToken,
    manifest: a.manifest,
    credentials: a.credentials,
    tarball_url: a.tarballUrl,
    artifact_upload_url: a.artifactUploadUrl,
  });
}

export function cancel(jobId: string): string {
  return JSON.stringify({ type: 'cancel', job_id: jobId });
}

export function proceedDistribute(jobId: string): string {
  return JSON.stringify({ type: 'proceed_distribute', job_id: jobId });
}

export function skipDistribute(jobId: string, reason: string): string {
  return JSON.stringify({ type: 'skip_distribute', job_id: jobId, reason });
}

/** `estimated_wait_secs` was always 0 in the original; the CLI ignores it. */
export function jobCreated(jobId: string, position: number): string {
  return JSON.stringify({ type: 'job_created', job_id: jobId, position, estimated_wait_secs: 0 });
}

/** What the original answered a `subscribe` to an already finished job with (reference 8.5, last line). */
export function syntheticComplete(jobId: string, success: boolean): string {
  return JSON.stringify({ type: 'complete', job_id: jobId, success, duration_secs: 0, artifacts: [] });
}

/** Parse a frame the way the original did: anything but a JSON object is dropped. */
export function parseFrame(text: string): WireObject | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as WireObject) : undefined;
}

export function stringField(message: WireObject, key: string): string | undefined {
  const value = message[key];
  return typeof value === 'string' ? value : undefined;
}

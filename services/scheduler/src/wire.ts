/**
 * Messages the hub itself sends to CLIs, byte for byte as the original built them
 * (reference 2.5 and 8.5: key order included).
 */
export const wire = {
  queueUpdate: (jobId: string, position: number, message?: string): string =>
    JSON.stringify({ type: 'queue_update', job_id: jobId, position, ...(message === undefined ? {} : { message }) }),
  stage: (jobId: string, stage: string, message: string): string =>
    JSON.stringify({ type: 'stage', job_id: jobId, stage, message }),
  /** The retries-exhausted error of the original carries no job_id. */
  error: (code: string, message: string, jobId?: string): string =>
    JSON.stringify(
      jobId === undefined ? { type: 'error', code, message } : { type: 'error', job_id: jobId, code, message },
    ),
  complete: (jobId: string, success: boolean, durationSecs: number): string =>
    JSON.stringify({ type: 'complete', job_id: jobId, success, duration_secs: durationSecs, artifacts: [] }),
};

export const SIGNING_MESSAGE = 'Routing to platform worker for signing and packaging...';

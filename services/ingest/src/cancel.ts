/**
 * Cancelling a build, for its owner only (design 8: a job id lets a client watch, not act). The
 * edge identifies the caller (caller.ts, as for reading a job); the scheduler, which holds the
 * build record, compares license or account with the job's. HTTP (`POST /api/v1/jobs/:id/cancel`)
 * and NATS (`<p>.builds.cancel`) share this.
 */
import {
  BuildCancelRequest,
  HubError,
  cancelJobEndpoint,
  type BuildCancelled,
  type CancelJobRequest,
} from '@perry-hub/contracts';
import { call, decode } from '@perry-hub/runtime';
import { accountCaller, type Caller } from './caller.js';
import type { BusDeps } from './routes/license.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Who may ask: the admin, or a submitter by its account or license. A tool's ownership is checked
 * against the build record by the tool API, which then cancels as the admin.
 */
export type Canceller = Exclude<Caller, { kind: 'tool' }>;

export const cancelNeedsCredential = (how: string) =>
  new HubError('AUTH_REQUIRED', `Cancelling needs the submitting 'license_key' or ${how}`);

export async function cancelBuild(deps: BusDeps, jobId: string, caller: Canceller): Promise<BuildCancelled> {
  // Not an id the hub hands out: the same answer as for a job that is not yours.
  if (!UUID.test(jobId)) throw new HubError('JOB_NOT_FOUND', 'Job not found');
  const request: CancelJobRequest =
    caller.kind === 'admin'
      ? { jobId, by: 'admin' }
      : caller.kind === 'account'
        ? { jobId, by: 'owner', accountId: caller.accountId }
        : { jobId, by: 'owner', licenseKey: caller.licenseKey };
  const ack = await call(deps.nc, deps.subjects, cancelJobEndpoint, request);
  if (!ack.accepted) {
    throw new HubError('JOB_NOT_RUNNING', `Job cannot be cancelled: ${ack.reason ?? 'it is not queued or running'}`);
  }
  return { job_id: jobId, cancelled: true };
}

/**
 * `<p>.builds.cancel`: the credential travels in the payload, as in `builds.submit`. A license
 * key is compared with the job's by the scheduler (a wrong one: JOB_NOT_FOUND).
 */
export async function cancelOverNats(deps: BusDeps, payload: unknown): Promise<BuildCancelled> {
  const request = decode(BuildCancelRequest, payload, 'builds.cancel request');
  let caller: Canceller;
  if (request.api_token !== undefined) caller = await accountCaller(deps, request.api_token);
  else if (request.license_key !== undefined) caller = { kind: 'license', licenseKey: request.license_key };
  else throw cancelNeedsCredential("'api_token'");
  return cancelBuild(deps, request.job_id, caller);
}

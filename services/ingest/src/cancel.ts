/**
 * Cancelling a build, for its owner only (design 8: a job id lets a client watch, not act). The
 * edge checks the shape of the request and turns an API token into its account; the scheduler,
 * which holds the build record, compares license or account with the job's. HTTP
 * (`POST /api/v1/jobs/:id/cancel`) and NATS (`<p>.builds.cancel`) share this.
 */
import {
  BuildCancelRequest,
  HubError,
  accountGetEndpoint,
  cancelJobEndpoint,
  type BuildCancelled,
  type CancelJobRequest,
} from '@perry-hub/contracts';
import { call, decode } from '@perry-hub/runtime';
import type { BusDeps } from './routes/license.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type CancelAuth =
  | { readonly kind: 'admin' }
  | { readonly kind: 'api-token'; readonly apiToken: string }
  | { readonly kind: 'license'; readonly licenseKey: string }
  | { readonly kind: 'none' };

export async function cancelBuild(deps: BusDeps, jobId: string, auth: CancelAuth): Promise<BuildCancelled> {
  if (auth.kind === 'none') {
    throw new HubError('AUTH_REQUIRED', "Cancelling needs the submitting 'license_key' or an Authorization header");
  }
  // Not an id the hub hands out: the same answer as for a job that is not yours.
  if (!UUID.test(jobId)) throw new HubError('JOB_NOT_FOUND', 'Job not found');
  let request: CancelJobRequest;
  if (auth.kind === 'admin') request = { jobId, by: 'admin' };
  else if (auth.kind === 'license') request = { jobId, by: 'owner', licenseKey: auth.licenseKey };
  else {
    // An unknown token is a 401 (AUTH_INVALID), like GET /api/v1/account answers it.
    const account = await call(deps.nc, deps.subjects, accountGetEndpoint, { apiToken: auth.apiToken });
    request = { jobId, by: 'owner', accountId: account.id };
  }
  const ack = await call(deps.nc, deps.subjects, cancelJobEndpoint, request);
  if (!ack.accepted) {
    throw new HubError('JOB_NOT_RUNNING', `Job cannot be cancelled: ${ack.reason ?? 'it is not queued or running'}`);
  }
  return { job_id: jobId, cancelled: true };
}

/** `<p>.builds.cancel`: the credential travels in the payload, as in `builds.submit`. */
export async function cancelOverNats(deps: BusDeps, payload: unknown): Promise<BuildCancelled> {
  const request = decode(BuildCancelRequest, payload, 'builds.cancel request');
  const auth: CancelAuth =
    request.api_token !== undefined
      ? { kind: 'api-token', apiToken: request.api_token }
      : request.license_key !== undefined
        ? { kind: 'license', licenseKey: request.license_key }
        : { kind: 'none' };
  return cancelBuild(deps, request.job_id, auth);
}

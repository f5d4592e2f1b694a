/**
 * NATS-native submission on `<p>.builds.submit`: the same intake as `POST /api/v1/build`, with
 * the tarball already uploaded to the Object Store (see BuildSubmitRequest). Answers in the bus
 * envelope `{"ok":true,"result":{job_id,ws_url,position}}` or `{"ok":false,"error":{...}}`.
 */
import { BuildSubmitRequest, HubError } from '@perry-hub/contracts';
import { decode, respond } from '@perry-hub/runtime';
import type { Subscription } from '@nats-io/nats-core';
import { Submission, type IntakeDeps } from './intake.js';
import { MAX_UPLOAD_BYTES } from './limits.js';
import { assertNoForbiddenKeys } from './manifest.js';

export async function submitOverNats(deps: IntakeDeps, payload: unknown) {
  const request = decode(BuildSubmitRequest, payload, 'builds.submit request');
  assertNoForbiddenKeys(request.manifest, 'manifest');
  assertNoForbiddenKeys(request.credentials ?? {}, 'credentials');
  if (request.license_key === undefined && request.api_token === undefined) {
    throw new HubError('BAD_REQUEST', "Missing 'license_key' or 'api_token'");
  }
  const submission = new Submission(deps, {
    via: 'nats',
    apiToken: request.api_token,
    idempotencyKey: request.idempotency_key,
    maxUploadBytes: MAX_UPLOAD_BYTES,
  });
  try {
    submission.setManifest(JSON.stringify(request.manifest));
    submission.setCredentials(JSON.stringify(request.credentials ?? {}));
    if (request.license_key !== undefined) submission.setLicenseKey(request.license_key);
    await submission.adoptUpload(request.tarball_object);
    return await submission.finish();
  } catch (err) {
    await submission.abandon();
    throw err;
  }
}

/**
 * Serve a tool-facing request subject in the `ingest` queue group, so instances share the load;
 * answers in the bus envelope, with the HTTP API's error codes.
 */
export function serveRequests(
  deps: Pick<IntakeDeps, 'nc' | 'subjects' | 'log'>,
  subject: string,
  run: (payload: unknown) => Promise<unknown>,
): Subscription {
  return deps.nc.subscribe(subject, {
    queue: `${deps.subjects.prefix}.ingest`,
    callback: (err, msg) => {
      if (err) return deps.log.error({ err, subject }, 'request subscription failed');
      void respond(msg, run, deps.log, subject);
    },
  });
}

/** Serve `<p>.builds.submit`. */
export function serveSubmissions(deps: IntakeDeps): Subscription {
  return serveRequests(deps, deps.subjects.buildsSubmit, (payload) => submitOverNats(deps, payload));
}

/**
 * The artifact-store's endpoints. Bytes never travel in these messages: the ingest streams them
 * between HTTP and the Object Store, and these calls carry object names and metadata.
 */
import Type, { type Static } from 'typebox';
import { defineEndpoint } from '../rpc.js';

export const ArtifactMeta = Type.Object(
  {
    objectName: Type.String(),
    name: Type.String(),
    size: Type.Integer({ minimum: 0 }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    target: Type.String(),
  },
  { additionalProperties: false },
);
export type ArtifactMeta = Static<typeof ArtifactMeta>;

/** Targets whose artifact is an intermediate for the next stage: held back from the CLI. */
export const HELD_TARGETS = ['windows-precompiled', 'ios-precompiled', 'macos-precompiled'] as const;

export const registerArtifactEndpoint = defineEndpoint({
  service: 'artifact-store',
  name: 'register-artifact',
  request: Type.Object(
    {
      jobId: Type.String(),
      attempt: Type.Integer({ minimum: 1 }),
      artifact: ArtifactMeta,
      /**
       * Sent again after no answer (the instance may have died after recording it): the artifact
       * already recorded under this object name is answered, and announced at most once.
       */
      retried: Type.Optional(Type.Boolean()),
      whileRunning: Type.Optional(
        Type.Literal(true, {
          description:
            'Recorded only while this attempt of the job runs (its builds row), else JOB_NOT_RUNNING: ' +
            'the upload was authorized by the grant its worker was given earlier, not asked now',
        }),
      ),
    },
    { additionalProperties: false },
  ),
  response: Type.Object(
    { token: Type.String(), download_url: Type.String(), size: Type.Integer(), held: Type.Boolean() },
    { additionalProperties: false },
  ),
  timeoutMs: 10_000,
});

/**
 * A retried submission was answered with this finished job: its unspent, unexpired download
 * links stay valid for another artifact lifetime from now.
 */
export const renewDownloadsEndpoint = defineEndpoint({
  service: 'artifact-store',
  name: 'renew-downloads',
  request: Type.Object({ jobId: Type.String() }, { additionalProperties: false }),
  response: Type.Object({ renewed: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
  timeoutMs: 5_000,
});

/**
 * A download begins: the token is marked as in transfer (`spending`) and its artifact answered.
 * A request finding the token in another transfer waits (up to 2 s) for that transfer's end:
 * spent, it is refused (not found); released, or still in transfer after the wait (that transfer
 * died with its instance), it is served.
 */
export const claimDownloadEndpoint = defineEndpoint({
  service: 'artifact-store',
  name: 'claim-download',
  request: Type.Object(
    {
      token: Type.String(),
      resume: Type.Boolean({ description: 'A Range request; any request may continue a download that did not finish' }),
    },
    { additionalProperties: false },
  ),
  response: ArtifactMeta,
  timeoutMs: 5_000,
});

/**
 * A download's end: `sent` once its last byte has left the process (the token is spent),
 * `released` when the transfer was cut, failed or answered only part of the artifact (the token
 * is usable again at once). `last-byte` (marking the token as in transfer) is what ingests of
 * earlier versions send before the last byte; claiming does it now.
 */
export const finishDownloadEndpoint = defineEndpoint({
  service: 'artifact-store',
  name: 'finish-download',
  request: Type.Object(
    {
      token: Type.String(),
      step: Type.Union([Type.Literal('sent'), Type.Literal('released'), Type.Literal('last-byte')]),
      objectName: Type.Optional(
        Type.String({
          description:
            "The token's object, as `claim-download` answered it: the store spends the token without reading its row first",
        }),
      ),
      objectNuid: Type.Optional(
        Type.String({
          description:
            "That object's chunk id (`ObjectInfo.nuid`), as the caller read it: the store deletes the spent object without reading its meta record first",
        }),
      ),
    },
    { additionalProperties: false },
  ),
  response: Type.Object({}, { additionalProperties: false }),
  timeoutMs: 5_000,
});

/** Make the job's last uploaded artifact the next stage's input (its new tarball). */
export const promoteEndpoint = defineEndpoint({
  service: 'artifact-store',
  name: 'promote',
  request: Type.Object(
    { jobId: Type.String(), attempt: Type.Integer({ minimum: 1 }) },
    { additionalProperties: false },
  ),
  response: Type.Object({ tarballRef: Type.String(), target: Type.String() }, { additionalProperties: false }),
  timeoutMs: 10_000,
});

/**
 * A job ended: its input tarball goes now, held intermediates with the next expiry pass (artifacts
 * stay until their tokens expire). Served for schedulers of earlier versions: the artifact-store
 * now does this on hearing the job's outcome (`<p>.jobs.<id>.done`).
 */
export const jobFinishedEndpoint = defineEndpoint({
  service: 'artifact-store',
  name: 'job-finished',
  request: Type.Object({ jobId: Type.String() }, { additionalProperties: false }),
  response: Type.Object({ deleted: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
  timeoutMs: 10_000,
});

/**
 * How many artifacts of this attempt were announced (`artifact_ready`): a build that outlived
 * its gateway may have delivered before the hub noticed; it is then completed, not run again.
 */
export const attemptArtifactsEndpoint = defineEndpoint({
  service: 'artifact-store',
  name: 'attempt-artifacts',
  request: Type.Object(
    { jobId: Type.String(), attempt: Type.Integer({ minimum: 1 }) },
    { additionalProperties: false },
  ),
  response: Type.Object({ announced: Type.Integer({ minimum: 0 }) }, { additionalProperties: false }),
  timeoutMs: 5_000,
});

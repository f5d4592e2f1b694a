/**
 * Build submission: the answer of `POST /api/v1/build`, and the NATS-native submission on
 * `<p>.builds.submit` that runs the same intake logic for clients on the bus.
 */
import Type, { type Static } from 'typebox';
import { BuildCredentials, BuildManifest } from './manifest.js';

/** The CLI resolves this relative URL against the server origin (reference 4.3). */
export const WS_URL = '/ws';

/** `POST /api/v1/build` (and `builds.submit`) success: the CLI requires all three fields. */
export const BuildAccepted = Type.Object(
  {
    job_id: Type.String({ format: 'uuid' }),
    ws_url: Type.Literal(WS_URL),
    position: Type.Integer({ minimum: 0, description: '1-based place in the queue; 0 once running' }),
  },
  { additionalProperties: false },
);
export type BuildAccepted = Static<typeof BuildAccepted>;

/** Object names in the blobs bucket. Workers fetch a job's input by `tarballs/<jobId>`. */
export const TARBALL_PREFIX = 'tarballs/';
export const UPLOAD_PREFIX = 'uploads/';
/** Artifacts: `artifacts/<jobId>/<uuid>`, each named by its row in `artifacts`. */
export const ARTIFACT_PREFIX = 'artifacts/';

export function tarballObjectName(jobId: string): string {
  return `${TARBALL_PREFIX}${jobId}`;
}

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
export const UPLOAD_OBJECT_PATTERN = `^${UPLOAD_PREFIX}${UUID}$`;

/** `Idempotency-Key` header and `idempotency_key` field: printable, no spaces. */
export const IDEMPOTENCY_KEY_PATTERN = '^[\\x21-\\x7e]{1,128}$';

/**
 * `<p>.builds.submit` request (JSON). Reply: `{"ok":true,"result":BuildAccepted}` or
 * `{"ok":false,"error":{code,message,details?}}` with the same codes as the HTTP route.
 *
 * The tarball does not travel in the message: put it into the Object Store bucket `<p>-blobs`
 * first, under `uploads/<uuid v4>` (gzip-compressed tar, at most the tier's upload limit), then
 * name it in `tarball_object`. On acceptance the hub renames it to `tarballs/<job_id>`; an upload
 * never submitted is deleted by the artifact-store after a grace period.
 */
export const BuildSubmitRequest = Type.Object(
  {
    manifest: BuildManifest,
    credentials: Type.Optional(BuildCredentials),
    license_key: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'License key; or give api_token instead' }),
    ),
    api_token: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, description: 'API token of an account (wins over license_key)' }),
    ),
    idempotency_key: Type.Optional(
      Type.String({
        pattern: IDEMPOTENCY_KEY_PATTERN,
        description: 'A retried submission with the same key (and license) returns the same job',
      }),
    ),
    tarball_object: Type.String({
      pattern: UPLOAD_OBJECT_PATTERN,
      description: 'Name of the uploaded tarball in the blobs bucket: uploads/<uuid>',
    }),
  },
  { additionalProperties: false },
);
export type BuildSubmitRequest = Static<typeof BuildSubmitRequest>;

/**
 * `<p>.builds.cancel` request (JSON), and the body `POST /api/v1/jobs/:id/cancel` may carry. Only
 * the credential that submitted the job may cancel it (or the admin secret, over HTTP): a job id
 * alone lets a client watch a build, never act on it. Reply: `{"ok":true,"result":BuildCancelled}`
 * or the error envelope; a stranger's cancel and an unknown job both get JOB_NOT_FOUND.
 */
export const BuildCancelRequest = Type.Object(
  {
    job_id: Type.String({ format: 'uuid' }),
    license_key: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'The license the job was submitted with' }),
    ),
    api_token: Type.Optional(
      Type.String({ minLength: 1, maxLength: 128, description: 'API token of the account that submitted the job' }),
    ),
  },
  { additionalProperties: false },
);
export type BuildCancelRequest = Static<typeof BuildCancelRequest>;

/** `POST /api/v1/jobs/:id/cancel` body: the credential in the body, like `/license/verify` takes it. */
export const CancelBody = Type.Object(
  { license_key: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })) },
  { additionalProperties: false },
);
export type CancelBody = Static<typeof CancelBody>;

/**
 * A cancel was accepted: a queued job is cancelled at once, a running one once its worker stops
 * (or after PERRY_HUB_CANCEL_GRACE_MS). Watchers see the job end as usual.
 */
export const BuildCancelled = Type.Object(
  { job_id: Type.String({ format: 'uuid' }), cancelled: Type.Literal(true) },
  { additionalProperties: false },
);
export type BuildCancelled = Static<typeof BuildCancelled>;

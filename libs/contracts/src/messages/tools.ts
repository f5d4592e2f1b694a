/**
 * Tool identities (`perry-hub tools ...`, the admin routes `/api/v1/admin/tools`) and a tool's own
 * NATS API on `<p>.tools.<name>.<op>`. A tool is bound to one license or one account: it builds
 * under it (tier, quotas, usage), and sees and acts on only the jobs it submitted itself.
 *
 * Every request/reply answers in the bus envelope `{"ok":true,"result":…}` or
 * `{"ok":false,"error":{code,message,details?}}`, with the HTTP API's codes. A job that is not the
 * tool's own is JOB_NOT_FOUND, exactly like an unknown one.
 */
import Type, { type Static } from 'typebox';
import { BuildCredentials, BuildManifest } from './manifest.js';
import { IDEMPOTENCY_KEY_PATTERN } from './submit.js';
import { JOB_LIST_LIMIT } from './operate.js';

/** A tool's name: one subject token, lower-case (its NATS user is `tool-<name>`). */
export const TOOL_NAME_PATTERN = '^[a-z0-9][a-z0-9_-]{0,47}$';

/** The operations of a tool's API: `<p>.tools.<name>.<op>`. */
export const TOOL_OPS = ['upload', 'submit', 'status', 'list', 'cancel', 'events', 'artifact'] as const;
export type ToolOp = (typeof TOOL_OPS)[number];

/** Largest chunk of a tarball upload or an artifact fetch (raw bytes; base64 in the JSON). */
export const TOOL_CHUNK_MAX_BYTES = 256 * 1024;

const CallbackUrl = Type.String({
  minLength: 1,
  maxLength: 2048,
  description: 'http(s) URL the hub POSTs signed callbacks to (each artifact of a plugin build, the terminal event)',
});

export const ToolCreateBody = Type.Object(
  {
    name: Type.String({ pattern: TOOL_NAME_PATTERN, description: 'The NATS user becomes `tool-<name>`' }),
    license_key: Type.Optional(Type.String({ minLength: 1, maxLength: 64, description: 'Builds under this license' })),
    account_id: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'Or under this account (its API token)' }),
    ),
    callback_url: Type.Optional(CallbackUrl),
  },
  { additionalProperties: false },
);
export type ToolCreateBody = Static<typeof ToolCreateBody>;

export const ToolListed = Type.Object(
  {
    name: Type.String(),
    nats_user: Type.String({ description: '`tool-<name>`' }),
    nkey_public: Type.String({ description: 'The NATS user public key (U...)' }),
    license_key: Type.Union([Type.String(), Type.Null()]),
    account_id: Type.Union([Type.String(), Type.Null()]),
    callback_url: Type.Union([Type.String(), Type.Null()]),
    created_at: Type.String(),
    rotated_at: Type.Union([Type.String(), Type.Null()]),
  },
  { additionalProperties: false },
);
export type ToolListed = Static<typeof ToolListed>;

/** Printed once, on `add` and `rotate`: the hub keeps only the public key. */
export const ToolCredentials = Type.Object(
  {
    ...ToolListed.properties,
    nkey_seed: Type.String({ description: 'The NATS user seed (SU...): give it to the tool, keep it secret' }),
    webhook_secret: Type.String({ description: 'Standard Webhooks signing secret, `whsec_<base64>`' }),
  },
  { additionalProperties: false },
);
export type ToolCredentials = Static<typeof ToolCredentials>;

export const ToolList = Type.Object({ tools: Type.Array(ToolListed) }, { additionalProperties: false });
export type ToolList = Static<typeof ToolList>;

/**
 * `<p>.tools.<name>.upload`: one chunk of a gzip-compressed tarball, in order. The first chunk has
 * no `upload_id` (the hub answers one); a retried chunk (same offset) replaces itself. At most the
 * largest tier's upload limit in all; the tier's own limit is applied at submit.
 */
export const ToolUploadRequest = Type.Object(
  {
    upload_id: Type.Optional(Type.String({ format: 'uuid' })),
    offset: Type.Integer({ minimum: 0, description: 'Bytes of the tarball before this chunk' }),
    data: Type.String({
      maxLength: Math.ceil(TOOL_CHUNK_MAX_BYTES / 3) * 4,
      description: `base64, at most ${TOOL_CHUNK_MAX_BYTES} bytes decoded`,
    }),
  },
  { additionalProperties: false },
);
export type ToolUploadRequest = Static<typeof ToolUploadRequest>;

export const ToolUploadReply = Type.Object(
  { upload_id: Type.String(), received_bytes: Type.Integer({ description: 'offset + this chunk' }) },
  { additionalProperties: false },
);
export type ToolUploadReply = Static<typeof ToolUploadReply>;

/**
 * `<p>.tools.<name>.submit`: the same intake as `POST /api/v1/build`, under the tool's license or
 * account. Reply: `{job_id, ws_url, position}`.
 */
export const ToolSubmitRequest = Type.Object(
  {
    manifest: BuildManifest,
    credentials: Type.Optional(BuildCredentials),
    upload_id: Type.String({ format: 'uuid', description: 'The uploaded tarball' }),
    size: Type.Integer({ minimum: 1, description: 'Total tarball bytes: every chunk must have arrived' }),
    idempotency_key: Type.Optional(Type.String({ pattern: IDEMPOTENCY_KEY_PATTERN })),
    callback_url: Type.Optional(CallbackUrl),
  },
  { additionalProperties: false },
);
export type ToolSubmitRequest = Static<typeof ToolSubmitRequest>;

/** `<p>.tools.<name>.status` and `.cancel`: one of the tool's jobs. */
export const ToolJobRequest = Type.Object({ job_id: Type.String({ format: 'uuid' }) }, { additionalProperties: false });
export type ToolJobRequest = Static<typeof ToolJobRequest>;

/** `<p>.tools.<name>.list`: the tool's jobs, newest first (reply: JobListResponse). */
export const ToolListRequest = Type.Object(
  {
    state: Type.Optional(Type.String({ maxLength: 100 })),
    cursor: Type.Optional(Type.String({ maxLength: 200 })),
    limit: Type.Optional(Type.Integer({ minimum: JOB_LIST_LIMIT.min, maximum: JOB_LIST_LIMIT.max })),
  },
  { additionalProperties: false },
);
export type ToolListRequest = Static<typeof ToolListRequest>;

/** `<p>.tools.<name>.events`: the job's events after `after_seq`, waiting up to `wait_ms` for one. */
export const ToolEventsRequest = Type.Object(
  {
    job_id: Type.String({ format: 'uuid' }),
    after_seq: Type.Optional(Type.Integer({ minimum: 0, description: '`next_seq` of the previous answer' })),
    wait_ms: Type.Optional(Type.Integer({ minimum: 0, maximum: 20_000 })),
  },
  { additionalProperties: false },
);
export type ToolEventsRequest = Static<typeof ToolEventsRequest>;

/** How a job ended, in a tool's event stream (`finished` when the record does not say). */
export const TOOL_JOB_OUTCOMES = ['succeeded', 'failed', 'cancelled', 'expired', 'finished'] as const;
export type ToolJobOutcome = (typeof TOOL_JOB_OUTCOMES)[number];

export const ToolEventsReply = Type.Object(
  {
    events: Type.Array(
      Type.Object(
        {
          seq: Type.Integer({
            minimum: 1,
            description: 'The stream sequence of the log entry that holds it (a burst of messages shares one)',
          }),
          message: Type.Record(Type.String(), Type.Unknown()),
        },
        { additionalProperties: false },
      ),
    ),
    next_seq: Type.Integer({ minimum: 0, description: 'Pass as `after_seq` for the next page' }),
    done: Type.Union([Type.Enum(TOOL_JOB_OUTCOMES), Type.Null()], {
      description: "The job's outcome, once its last event was returned",
    }),
  },
  { additionalProperties: false },
);
export type ToolEventsReply = Static<typeof ToolEventsReply>;

/** `<p>.tools.<name>.artifact`: one chunk of a final artifact from `offset`. */
export const ToolArtifactRequest = Type.Object(
  {
    job_id: Type.String({ format: 'uuid' }),
    name: Type.String({ minLength: 1, maxLength: 255 }),
    offset: Type.Optional(Type.Integer({ minimum: 0 })),
  },
  { additionalProperties: false },
);
export type ToolArtifactRequest = Static<typeof ToolArtifactRequest>;

export const ToolArtifactChunk = Type.Object(
  {
    name: Type.String(),
    target: Type.String(),
    size: Type.Integer({ minimum: 0 }),
    sha256: Type.String({ description: "The whole artifact's SHA-256" }),
    offset: Type.Integer({ minimum: 0 }),
    data: Type.String({ description: 'base64' }),
    chunk_sha256: Type.String(),
    eof: Type.Boolean(),
  },
  { additionalProperties: false },
);
export type ToolArtifactChunk = Static<typeof ToolArtifactChunk>;

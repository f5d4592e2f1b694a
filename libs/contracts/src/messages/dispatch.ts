/**
 * How the scheduler and the worker-gateway talk. The scheduler decides (state in MySQL, moved by
 * compare-and-set with the attempt as fencing token); the gateway owns the sockets.
 *
 *   scheduler → gateway   `<p>.workers.<workerId>.cmd`   request/reply, WorkerCommand → RpcReply
 *   gateway → scheduler   `<p>.svc.scheduler.worker-event`  complete / error / build_complete
 *   gateway → all         `<p>.workers.connected` / `<p>.workers.lost` (WorkerLifecycle)
 *   gateway → scheduler   `<p>.workers.activity` (JobActivity, batched): feeds the no-output watchdog
 *   gateway → CLIs        appends stage/progress/log/published to `<p>.jobs.<id>.events`
 */
import Type, { type Static } from 'typebox';
import { defineEndpoint } from '../rpc.js';

/** A JSON object as a worker or the CLI sent it; shapes are checked where they are used. */
export const WireObject = Type.Record(Type.String(), Type.Unknown());
export type WireObject = Static<typeof WireObject>;

export const AssignCommand = Type.Object(
  {
    kind: Type.Literal('assign'),
    jobId: Type.String(),
    attempt: Type.Integer({ minimum: 1 }),
    authToken: Type.String({ description: 'Bearer token for the transfer routes, bound to (job, attempt)' }),
    manifest: WireObject,
    /** AES-256-GCM sealed credentials JSON (base64); the gateway opens it only to write the socket. */
    credentialsSealed: Type.Union([Type.String(), Type.Null()]),
    tarballUrl: Type.String(),
    artifactUploadUrl: Type.String(),
  },
  { additionalProperties: false },
);
export type AssignCommand = Static<typeof AssignCommand>;

export const CancelCommand = Type.Object(
  { kind: Type.Literal('cancel'), jobId: Type.String() },
  { additionalProperties: false },
);
export const UpdatePerryCommand = Type.Object({ kind: Type.Literal('update_perry') }, { additionalProperties: false });
/** The original's verification gate (off by default): `proceed_distribute` / `skip_distribute`. */
export const DistributeCommand = Type.Object(
  {
    kind: Type.Enum(['proceed_distribute', 'skip_distribute']),
    jobId: Type.String(),
    reason: Type.Optional(Type.String()),
  },
  { additionalProperties: false },
);

export const WorkerCommand = Type.Union([AssignCommand, CancelCommand, UpdatePerryCommand, DistributeCommand]);
export type WorkerCommand = Static<typeof WorkerCommand>;

export const WorkerEvent = Type.Object(
  {
    workerId: Type.String(),
    workerName: Type.String(),
    jobId: Type.String(),
    /** The attempt the gateway assigned on this connection: a late message of an old attempt is ignored. */
    attempt: Type.Integer({ minimum: 1 }),
    message: WireObject,
  },
  { additionalProperties: false },
);
export type WorkerEvent = Static<typeof WorkerEvent>;

export const Ack = Type.Object(
  { accepted: Type.Boolean(), reason: Type.Optional(Type.String()) },
  { additionalProperties: false },
);
export type Ack = Static<typeof Ack>;

export const workerEventEndpoint = defineEndpoint({
  service: 'scheduler',
  name: 'worker-event',
  request: WorkerEvent,
  response: Ack,
  timeoutMs: 10_000,
});

export const JobRef = Type.Object(
  { jobId: Type.String(), attempt: Type.Integer({ minimum: 1 }) },
  { additionalProperties: false },
);
export type JobRef = Static<typeof JobRef>;

export const WorkerLifecycle = Type.Object(
  {
    workerId: Type.String(),
    gatewayId: Type.String(),
    at: Type.Integer(),
    /** The jobs that were assigned on this connection (for `lost`). */
    jobs: Type.Array(JobRef),
  },
  { additionalProperties: false },
);
export type WorkerLifecycle = Static<typeof WorkerLifecycle>;

export const JobActivity = Type.Object(
  { at: Type.Integer(), jobs: Type.Array(JobRef) },
  { additionalProperties: false },
);
export type JobActivity = Static<typeof JobActivity>;

export const JOB_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled', 'expired'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];

/** What became of a completed job's result (`builds.result_delivery`, NULL = pending). */
export const RESULT_DELIVERIES = ['pending', 'delivered', 'unfetched'] as const;
export type ResultDelivery = (typeof RESULT_DELIVERIES)[number];

export const JobStatusRequest = Type.Object({ jobId: Type.String() }, { additionalProperties: false });
export const JobStatusReply = Type.Object(
  {
    found: Type.Boolean(),
    status: Type.Union([Type.Enum(JOB_STATUSES), Type.Null()]),
    position: Type.Integer({ minimum: 0 }),
    delivery: Type.Optional(
      Type.Enum(RESULT_DELIVERIES, {
        description:
          'Completed jobs only: pending until an artifact was fully downloaded (delivered), unfetched when its artifacts expired first (support may refund or rebuild)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type JobStatusReply = Static<typeof JobStatusReply>;

export const jobStatusEndpoint = defineEndpoint({
  service: 'scheduler',
  name: 'job-status',
  request: JobStatusRequest,
  response: JobStatusReply,
  timeoutMs: 3_000,
});

/**
 * Cancel a job. A job id is a capability to watch, not to act: `owner` must name the license or
 * the account the job was submitted with, and the scheduler compares it with the build record (a
 * stranger gets JOB_NOT_FOUND, as for a job that does not exist). `admin` is for callers that
 * checked the admin secret themselves (the ingest); tools never reach this internal subject.
 */
export const CancelJobRequest = Type.Object(
  {
    jobId: Type.String(),
    by: Type.Enum(['owner', 'admin']),
    licenseKey: Type.Optional(Type.String({ maxLength: 256 })),
    accountId: Type.Optional(Type.String({ maxLength: 64 })),
  },
  { additionalProperties: false },
);
export type CancelJobRequest = Static<typeof CancelJobRequest>;

export const cancelJobEndpoint = defineEndpoint({
  service: 'scheduler',
  name: 'cancel',
  request: CancelJobRequest,
  response: Ack,
  timeoutMs: 5_000,
});

/**
 * A worker that reconnected (after a hub restart or a gateway crash) still builds a job its old
 * connection held, and speaks of it on the new one. The scheduler hands it back to that worker at
 * the same attempt, while the job still waits for it (see `PERRY_HUB_RECLAIM_WAIT_MS`).
 */
export const reclaimJobEndpoint = defineEndpoint({
  service: 'scheduler',
  name: 'reclaim-job',
  request: Type.Object(
    { jobId: Type.String(), workerId: Type.String(), workerName: Type.String(), gatewayId: Type.String() },
    { additionalProperties: false },
  ),
  response: Type.Object(
    {
      accepted: Type.Boolean(),
      attempt: Type.Optional(Type.Integer({ minimum: 1 })),
      reason: Type.Optional(Type.String()),
      retry: Type.Optional(
        Type.Boolean({ description: 'Refused for now: the job still runs on a connection not yet known lost' }),
      ),
    },
    { additionalProperties: false },
  ),
  timeoutMs: 5_000,
});
export type ReclaimJobRequest = Static<typeof reclaimJobEndpoint.request>;
export type ReclaimJobReply = Static<typeof reclaimJobEndpoint.response>;

/** Check a worker's Bearer token for a transfer route; errors carry the original's codes. */
export const authorizeTransferEndpoint = defineEndpoint({
  service: 'scheduler',
  name: 'authorize-transfer',
  request: Type.Object(
    { jobId: Type.String(), token: Type.String(), purpose: Type.Enum(['tarball', 'artifact']) },
    { additionalProperties: false },
  ),
  response: Type.Object(
    {
      attempt: Type.Integer(),
      stage: Type.Enum(['build', 'sign']),
      tarballRef: Type.String(),
      buildType: Type.Optional(
        Type.Enum(['app', 'plugin'], { description: 'Absent means `app`: a plugin job holds no intermediates' }),
      ),
    },
    { additionalProperties: false },
  ),
  timeoutMs: 3_000,
});
export type AuthorizeTransferReply = Static<typeof authorizeTransferEndpoint.response>;

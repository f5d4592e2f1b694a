/**
 * What an operator (admin secret) or a submitter (its license key or account API token) reads
 * about a running hub over HTTP: jobs, workers, the queue and the sign VM pools. Times are
 * ISO 8601 strings (UTC), durations seconds; field names are snake_case like the original's
 * routes. The `perry-hub` command's `jobs`, `job`, `workers`, `queue` and `vm` are built on these.
 */
import Type, { type Static, type TSchema } from 'typebox';
import { defineEndpoint } from '../rpc.js';
import { JOB_STATUSES, RESULT_DELIVERIES } from './dispatch.js';
import { VM_PROVIDERS } from './vm.js';
import { VM_POWER_STATES } from './signals.js';
import { Empty } from './status.js';

const IsoTime = Type.String({ description: 'ISO 8601, UTC' });
const IsoTimeOrNull = Type.Union([IsoTime, Type.Null()]);
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);

/** One job in a list. */
export const JobSummary = Type.Object(
  {
    id: Type.String(),
    state: Type.Enum(JOB_STATUSES),
    stage: Type.Enum(['build', 'sign'], { description: 'sign: the build ran, a sign worker finishes it' }),
    targets: Type.Array(Type.String(), { description: "What the current stage needs (e.g. ['windows-sign'])" }),
    tier: Type.Enum(['free', 'pro']),
    license_key: Type.String(),
    account_id: Nullable(Type.String()),
    attempt: Type.Integer({ minimum: 0, description: 'Hand-overs to a worker so far' }),
    retries: Type.Integer({ minimum: 0, description: 'Re-queues after a lost worker (PERRY_HUB_MAX_RETRIES)' }),
    queued_at: IsoTime,
    started_at: IsoTimeOrNull,
    finished_at: IsoTimeOrNull,
    duration_secs: Nullable(Type.Number({ description: 'From the first assignment to the end' })),
    worker: Nullable(Type.String({ description: 'Name of the worker running it, or that ran it last' })),
    error: Nullable(Type.String({ description: 'Why it failed, was cancelled or expired' })),
    delivery: Nullable(
      Type.Enum(RESULT_DELIVERIES, { description: 'Completed jobs: whether the artifact was downloaded' }),
    ),
    tool: Type.Optional(Type.String({ description: 'The tool identity that submitted it (absent for others)' })),
  },
  { additionalProperties: false },
);
export type JobSummary = Static<typeof JobSummary>;

/** Page sizes of a job list (`GET /api/v1/jobs`, a tool's `list`, `perry-hub jobs --limit`). */
export const JOB_LIST_LIMIT = { min: 1, max: 200, default: 50 } as const;

/**
 * A `since` filter as epoch ms: digits are epoch ms, anything else an ISO 8601 time; undefined
 * when it is neither. The hub and the `perry-hub` command read it alike.
 */
export function parseSinceMs(value: string): number | undefined {
  const ms = /^\d+$/.test(value) ? Number(value) : Date.parse(value);
  return Number.isFinite(ms) ? ms : undefined;
}

export const JobListQuery = Type.Object(
  {
    state: Type.Optional(
      Type.String({ description: `Comma-separated states: ${JOB_STATUSES.join(', ')}`, maxLength: 100 }),
    ),
    target: Type.Optional(Type.String({ maxLength: 64, description: 'Jobs needing this target (e.g. windows-sign)' })),
    license: Type.Optional(Type.String({ maxLength: 256, description: 'Admin only: jobs of this license key' })),
    tool: Type.Optional(
      Type.String({ maxLength: 64, description: 'Admin only: jobs submitted by this tool identity (perry-hub tools)' }),
    ),
    since: Type.Optional(
      Type.String({ maxLength: 40, description: 'Jobs queued at or after this time (ISO 8601 or epoch ms)' }),
    ),
    cursor: Type.Optional(Type.String({ maxLength: 200, description: '`next_cursor` of the previous page' })),
    limit: Type.Optional(
      Type.String({
        pattern: '^[0-9]{1,3}$',
        description: `Page size, ${JOB_LIST_LIMIT.min}-${JOB_LIST_LIMIT.max} (default ${JOB_LIST_LIMIT.default})`,
      }),
    ),
  },
  { additionalProperties: false },
);
export type JobListQuery = Static<typeof JobListQuery>;

export const JobListResponse = Type.Object(
  {
    jobs: Type.Array(JobSummary, { description: 'Newest first (by queued_at, then id)' }),
    next_cursor: Nullable(Type.String({ description: 'Pass as `cursor` for the next page; null on the last' })),
  },
  { additionalProperties: false },
);
export type JobListResponse = Static<typeof JobListResponse>;

/** `GET /api/v1/jobs/counts`: how many jobs (the caller's, or all for the admin) are in each state. */
export const JobCountsQuery = Type.Object(
  {
    since: Type.Optional(
      Type.String({ maxLength: 40, description: 'Jobs queued at or after this time (ISO 8601 or epoch ms)' }),
    ),
  },
  { additionalProperties: false },
);
export type JobCountsQuery = Static<typeof JobCountsQuery>;

export const JobCountsResponse = Type.Object(
  {
    since: IsoTimeOrNull,
    total: Type.Integer({ minimum: 0 }),
    states: Type.Record(Type.String(), Type.Integer({ minimum: 0 }), {
      description: `Jobs per state (${JOB_STATUSES.join(', ')}); every state is listed, 0 included`,
    }),
  },
  { additionalProperties: false },
);
export type JobCountsResponse = Static<typeof JobCountsResponse>;

/** `POST /ui/session`: sign in to the dashboard with the admin secret, an API token or a license key. */
export const SessionRequest = Type.Object(
  { secret: Type.String({ minLength: 1, maxLength: 512 }) },
  { additionalProperties: false },
);
export type SessionRequest = Static<typeof SessionRequest>;

export const SessionResponse = Type.Object(
  {
    kind: Type.Enum(['admin', 'account', 'license'], {
      description: 'admin: every job and the operations pages; account or license: its own jobs',
    }),
    expires_at: IsoTime,
  },
  { additionalProperties: false },
);
export type SessionResponse = Static<typeof SessionResponse>;

/** `GET /ui/session`: whether this browser is signed in (200 either way: the page asks on every load). */
export const SessionState = Type.Object(
  {
    signed_in: Type.Boolean(),
    kind: Nullable(Type.Enum(['admin', 'account', 'license'])),
    expires_at: IsoTimeOrNull,
  },
  { additionalProperties: false },
);
export type SessionState = Static<typeof SessionState>;

export const JobHistoryEntry = Type.Object(
  {
    at: IsoTime,
    state: Type.String({ description: 'queued, running, cancel_requested, completed, failed, cancelled, expired' }),
    attempt: Type.Optional(Type.Integer()),
    stage: Type.Optional(Type.String()),
    worker: Type.Optional(Type.String()),
    worker_id: Type.Optional(Type.String()),
    reason: Type.Optional(Type.String()),
    via: Type.Optional(Type.String({ description: 'First entry: http or nats' })),
  },
  { additionalProperties: false },
);
export type JobHistoryEntry = Static<typeof JobHistoryEntry>;

export const JobAttempt = Type.Object(
  {
    attempt: Type.Integer({ minimum: 1 }),
    stage: Type.String(),
    worker: Type.String(),
    worker_id: Type.String(),
    started_at: IsoTime,
    ended_at: IsoTimeOrNull,
    outcome: Type.String({ description: 'running, re-queued, completed, failed, cancelled, ...' }),
    reason: Nullable(Type.String()),
  },
  { additionalProperties: false },
);
export type JobAttempt = Static<typeof JobAttempt>;

export const JobArtifact = Type.Object(
  {
    name: Type.String(),
    target: Type.String(),
    size: Type.Integer({ minimum: 0 }),
    sha256: Type.String(),
    attempt: Type.Integer(),
    state: Type.String({
      description:
        'fresh until downloaded; spending while a download of it is under way (or died with its hub); done once downloaded',
    }),
    created_at: IsoTime,
    expires_at: IsoTime,
    download_url: Type.Optional(
      Type.String({
        description:
          'Its one-time link while it can be downloaded (base64 by default; raw with Accept: application/octet-stream, Range)',
      }),
    ),
  },
  { additionalProperties: false },
);
export type JobArtifact = Static<typeof JobArtifact>;

/** One signed callback of a job (webhook-id, what, and how its delivery goes). */
export const JobCallback = Type.Object(
  {
    webhook_id: Type.String(),
    kind: Type.Enum(['artifact', 'event']),
    event_type: Nullable(Type.String({ description: 'build.succeeded, build.failed, build.cancelled, build.expired' })),
    artifact_name: Nullable(Type.String()),
    target: Nullable(Type.String()),
    state: Type.Enum(['pending', 'delivered', 'failed']),
    attempts: Type.Integer({ minimum: 0 }),
    last_status: Nullable(Type.Integer({ description: 'HTTP status of the last attempt' })),
    last_error: Nullable(Type.String()),
    next_attempt_at: Nullable(IsoTime),
    delivered_at: IsoTimeOrNull,
  },
  { additionalProperties: false },
);
export type JobCallback = Static<typeof JobCallback>;

/** Everything known about one job; signing credentials are never part of it. */
export const JobDetail = Type.Object(
  {
    ...JobSummary.properties,
    position: Type.Integer({ minimum: 0, description: '1-based place in the queue while queued, else 0' }),
    cancel_requested_at: IsoTimeOrNull,
    manifest: Type.Object(
      {
        app_name: Nullable(Type.String()),
        bundle_id: Nullable(Type.String()),
        version: Nullable(Type.String()),
        entry: Nullable(Type.String()),
        targets: Type.Array(Type.String(), { description: 'As submitted' }),
      },
      { additionalProperties: false },
    ),
    history: Type.Array(JobHistoryEntry, { description: 'State changes, oldest first' }),
    attempts: Type.Array(JobAttempt),
    artifacts: Type.Array(JobArtifact),
    callbacks: Type.Optional(
      Type.Array(JobCallback, { description: 'Signed callbacks to the callback_url, in delivery order' }),
    ),
  },
  { additionalProperties: false },
);
export type JobDetail = Static<typeof JobDetail>;

/** `GET /api/v1/workers` (the original's `/api/v1/admin/workers` keeps its own shape). */
export const WorkerInfo = Type.Object(
  {
    id: Type.String({ description: 'Connection id (a reconnect makes a new one)' }),
    name: Type.String(),
    capabilities: Type.Array(Type.String()),
    slots: Type.Object(
      { max: Type.Integer({ minimum: 1 }), busy: Type.Integer({ minimum: 0 }), free: Type.Integer({ minimum: 0 }) },
      { additionalProperties: false },
    ),
    jobs: Type.Array(Type.Object({ job_id: Type.String(), attempt: Type.Integer() }, { additionalProperties: false })),
    connected_at: IsoTime,
    perry_version: Type.String({ description: "'' when the worker did not report one" }),
    gateway: Type.String({ description: 'The gateway instance holding its socket' }),
  },
  { additionalProperties: false },
);
export type WorkerInfo = Static<typeof WorkerInfo>;

export const WorkersResponse = Type.Object(
  { expected_version: Type.String(), workers: Type.Array(WorkerInfo) },
  { additionalProperties: false },
);
export type WorkersResponse = Static<typeof WorkersResponse>;

/** Why queued jobs wait; `message` is the line waiting CLIs get in their `queue_update`. */
export const WAIT_REASONS = [
  'next',
  'in_line',
  'workers_busy',
  'license_limit',
  'no_worker',
  'vm_starting',
  'vm_stopped',
  'vm_draining',
  'worker_reconnecting',
] as const;
export type WaitReasonCode = (typeof WAIT_REASONS)[number];

export const WaitReason = Type.Object(
  { reason: Type.Enum(WAIT_REASONS), message: Type.String() },
  { additionalProperties: false },
);
export type WaitReason = Static<typeof WaitReason>;

/** The scheduler's view of one target and tier (a job needing two targets counts in both). */
export const QueueLine = Type.Object(
  {
    target: Type.String(),
    tier: Type.Enum(['free', 'pro']),
    queued: Type.Integer({ minimum: 0 }),
    oldestQueuedAt: Type.Integer({ description: 'Epoch ms' }),
    waiting: Type.Array(
      Type.Object({ ...WaitReason.properties, jobs: Type.Integer({ minimum: 1 }) }, { additionalProperties: false }),
    ),
  },
  { additionalProperties: false },
);
export type QueueLine = Static<typeof QueueLine>;

export const QueueSummary = Type.Object(
  {
    at: Type.Integer(),
    queued: Type.Integer({ minimum: 0 }),
    running: Type.Integer({ minimum: 0 }),
    lines: Type.Array(QueueLine),
  },
  { additionalProperties: false },
);
export type QueueSummary = Static<typeof QueueSummary>;

/** Answered by the scheduler holding the lease (it alone knows workers, limits and VM states). */
export const queueSummaryEndpoint = defineEndpoint({
  service: 'scheduler',
  name: 'queue-summary',
  request: Empty,
  response: QueueSummary,
  timeoutMs: 3_000,
});

export const QueueResponse = Type.Object(
  {
    at: IsoTime,
    queued: Type.Integer({ minimum: 0 }),
    running: Type.Integer({ minimum: 0 }),
    queues: Type.Array(
      Type.Object(
        {
          target: Type.String(),
          tier: Type.Enum(['free', 'pro']),
          queued: Type.Integer({ minimum: 0 }),
          oldest_queued_at: IsoTime,
          oldest_wait_secs: Type.Integer({ minimum: 0 }),
          waiting: Type.Array(
            Type.Object(
              { reason: Type.Enum(WAIT_REASONS), message: Type.String(), jobs: Type.Integer({ minimum: 1 }) },
              { additionalProperties: false },
            ),
            { description: 'How many of its jobs wait for which reason' },
          ),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type QueueResponse = Static<typeof QueueResponse>;

export const VmsResponse = Type.Object(
  {
    provider: Type.Enum(VM_PROVIDERS),
    pools: Type.Array(
      Type.Object(
        {
          pool: Type.String(),
          capability: Type.String(),
          power: Type.Enum(VM_POWER_STATES),
          draining: Type.Boolean(),
          start_requested_at: IsoTimeOrNull,
          last_job_ended_at: IsoTimeOrNull,
          last_boot_secs: Type.Union([Type.Number({ minimum: 0 }), Type.Null()], {
            description: 'How long the last start took until a worker connected',
          }),
          idle_until: Type.Union([IsoTime, Type.Null()], {
            description: 'While the VM is up and idle: when draining, then deallocation, begins',
          }),
          updated_at: IsoTime,
          message: Type.String(),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type VmsResponse = Static<typeof VmsResponse>;

export const JobIdParams = Type.Object({ id: Type.String({ maxLength: 128 }) }, { additionalProperties: false });

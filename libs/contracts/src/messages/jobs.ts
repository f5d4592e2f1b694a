/**
 * Jobs on the bus. MySQL (`builds`) is the system of record; the intake message tells the
 * scheduler a job exists (deduplicated by `Nats-Msg-Id` = job id) and the scheduler reconciles
 * from MySQL on start, so a lost message never loses a job.
 */
import Type, { type Static } from 'typebox';
import { defineEndpoint } from '../rpc.js';

export const TIERS = ['free', 'pro'] as const;
export type Tier = (typeof TIERS)[number];

/** Queue priority by tier (the original's: pro 10, free 1). */
export const TIER_PRIORITY: Readonly<Record<Tier, number>> = { pro: 10, free: 1 };

/** Targets a client may ask for (reference 5.1); sign targets are set by the hub itself. */
export const CLIENT_TARGETS = [
  'macos',
  'ios',
  'visionos',
  'watchos',
  'tvos',
  'android',
  'linux',
  'windows',
  'web',
] as const;
export const SIGN_TARGETS = ['windows-sign', 'macos-sign', 'ios-sign'] as const;

export const JobIntake = Type.Object(
  {
    jobId: Type.String({ format: 'uuid' }),
    licenseKey: Type.String(),
    tier: Type.Enum(TIERS),
    priority: Type.Integer(),
    targets: Type.Array(Type.String(), { minItems: 1 }),
    queuedAt: Type.Integer({ description: 'Epoch ms' }),
    via: Type.Enum(['http', 'nats']),
    callback: Type.Optional(Type.Literal(true, { description: 'The job has a callback_url (carried to its JobDone)' })),
    buildType: Type.Optional(
      Type.Enum(['app', 'plugin'], { description: 'Absent means `app`; a `plugin` job is never re-queued to sign' }),
    ),
    tarballRef: Type.Optional(
      Type.String({
        description:
          'Object name of the tarball, as recorded: with it the scheduler queues the job from this message without reading its row',
      }),
    ),
    payload: Type.Optional(
      Type.Object(
        {
          manifest: Type.String({ description: 'The manifest as recorded (builds.manifest)' }),
          credentialsSealed: Type.String({ description: 'The sealed credentials as recorded, base64' }),
        },
        {
          additionalProperties: false,
          description: 'What job_assign is composed of, for a small manifest: dispatch need not read it back',
        },
      ),
    ),
  },
  { additionalProperties: false },
);
export type JobIntake = Static<typeof JobIntake>;

export const QueuePositionRequest = Type.Object(
  {
    jobId: Type.String(),
    /**
     * What the ingest just recorded for a new job: a leader that has not taken the job from the
     * intake yet ranks it from these instead of reading its row.
     */
    recorded: Type.Optional(
      Type.Object(
        {
          tier: Type.Enum(TIERS),
          targets: Type.Array(Type.String(), { minItems: 1 }),
          queuedAt: Type.Integer({ description: 'Epoch ms' }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export const QueuePosition = Type.Object(
  { position: Type.Integer({ minimum: 0, description: '1-based place in the queue; 0 once running' }) },
  { additionalProperties: false },
);
export type QueuePosition = Static<typeof QueuePosition>;

/**
 * Set on an intake message by the ingest instance that published it (its instance id): the
 * leader, once it has queued the job, sends its place to `<p>.positions.<instance>` (a
 * QueuePositionNotice), so the ingest need not ask for it. Without an answer (a scheduler of an
 * earlier version, no leader yet) the ingest asks `queue-position` as before.
 */
export const INTAKE_POSITION_HEADER = 'Perry-Position-To';

export const QueuePositionNotice = Type.Object(
  {
    jobId: Type.String(),
    position: Type.Integer({ minimum: 0, description: '1-based place in the queue; 0 once running' }),
  },
  { additionalProperties: false },
);
export type QueuePositionNotice = Static<typeof QueuePositionNotice>;

export const queuePositionEndpoint = defineEndpoint({
  service: 'scheduler',
  name: 'queue-position',
  request: QueuePositionRequest,
  response: QueuePosition,
  timeoutMs: 3_000,
});

export interface TierLimits {
  readonly monthlyPublishes: number;
  readonly hourlySubmissions: number;
  /** Decoded tarball size. */
  readonly maxUploadBytes: number;
  /** Builds running at once; further ones wait in the queue (they are not rejected). */
  readonly concurrentBuilds: number;
  readonly monthlyDeepVerifies: number;
}

const MiB = 1024 * 1024;

/** The original hub's limits (reference 3.8). */
export const TIER_LIMITS: Readonly<Record<Tier, TierLimits>> = {
  free: {
    monthlyPublishes: 15,
    hourlySubmissions: 5,
    maxUploadBytes: 50 * MiB,
    concurrentBuilds: 1,
    monthlyDeepVerifies: 2,
  },
  pro: {
    monthlyPublishes: 50,
    hourlySubmissions: 30,
    maxUploadBytes: 200 * MiB,
    concurrentBuilds: 3,
    monthlyDeepVerifies: 20,
  },
};

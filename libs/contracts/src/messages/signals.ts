/**
 * Signals the scheduler publishes about its queue and the vm-controller consumes (and anyone
 * else may watch): queue depth per capability, pre-warm hints, terminal job outcomes, and the
 * sign VM pools' state.
 */
import Type, { type Static } from 'typebox';

export const CapabilityDepth = Type.Object(
  {
    queued: Type.Integer({ minimum: 0, description: 'Jobs waiting for a worker with this capability' }),
    oldestQueuedAt: Type.Union([Type.Integer(), Type.Null()], { description: 'Epoch ms of the oldest waiting job' }),
    assigned: Type.Integer({ minimum: 0, description: 'Jobs sent to a worker that has not yet reported progress' }),
    running: Type.Integer({ minimum: 0, description: 'Jobs a worker is building' }),
  },
  { additionalProperties: false },
);
export type CapabilityDepth = Static<typeof CapabilityDepth>;

/** `<p>.queue.depth`, published on every change and every 5 s. */
export const QueueDepth = Type.Object(
  {
    at: Type.Integer({ description: 'Epoch ms when measured' }),
    /** Keyed by the capability a job needs (its target, e.g. `windows-sign`). */
    capabilities: Type.Record(Type.String(), CapabilityDepth),
  },
  { additionalProperties: false },
);
export type QueueDepth = Static<typeof QueueDepth>;

/**
 * `<p>.vm.prewarm`: a job that will need this capability soon has started its first
 * stage (e.g. a `windows` build on the Linux worker will need `windows-sign`).
 */
export const PrewarmSignal = Type.Object(
  {
    capability: Type.String(),
    jobId: Type.String(),
    at: Type.Integer(),
  },
  { additionalProperties: false },
);
export type PrewarmSignal = Static<typeof PrewarmSignal>;

export const JOB_OUTCOMES = ['succeeded', 'failed', 'cancelled', 'expired'] as const;

/** `<p>.jobs.<jobId>.done`: a job reached a terminal state (once per job). */
export const JobDone = Type.Object(
  {
    jobId: Type.String(),
    outcome: Type.Enum(JOB_OUTCOMES),
    licenseKey: Type.String(),
    tier: Type.Enum(['free', 'pro']),
    targets: Type.Array(Type.String()),
    attempt: Type.Integer({ minimum: 0 }),
    finishedAt: Type.Integer(),
    reason: Type.Optional(Type.String()),
    callback: Type.Optional(
      Type.Literal(true, { description: 'The job has a callback_url: the ingest queues its signed callbacks' }),
    ),
  },
  { additionalProperties: false },
);
export type JobDone = Static<typeof JobDone>;

export const VM_POWER_STATES = ['deallocated', 'starting', 'running', 'stopping', 'unknown'] as const;
export type VmPowerState = (typeof VM_POWER_STATES)[number];

/**
 * A sign VM pool's state. Kept in KV `<p>-vm` under the pool name, and published on
 * `<p>.vm.<pool>.state` whenever it changes. The scheduler does not assign jobs of a pool's
 * capability to its workers while `draining` is true.
 */
export const VmPoolState = Type.Object(
  {
    pool: Type.String(),
    capability: Type.String(),
    power: Type.Enum(VM_POWER_STATES),
    draining: Type.Boolean(),
    /** Epoch ms; null when not applicable. */
    startRequestedAt: Type.Union([Type.Integer(), Type.Null()]),
    lastJobEndedAt: Type.Union([Type.Integer(), Type.Null()]),
    /** How long the last start took, from the request to the first connected worker. */
    lastBootMs: Type.Optional(Type.Union([Type.Integer({ minimum: 0 }), Type.Null()])),
    /** While the VM is up and idle: when the idle time runs out and draining (then deallocation) begins. */
    idleUntil: Type.Optional(Type.Union([Type.Integer(), Type.Null()])),
    updatedAt: Type.Integer(),
    message: Type.String({ description: 'Human-readable, shown to waiting CLIs and in /status' }),
  },
  { additionalProperties: false },
);
export type VmPoolState = Static<typeof VmPoolState>;

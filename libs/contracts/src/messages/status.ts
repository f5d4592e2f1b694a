/**
 * The pieces of `GET /api/v1/status`: the ingest asks the scheduler for the queue and the
 * worker-gateway for connected workers, over request/reply.
 */
import Type, { type Static } from 'typebox';
import { defineEndpoint } from '../rpc.js';
import { JobRef } from './dispatch.js';

export const Empty = Type.Object({}, { additionalProperties: false });
export type Empty = Static<typeof Empty>;

export const QueueStats = Type.Object(
  {
    queueLength: Type.Integer({ minimum: 0, description: 'Jobs waiting for a worker' }),
  },
  { additionalProperties: false },
);
export type QueueStats = Static<typeof QueueStats>;

export const queueStatsEndpoint = defineEndpoint({
  service: 'scheduler',
  name: 'queue-stats',
  request: Empty,
  response: QueueStats,
  timeoutMs: 2_000,
});

export const WorkersSummary = Type.Object(
  {
    connectedWorkers: Type.Integer({ minimum: 0 }),
    /** The original's five labels only, in its order (reference 1.2 #1). */
    supportedTargets: Type.Array(Type.String()),
    /** Set by PERRY_EXPECTED_VERSION or the admin update route; '' when none. */
    expectedPerryVersion: Type.String(),
  },
  { additionalProperties: false },
);
export type WorkersSummary = Static<typeof WorkersSummary>;

export const workersSummaryEndpoint = defineEndpoint({
  service: 'worker-gateway',
  name: 'workers-summary',
  request: Empty,
  response: WorkersSummary,
  timeoutMs: 2_000,
});

/** `GET /api/v1/status`, byte-compatible with the original (new fields may only be appended). */
export const StatusResponse = Type.Object(
  {
    status: Type.Literal('ok'),
    queue_length: Type.Integer({ minimum: 0 }),
    perry_version: Type.String(),
    expected_perry_version: Type.String(),
    supported_targets: Type.Array(Type.String()),
    connected_workers: Type.Integer({ minimum: 0 }),
  },
  { additionalProperties: false },
);
export type StatusResponse = Static<typeof StatusResponse>;

/** One connected worker, as kept in the presence bucket (key = worker id). */
export const WorkerPresence = Type.Object(
  {
    workerId: Type.String(),
    name: Type.String(),
    capabilities: Type.Array(Type.String()),
    maxConcurrent: Type.Integer({ minimum: 1 }),
    activeJobs: Type.Integer({ minimum: 0 }),
    perryVersion: Type.String(),
    gatewayId: Type.String(),
    connectedAt: Type.Integer(),
    heartbeatAt: Type.Integer(),
    /** The jobs assigned on this connection: lets a new scheduler find assignments that never arrived. */
    jobs: Type.Optional(Type.Array(JobRef)),
  },
  { additionalProperties: false },
);
export type WorkerPresence = Static<typeof WorkerPresence>;

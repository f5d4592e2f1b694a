/**
 * The admin routes (`GET /api/v1/admin/workers`, `POST /api/v1/admin/update-perry`) ask the
 * worker-gateway, which knows the connected workers, over these endpoints. The HTTP answers keep
 * the original's shapes (reference 1.2 #2 and #3), built from these results by the ingest.
 */
import Type, { type Static } from 'typebox';
import { defineEndpoint } from '../rpc.js';
import { Empty } from './status.js';
import { JobRef } from './dispatch.js';

export const AdminWorker = Type.Object(
  {
    workerId: Type.String(),
    name: Type.String(),
    perryVersion: Type.String({ description: "'' when the worker did not report one" }),
    capabilities: Type.Array(Type.String()),
    /** True while the worker runs any job: busy workers are not told to update. */
    busy: Type.Boolean(),
    activeJobs: Type.Integer({ minimum: 0 }),
    maxConcurrent: Type.Integer({ minimum: 1 }),
    connectedAt: Type.Integer({ description: 'Epoch ms' }),
    gatewayId: Type.String(),
    /** The jobs assigned on this connection, as its gateway last wrote them to presence. */
    jobs: Type.Array(JobRef),
  },
  { additionalProperties: false },
);
export type AdminWorker = Static<typeof AdminWorker>;

export const AdminWorkers = Type.Object(
  {
    expectedVersion: Type.String({ description: "'' when none is set" }),
    workers: Type.Array(AdminWorker),
  },
  { additionalProperties: false },
);
export type AdminWorkers = Static<typeof AdminWorkers>;

export const adminWorkersEndpoint = defineEndpoint({
  service: 'worker-gateway',
  name: 'admin-workers',
  request: Empty,
  response: AdminWorkers,
  timeoutMs: 3_000,
});

export const UpdatePerryRequest = Type.Object(
  {
    expectedVersion: Type.Optional(
      Type.String({ minLength: 1, maxLength: 64, description: 'Becomes the expected version (kept across restarts)' }),
    ),
  },
  { additionalProperties: false },
);
export type UpdatePerryRequest = Static<typeof UpdatePerryRequest>;

export const UpdatePerryResult = Type.Object(
  {
    expectedVersion: Type.String(),
    workersNotified: Type.Integer({ minimum: 0, description: 'Idle workers sent `{"type":"update_perry"}`' }),
    workers: Type.Array(AdminWorker),
  },
  { additionalProperties: false },
);
export type UpdatePerryResult = Static<typeof UpdatePerryResult>;

export const updatePerryEndpoint = defineEndpoint({
  service: 'worker-gateway',
  name: 'update-perry',
  request: UpdatePerryRequest,
  response: UpdatePerryResult,
  timeoutMs: 5_000,
});

// HTTP shapes, byte-compatible with the original (new fields may only be appended).

/** `capabilities` is the original's comma-wrapped string (`",linux,android,"`), not an array. */
export const AdminWorkersResponse = Type.Object(
  {
    expected_version: Type.String(),
    workers: Type.Array(
      Type.Object(
        { name: Type.String(), perry_version: Type.String(), capabilities: Type.String(), busy: Type.Boolean() },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type AdminWorkersResponse = Static<typeof AdminWorkersResponse>;

export const UpdatePerryBody = Type.Object(
  { expected_version: Type.Optional(Type.String({ maxLength: 64 })) },
  { additionalProperties: false },
);

export const UpdatePerryResponse = Type.Object(
  {
    ok: Type.Literal(true),
    workers_notified: Type.Integer(),
    expected_version: Type.String(),
    workers: Type.Array(
      Type.Object(
        { name: Type.String(), perry_version: Type.String(), busy: Type.Boolean() },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
export type UpdatePerryResponse = Static<typeof UpdatePerryResponse>;

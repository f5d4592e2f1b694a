/** Reported as `perry_version` by `GET /api/v1/status`, as the original did. */
export const HUB_VERSION = '0.1.0';

/** The six services, in the order the all-in-one starts them (stopped in reverse). */
export const SERVICE_NAMES = [
  'license',
  'artifact-store',
  'scheduler',
  'worker-gateway',
  'vm-controller',
  'ingest',
] as const;

export type ServiceName = (typeof SERVICE_NAMES)[number];

export function isServiceName(value: string): value is ServiceName {
  return (SERVICE_NAMES as readonly string[]).includes(value);
}

/**
 * Services whose instances' liveness records somebody watches: the scheduler and the gateways
 * judge gateways by theirs, the license service the ingest instance holding a reservation. The
 * others' records are refreshed rarely (they say an instance exists, for operators). A reader
 * watches only the services it judges (a record's key is `<service>.<instanceId>`).
 */
export const LIVENESS_WATCHED: readonly ServiceName[] = ['worker-gateway', 'ingest'];

/** The lifetime of the records nobody watches (refreshed every third of it). */
export const UNWATCHED_LIVENESS_TTL_MS = 60_000;

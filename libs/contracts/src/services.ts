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

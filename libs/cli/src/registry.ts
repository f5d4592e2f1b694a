/**
 * The one place that knows every service. Adding a service means adding its package here (and
 * its name to SERVICE_NAMES in the contracts).
 */
import type { ServiceName } from '@perry-hub/contracts';
import type { ServiceDefinition } from '@perry-hub/runtime';
import { definition as artifactStore } from '@perry-hub/artifact-store';
import { definition as ingest } from '@perry-hub/ingest';
import { definition as license } from '@perry-hub/license';
import { definition as scheduler } from '@perry-hub/scheduler';
import { definition as vmController } from '@perry-hub/vm-controller';
import { definition as workerGateway } from '@perry-hub/worker-gateway';

export const SERVICES: Readonly<Record<ServiceName, ServiceDefinition>> = {
  license: license as unknown as ServiceDefinition,
  'artifact-store': artifactStore as unknown as ServiceDefinition,
  scheduler: scheduler as unknown as ServiceDefinition,
  'worker-gateway': workerGateway as unknown as ServiceDefinition,
  'vm-controller': vmController as unknown as ServiceDefinition,
  ingest: ingest as unknown as ServiceDefinition,
};

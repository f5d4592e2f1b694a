/**
 * The worker-gateway holds the WebSocket connections of workers and CLI watchers. Worker presence
 * lives in a KV bucket so that every gateway instance (and the status route) sees all workers.
 */
import Type from 'typebox';
import { Kvm } from '@nats-io/kv';
import { topologyNames, workersSummaryEndpoint } from '@perry-hub/contracts';
import { configSchema, defineService, fromEnv, handle, natsFields, processFields } from '@perry-hub/runtime';
import { readPresence, supportedTargets } from './presence.js';

export const WorkerGatewayConfig = configSchema({
  ...natsFields,
  ...processFields,
  expectedPerryVersion: fromEnv('PERRY_EXPECTED_VERSION', Type.String({ default: '' }), {
    description: 'Perry compiler version workers should run; a worker reporting another is told to update',
  }),
});

export const workerGateway = defineService({
  name: 'worker-gateway',
  config: WorkerGatewayConfig,
  needsDb: false,
  start: async (deps, config) => {
    const presence = await new Kvm(deps.nc).open(topologyNames(config.subjectPrefix).presenceBucket);
    deps.serve([
      handle(workersSummaryEndpoint, async () => {
        const workers = await readPresence(presence);
        return {
          connectedWorkers: workers.length,
          supportedTargets: supportedTargets(workers),
          expectedPerryVersion: config.expectedPerryVersion,
        };
      }),
    ]);
    return { stop: async () => undefined };
  },
});

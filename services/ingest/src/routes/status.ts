import type { FastifyPluginAsync } from 'fastify';
import { HUB_VERSION, queueStatsEndpoint, workersSummaryEndpoint, type StatusResponse } from '@perry-hub/contracts';
import { call } from '@perry-hub/runtime';
import type { IngestDeps } from '../app.js';

/**
 * `GET /api/v1/status`: the original's shape, with the queue answered by the scheduler and the
 * workers by the worker-gateway over the bus.
 */
export function statusRoutes(deps: IngestDeps): FastifyPluginAsync {
  return async (app) => {
    app.get('/api/v1/status', async (): Promise<StatusResponse> => {
      const [queue, workers] = await Promise.all([
        call(deps.nc, deps.subjects, queueStatsEndpoint, {}),
        call(deps.nc, deps.subjects, workersSummaryEndpoint, {}),
      ]);
      return {
        status: 'ok',
        queue_length: queue.queueLength,
        perry_version: HUB_VERSION,
        expected_perry_version: workers.expectedPerryVersion,
        supported_targets: workers.supportedTargets,
        connected_workers: workers.connectedWorkers,
      };
    });
  };
}
